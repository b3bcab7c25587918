//! The blob store contract: immutable blobs written once as a stream, made durable by
//! [`BlobWriter::finish`], read by byte range, deleted, and listed (for the orphan sweep).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::Result;

/// Bytes per chunk of [`BlobStore::read`].
pub const DEFAULT_CHUNK: u64 = 512 << 10;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Work done on each chunk of a read by the thread that read it, while the bytes are still in
/// that core's cache and without another hand-off between threads (opening sealed segments,
/// say). It gets the chunk, which it may change in place, and returns the ranges of its body
/// that go on; a chunk it refuses ends the read with [`crate::Error::ChunkRejected`].
pub type ChunkFn = Arc<dyn Fn(Chunk<'_>) -> Result<Vec<Range<usize>>, ChunkRejected> + Send + Sync>;

/// One chunk of a read, as a [`ChunkFn`] gets it.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// Where the chunk starts in the blob.
    pub offset: u64,
    /// The chunk's bytes, but for the trailers of its [`Records`]: contiguous.
    pub body: &'a mut [u8],
    /// The trailers of the chunk's records, one after the other (empty without records).
    pub trailers: &'a [u8],
}

/// A read of fixed-size records, counted from the read's offset, each ending in a trailer that
/// the read puts apart from the rest (sealed segments and their tags, say): the rest of the
/// records then arrives contiguous, as one body, without a copy to close the gaps. The last
/// record may be shorter, not shorter than its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Records {
    pub len: u64,
    pub trailer: usize,
}

/// What a [`ChunkFn`] answers for a chunk it refuses (it reports why itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRejected;

/// Work done on the bytes of a blob being written, by the blocking thread that writes them
/// (sealing segments, say): the task that receives a body then only hands its bytes on, and
/// each batch is mapped and written while the next one is received. Batches are mapped one at
/// a time, in order.
pub trait WriteMap: Send + 'static {
    /// Takes the next bytes; returns what to write for them.
    fn map(&mut self, chunks: Vec<Bytes>) -> Result<Vec<Bytes>, ChunkRejected>;

    /// Called once, after the last bytes: what is left to write.
    fn finish(&mut self) -> Result<Vec<Bytes>, ChunkRejected>;
}

/// The chunks of a read, each as the pieces a [`ChunkFn`] made of it.
pub type PieceStream = BoxStream<'static, Result<Vec<Bytes>>>;

/// The name of a blob: 32 lowercase hex characters (128 random bits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    pub fn random() -> Self {
        Self(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// Parses a blob id; `None` unless it is 32 lowercase hex characters.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.0)
    }
}

/// A blob being written. Dropping it without [`BlobWriter::finish`] discards it. Until it is
/// finished, nothing may point to it: a store may list it (a crash can leave it behind), and
/// the orphan sweep deletes it.
#[async_trait]
pub trait BlobWriter: Send {
    fn id(&self) -> &BlobId;

    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Makes the blob durable and readable; returns its length.
    async fn finish(self: Box<Self>) -> Result<u64>;
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a new blob with a fresh id.
    async fn create(&self) -> Result<Box<dyn BlobWriter>> {
        self.create_mapped(None).await
    }

    /// Like [`BlobStore::create`], with `map` applied to the written bytes where they are
    /// written.
    async fn create_mapped(&self, map: Option<Box<dyn WriteMap>>) -> Result<Box<dyn BlobWriter>>;

    /// Reads `len` bytes from `offset`. The blob is opened before this returns, so a reader
    /// keeps its bytes even if the blob is deleted while it streams. Fails with
    /// [`crate::Error::BlobNotFound`] for an unknown blob.
    async fn read(&self, id: &BlobId, offset: u64, len: u64) -> Result<ByteStream> {
        self.read_chunked(id, offset, len, DEFAULT_CHUNK).await
    }

    /// Like [`BlobStore::read`], in chunks of `chunk` bytes (the last may be shorter): a reader
    /// of fixed-size records asks for a whole number of them per chunk.
    async fn read_chunked(&self, id: &BlobId, offset: u64, len: u64, chunk: u64) -> Result<ByteStream> {
        let pieces = self
            .read_mapped(
                id,
                offset,
                len,
                chunk,
                None,
                Arc::new(|c: Chunk<'_>| Ok(std::iter::once(0..c.body.len()).collect())),
            )
            .await?;
        Ok(pieces
            .map_ok(|v| futures::stream::iter(v.into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    /// Like [`BlobStore::read_chunked`], with `map` applied to each chunk where it was read.
    /// With `records`, a chunk holds whole records (`chunk` is rounded up to a multiple of
    /// their length) and their trailers apart; a read whose last record is shorter than its
    /// trailer fails with [`std::io::ErrorKind::InvalidInput`].
    async fn read_mapped(
        &self,
        id: &BlobId,
        offset: u64,
        len: u64,
        chunk: u64,
        records: Option<Records>,
        map: ChunkFn,
    ) -> Result<PieceStream>;

    /// Length of a finished blob.
    async fn len(&self, id: &BlobId) -> Result<u64>;

    /// Deletes a blob; deleting a missing blob succeeds.
    async fn delete(&self, id: &BlobId) -> Result<()>;

    /// Every finished blob.
    async fn list(&self) -> Result<Vec<BlobId>>;

    /// Discards blobs a crash left unfinished where `list` cannot see them. Call before
    /// serving. (Unfinished blobs that `list` shows are orphans: the sweep deletes them.)
    async fn sweep_unfinished(&self) -> Result<usize>;
}
