//! Reading objects: resolve the range, lease the blobs, stream the pieces that cover it.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use coffer_crypto::TAG_LEN;
use coffer_crypto::segments::Opener;
use coffer_storage::{BlobId, DEFAULT_CHUNK};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::bucket::BucketInfo;
use crate::encryption::BucketKeys;
use crate::leases::Lease;
use crate::object::ObjectInfo;
use crate::precondition::Preconditions;
use crate::records::{ObjectRecord, Piece, PieceSeal};
use crate::{Error, Result, Store};

/// The bytes of an object as they are read (plaintext).
pub type BodyStream = BoxStream<'static, Result<Bytes>>;

/// A requested byte range (`Range: bytes=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-` or `first-last` (inclusive).
    FromTo { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The bytes of an object of `size` this range selects, or `InvalidRange` (416).
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let bad = Error::InvalidRange { size };
        match self {
            Self::FromTo { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return Err(bad);
                }
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Ok(first..end)
            }
            Self::Suffix(0) => Err(bad),
            Self::Suffix(n) => Ok(size.saturating_sub(n)..size),
        }
    }
}

/// An object's bytes being read.
pub struct ObjectBody {
    pub info: ObjectInfo,
    /// The bytes selected; the whole object unless a range or part was asked for.
    pub range: Range<u64>,
    /// True when a range or part was asked for (the answer is 206).
    pub partial: bool,
    pub stream: BodyStream,
}

impl Store {
    /// Opens an object for reading after checking the preconditions.
    pub async fn get_object(
        &self,
        bucket: &BucketInfo,
        key: &str,
        pre: &Preconditions,
        range: Option<ByteRange>,
        part: Option<u32>,
    ) -> Result<ObjectBody> {
        self.guard(bucket, crate::DataOp::ReadObject).await?;
        let (mut info, lease) = self.leased(bucket, key).await?;
        pre.check(&info)?;
        let (range, partial) = match (range, part) {
            (_, Some(n)) => (info.part_range(n).ok_or_else(|| Error::InvalidPartNumber)?, true),
            (Some(r), None) => (r.resolve(info.size)?, true),
            (None, None) => (0..info.size, false),
        };
        let dek = match bucket.record.root_key {
            Some(_) => Some(self.dek(bucket).await?),
            None => None,
        };
        let stream = self
            .stream_pieces(&mut info.pieces, range.clone(), lease, dek)
            .await?;
        Ok(ObjectBody {
            info,
            range,
            partial,
            stream,
        })
    }

    /// Reads the current record and leases its blobs, such that the record was still current
    /// after the lease was taken (see `leases`). A record without blobs is read once.
    pub(crate) async fn leased(&self, bucket: &BucketInfo, key: &str) -> Result<(ObjectInfo, Lease)> {
        loop {
            let raw = self.object_raw(bucket, key).await?.ok_or(Error::NoSuchKey)?;
            let info = ObjectInfo::from_record(key, ObjectRecord::decode(&raw)?);
            let ids = info.blob_ids();
            // An object stored inline has nothing to lease: its bytes came with the record.
            let inline = ids.is_empty();
            let lease = self.leases.acquire(ids);
            if inline || self.object_raw(bucket, key).await?.as_deref() == Some(raw.as_slice()) {
                return Ok((info, lease));
            }
        }
    }

    /// A stream of `range` of the object made of `pieces`, holding `lease` until it ends.
    /// Sealed pieces are read segment by segment and opened with `dek`. The inline bytes it
    /// needs are taken out of `pieces`: unshared, a sealed piece is opened where it is.
    pub(crate) async fn stream_pieces(
        &self,
        pieces: &mut [Piece],
        range: Range<u64>,
        lease: Lease,
        dek: Option<Arc<BucketKeys>>,
    ) -> Result<BodyStream> {
        let mut spans = Vec::new();
        let mut start = 0u64;
        for p in pieces {
            let end = start + p.size;
            let (lo, hi) = (range.start.max(start), range.end.min(end));
            if lo < hi {
                let stored = match p.inline.take() {
                    Some(bytes) => Stored::Inline(bytes),
                    None => Stored::Blob(
                        BlobId::parse(&p.blob)
                            .ok_or_else(|| Error::Corrupt(format!("bad blob id {:?}", p.blob)))?,
                    ),
                };
                spans.push(Span {
                    stored,
                    piece_len: p.size,
                    range: lo - start..hi - start,
                    seal: p.seal,
                });
            }
            start = end;
        }
        let (blobs, dek) = (self.blobs.clone(), dek);
        let stream = futures::stream::iter(spans)
            .then(move |span| {
                let (blobs, dek) = (blobs.clone(), dek.clone());
                async move { span.open(&*blobs, dek.as_deref()).await }
            })
            .try_flatten()
            .map(move |item| {
                let _held = &lease;
                item
            });
        // Read (and open) the first chunk now: a missing blob or a tampered first segment is
        // an error status, not a broken body.
        let mut stream = stream.boxed();
        let first = stream.next().await;
        if let Some(Err(e)) = first {
            return Err(e);
        }
        Ok(futures::stream::iter(first).chain(stream).boxed())
    }
}

