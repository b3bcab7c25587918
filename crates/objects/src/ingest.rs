//! Taking in object bytes: stream the body into a new blob while hashing it, and hand back a
//! [`Staged`] body that is durable but not yet part of any object. A small object's bytes are
//! kept in memory instead, to be stored inline in its metadata record: one durable commit in
//! place of a blob file, its fsync and the record's commit.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use coffer_crypto::ChecksumAlgorithm;
use coffer_storage::{BlobId, BlobStore, BlobWriter, ChunkRejected, WriteMap};
use futures::{Stream, StreamExt};

use coffer_crypto::TAG_LEN;
use coffer_crypto::segments::{HEADER_LEN, SEGMENT_SIZE, Sealer, SegmentHeader};

use crate::DataOp;
use crate::bucket::BucketInfo;
use crate::digests::BodyDigests;
use crate::error::BodyError;
use crate::leases::Leases;
use crate::records::PieceSeal;
use crate::{Error, Result, Store};

/// How to take in a body.
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    /// Checksums to compute besides the MD5.
    pub checksums: Vec<ChecksumAlgorithm>,
    /// The length the client declared, if any: a different length is an error.
    pub expected_len: Option<u64>,
    /// Largest body accepted.
    pub max_len: u64,
    /// Whether a small body may be kept for the metadata record instead of a blob (objects,
    /// not multipart parts).
    pub inline: bool,
}

/// Most stored bytes (sealed, for encrypted buckets) kept inline in an object's record. Records
/// are read whole by listings, so inline data stays small.
pub const INLINE_MAX: usize = 8 << 10;

/// Where a staged body's stored bytes are.
pub(crate) enum StagedBytes {
    Blob(BlobId),
    /// Stored in the record (sealed, for encrypted buckets).
    Inline(Bytes),
}

/// A body stored in a durable blob that no object points to yet, or held for an inline record.
/// Dropped without being committed, its blob is deleted.
pub struct Staged {
    pub(crate) bytes: StagedBytes,
    pub size: u64,
    pub md5: [u8; 16],
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    /// How the blob is sealed (encrypted buckets).
    pub(crate) seal: Option<PieceSeal>,
    leases: Arc<Leases>,
    committed: bool,
}

impl Staged {
    pub fn etag(&self) -> String {
        hex::encode(self.md5)
    }

