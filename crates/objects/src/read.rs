//! Reading objects: resolve the range, lease the blobs, stream the pieces that cover it.

use std::ops::Range;

use bytes::Bytes;
use coffer_storage::{BlobId, ByteStream};
use futures::{StreamExt, TryStreamExt};

use crate::bucket::BucketInfo;
use crate::leases::Lease;
use crate::object::ObjectInfo;
use crate::precondition::Preconditions;
use crate::records::Piece;
use crate::{Error, Result, Store};

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
    pub stream: ByteStream,
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
        let (info, lease) = self.leased(bucket, key).await?;
        pre.check(&info)?;
        let (range, partial) = match (range, part) {
            (_, Some(n)) => (info.part_range(n).ok_or_else(|| Error::InvalidPartNumber)?, true),
            (Some(r), None) => (r.resolve(info.size)?, true),
            (None, None) => (0..info.size, false),
        };
        let stream = self.stream_pieces(&info.pieces, range.clone(), lease).await?;
        Ok(ObjectBody {
            info,
            range,
            partial,
            stream,
        })
    }

    /// Reads the current record and leases its blobs, such that the record was still current
    /// after the lease was taken (see `leases`).
    pub(crate) async fn leased(&self, bucket: &BucketInfo, key: &str) -> Result<(ObjectInfo, Lease)> {
        loop {
            let raw = self.object_raw(bucket, key).await?.ok_or(Error::NoSuchKey)?;
            let info = ObjectInfo::from_record(key, serde_json::from_slice(&raw)?);
            let lease = self.leases.acquire(info.blob_ids());
            if self.object_raw(bucket, key).await?.as_deref() == Some(raw.as_slice()) {
                return Ok((info, lease));
            }
        }
    }

    /// A stream of `range` of the object made of `pieces`, holding `lease` until it ends.
    pub(crate) async fn stream_pieces(
        &self,
        pieces: &[Piece],
        range: Range<u64>,
        lease: Lease,
    ) -> Result<ByteStream> {
        let mut spans = Vec::new();
        let mut start = 0u64;
        for p in pieces {
            let end = start + p.size;
            let (lo, hi) = (range.start.max(start), range.end.min(end));
            if lo < hi {
                let id = BlobId::parse(&p.blob)
                    .ok_or_else(|| Error::Corrupt(format!("bad blob id {:?}", p.blob)))?;
                spans.push((id, lo - start, hi - lo));
            }
            start = end;
        }
        let mut spans = spans.into_iter();
        // Open the first blob now, so that a missing blob is an error before any byte is sent.
        let first = match spans.next() {
            Some((id, off, len)) => self.blobs.read(&id, off, len).await?,
            None => futures::stream::empty().boxed(),
        };
        let blobs = self.blobs.clone();
        let rest = futures::stream::iter(spans)
            .then(move |(id, off, len)| {
                let blobs = blobs.clone();
                async move { blobs.read(&id, off, len).await }
            })
            .try_flatten();
        let stream = first.chain(rest).map(move |item: coffer_storage::Result<Bytes>| {
            let _held = &lease;
            item
        });
        Ok(stream.boxed())
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