/// Where a piece's stored bytes are.
enum Stored {
    Blob(BlobId),
    Inline(Bytes),
}

impl Stored {
    /// `len` stored bytes from `offset`, in chunks of `chunk` bytes.
    async fn read(
        &self,
        blobs: &dyn coffer_storage::BlobStore,
        offset: u64,
        len: u64,
        chunk: u64,
    ) -> Result<coffer_storage::ByteStream> {
        match self {
            Self::Blob(id) => Ok(blobs.read_chunked(id, offset, len, chunk).await?),
            Self::Inline(bytes) => {
                let end = offset.checked_add(len).filter(|&e| e <= bytes.len() as u64);
                // Past the end is what a truncated blob looks like.
                let out = match end {
                    Some(end) => Ok(bytes.slice(offset as usize..end as usize)),
                    None => Err(coffer_storage::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "inline bytes end early",
                    ))),
                };
                Ok(futures::stream::iter([out]).boxed())
            }
        }
    }
}

/// The bytes of one piece a read needs.
struct Span {
    stored: Stored,
    piece_len: u64,
    /// Plaintext range within the piece.
    range: Range<u64>,
    seal: Option<PieceSeal>,
}

impl Span {
    async fn open(
        self,
        blobs: &dyn coffer_storage::BlobStore,
        dek: Option<&BucketKeys>,
    ) -> Result<BodyStream> {
        let Some(seal) = self.seal else {
            let raw = self
                .stored
                .read(
                    blobs,
                    self.range.start,
                    self.range.end - self.range.start,
                    DEFAULT_CHUNK,
                )
                .await?;
            return Ok(raw.map_err(Error::from).boxed());
        };
        let dek = dek.ok_or(Error::KmsUnavailable)?;
        let header = seal.header();
        let (segments, at) = header.locate(&self.range, self.piece_len);
        let skip =
            usize::try_from(self.range.start - segments.start * u64::from(seal.segment_size)).unwrap_or(0);
        // Whole sealed segments per read, about as many bytes as a plain read: batches need
        // no stitching, and no read is left with a few stray bytes of tags at the end.
        let sealed_seg = u64::from(seal.segment_size) + TAG_LEN as u64;
        let chunk = (DEFAULT_CHUNK / u64::from(seal.segment_size)).max(1) * sealed_seg;
        let read = crate::decrypt::SealedRead {
            opener: Opener::with_key(dek.object_key(&header), header, self.piece_len),
            segments,
            at: at.clone(),
            chunk,
            skip,
            len: self.range.end - self.range.start,
        };
        match self.stored {
            Stored::Blob(id) => crate::decrypt::from_blob(blobs, &id, read).await,
            Stored::Inline(mut bytes) => {
                // Cut in place rather than slicing: the bytes stay unshared, and are opened
                // where they are.
                bytes.truncate(usize::try_from(at.end).unwrap_or(usize::MAX));
                bytes.advance(usize::try_from(at.start).unwrap_or(usize::MAX).min(bytes.len()));
                crate::decrypt::from_inline(bytes, read)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |first, last| ByteRange::FromTo { first, last };
        assert_eq!(r(0, Some(0)).resolve(10).unwrap(), 0..1);
        assert_eq!(r(5, None).resolve(10).unwrap(), 5..10);
        assert_eq!(r(5, Some(100)).resolve(10).unwrap(), 5..10);
        assert_eq!(ByteRange::Suffix(3).resolve(10).unwrap(), 7..10);
        assert_eq!(ByteRange::Suffix(30).resolve(10).unwrap(), 0..10);
        for bad in [r(10, None), r(3, Some(2)), ByteRange::Suffix(0)] {
            assert!(matches!(bad.resolve(10), Err(Error::InvalidRange { size: 10 })));
        }
        assert!(r(0, None).resolve(0).is_err());
    }
}