    pub fn checksum(&self, alg: ChecksumAlgorithm) -> Option<&str> {
        self.checksums
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v.as_str())
    }

    /// Checks a `Content-MD5` (base64) and client-sent checksums against what was received.
    pub fn verify(&self, content_md5: Option<&str>, checksums: &[(ChecksumAlgorithm, String)]) -> Result<()> {
        if let Some(b64) = content_md5 {
            let sent = BASE64.decode(b64.trim()).map_err(|_| Error::InvalidDigest)?;
            if sent.len() != 16 {
                return Err(Error::InvalidDigest);
            }
            if sent != self.md5 {
                return Err(Error::BadDigest);
            }
        }
        for (alg, sent) in checksums {
            match self.checksum(*alg) {
                Some(ours) if ours == sent.trim() => {}
                Some(_) => return Err(Error::ChecksumMismatch(alg.name())),
                None => {
                    return Err(Error::InvalidRequest(format!(
                        "checksum {} was not computed",
                        alg.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The blob of a body staged without `inline`.
    pub(crate) fn blob(&self) -> Result<&BlobId> {
        match &self.bytes {
            StagedBytes::Blob(id) => Ok(id),
            StagedBytes::Inline(_) => Err(Error::Corrupt("a part was staged inline".into())),
        }
    }

    /// The stored bytes now belong to a committed record.
    pub(crate) fn into_committed(mut self) {
        self.committed = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let StagedBytes::Blob(id) = &self.bytes
            && !self.committed
        {
            // No record points to it, and no reader can have leased it.
            self.leases.retire([id.clone()]);
        }
    }
}

impl Store {
    /// Streams `body` into a new durable blob for `bucket`: as it is, or sealed segment by
    /// segment under a fresh object key when the bucket is encrypted. The MD5 (the ETag) and
    /// the checksums are of the plaintext.
    pub async fn stage<S>(&self, bucket: &BucketInfo, body: S, opts: StageOptions) -> Result<Staged>
    where
        S: Stream<Item = Result<Bytes, BodyError>> + Send,
    {
        let (sealing, seal) = match bucket.record.root_key {
            Some(_) => {
                self.guard(bucket, DataOp::WriteObject).await?;
                let dek = self.dek(bucket).await?;
                let header = SegmentHeader::random(SEGMENT_SIZE);
                let seal = PieceSeal::from(&header);
                (Some(SealMap::new(Sealer::new(dek.dek(), header))), Some(seal))
            }
            None => (None, None),
        };
        let mut body = std::pin::pin!(body);
        let mut writer = Sink::new(self.blobs.clone(), opts.inline, sealing);
        let mut digests = BodyDigests::new(&opts.checksums);
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Error::Body)?;
            size += chunk.len() as u64;
            if size > opts.max_len {
                return Err(Error::EntityTooLarge);
            }
            if opts.expected_len.is_some_and(|n| size > n) {
                return Err(Error::IncompleteBody);
            }
            digests.update(&chunk).await?;
            writer.write(chunk).await?;
        }
        if opts.expected_len.is_some_and(|n| size != n) {
            return Err(Error::IncompleteBody);
        }
        let (finished, hashed) = tokio::join!(writer.finish(), digests.finish());
        let bytes = finished?;
        let (md5, checksums) = hashed?;
        Ok(Staged {
            bytes,
            size,
            md5,
            checksums,
            seal,
            leases: self.leases.clone(),
            committed: false,
        })
    }
}

/// Seals a body segment by segment, by the thread that writes its blob (see [`WriteMap`]):
/// the receive loop only hands plaintext on, and each batch is sealed while the next one is
/// received. The first bytes out are the header.
struct SealMap {
    sealer: Option<Sealer>,
    header_out: bool,
}

impl SealMap {
    fn new(sealer: Sealer) -> Self {
        Self {
            sealer: Some(sealer),
            header_out: false,
        }
    }

    /// Seals a whole body at once (an inline one).
    fn seal_all(mut self, chunks: Vec<Bytes>) -> Result<Bytes, ChunkRejected> {
        let mut out = self.map(chunks)?;
        out.extend(self.finish()?);
        Ok(out.concat().into())
    }
}

impl WriteMap for SealMap {
    fn map(&mut self, chunks: Vec<Bytes>) -> Result<Vec<Bytes>, ChunkRejected> {
        let sealer = self.sealer.as_mut().ok_or(ChunkRejected)?;
        let mut out = Vec::with_capacity(chunks.len() + 1);
        if !self.header_out {
            out.push(Bytes::copy_from_slice(sealer.header_bytes()));
            self.header_out = true;
        }
        for chunk in chunks {
            out.extend(
                sealer
                    .push(&chunk)
                    .map_err(|_| ChunkRejected)?
                    .into_iter()
                    .map(Bytes::from),
            );
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Bytes>, ChunkRejected> {
        // The header, if no bytes came at all.
        let mut out = self.map(Vec::new())?;
        let sealer = self.sealer.take().ok_or(ChunkRejected)?;
        out.push(sealer.finish().map_err(|_| ChunkRejected)?.into());
        Ok(out)
    }
}

/// Where staged bytes go: memory while they may still be kept inline, then a blob.
enum Sink {
    Memory {
        chunks: Vec<Bytes>,
        len: usize,
        limit: usize,
        blobs: Arc<dyn BlobStore>,
        sealing: Option<SealMap>,
    },
    Blob(Box<dyn BlobWriter>),
}

// An inline body is one segment once sealed.
const _: () = assert!(INLINE_MAX < SEGMENT_SIZE as usize);

impl Sink {
    fn new(blobs: Arc<dyn BlobStore>, inline: bool, sealing: Option<SealMap>) -> Self {
        // The limit is on stored bytes: sealing adds a header and one tag.
        let overhead = if sealing.is_some() {
            HEADER_LEN + TAG_LEN
        } else {
            0
        };
        let limit = if inline { INLINE_MAX - overhead } else { 0 };
        Self::Memory {
            chunks: Vec::new(),
            len: 0,
            limit,
            blobs,
            sealing,
        }
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        match self {
            Self::Memory {
                chunks, len, limit, ..
            } if *len + data.len() <= *limit => {
                *len += data.len();
                chunks.push(data);
            }
            Self::Memory {
                chunks,
                blobs,
                sealing,
                ..
            } => {
                let mut writer = create(blobs, sealing.take()).await?;
                for c in std::mem::take(chunks) {
                    writer.write(c).await?;
                }
                writer.write(data).await?;
                *self = Self::Blob(writer);
            }
            Self::Blob(w) => w.write(data).await?,
        }
        Ok(())
    }

    async fn finish(self) -> Result<StagedBytes> {
        match self {
            Self::Memory {
                chunks,
                limit,
                sealing,
                ..
            } if limit > 0 => {
                let bytes = match sealing {
                    Some(s) => s
                        .seal_all(chunks)
                        .map_err(|_| coffer_storage::Error::ChunkRejected)?,
                    None => chunks.concat().into(),
                };
                Ok(StagedBytes::Inline(bytes))
            }
            Self::Memory {
                chunks,
                blobs,
                sealing,
                ..
            } => {
                // Not inline: even an empty body gets its blob.
                let mut writer = create(&blobs, sealing).await?;
                for c in chunks {
                    writer.write(c).await?;
                }
                finish_blob(writer).await
            }
            Self::Blob(w) => finish_blob(w).await,
        }
    }
}

async fn create(blobs: &Arc<dyn BlobStore>, sealing: Option<SealMap>) -> Result<Box<dyn BlobWriter>> {
    let map = sealing.map(|s| Box::new(s) as Box<dyn WriteMap>);
    Ok(blobs.create_mapped(map).await?)
}

async fn finish_blob(writer: Box<dyn BlobWriter>) -> Result<StagedBytes> {
    let id = writer.id().clone();
    writer.finish().await?;
    Ok(StagedBytes::Blob(id))
}
