//! Taking in object bytes: stream the body into a new blob while hashing it, and hand back a
//! [`Staged`] blob that is durable but not yet part of any object.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use coffer_crypto::ChecksumAlgorithm;
use coffer_storage::{BlobId, BlobStore};
use futures::{Stream, StreamExt};

use coffer_crypto::segments::{SEGMENT_SIZE, Sealer, SegmentHeader};

use crate::DataOp;
use crate::bucket::BucketInfo;
use crate::digests::BodyDigests;
use crate::error::BodyError;
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
}

/// A body stored in a durable blob that no object points to yet. Dropped without being
/// committed, its blob is deleted.
pub struct Staged {
    pub(crate) blob: BlobId,
    pub size: u64,
    pub md5: [u8; 16],
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    /// How the blob is sealed (encrypted buckets).
    pub(crate) seal: Option<PieceSeal>,
    blobs: Arc<dyn BlobStore>,
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

    /// The blob now belongs to a committed record.
    pub(crate) fn into_committed(mut self) -> BlobId {
        self.committed = true;
        self.blob.clone()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let (blobs, id) = (self.blobs.clone(), self.blob.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = blobs.delete(&id).await {
                    tracing::warn!(blob = %id, error = %e, "discarding a staged blob failed; the next start sweeps it");
                }
            });
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
        let mut sealer = match bucket.record.root_key {
            Some(_) => {
                self.guard(bucket, DataOp::WriteObject).await?;
                let dek = self.dek(bucket).await?;
                Some(Sealer::new(&dek, SegmentHeader::random(SEGMENT_SIZE)))
            }
            None => None,
        };
        let mut body = std::pin::pin!(body);
        let mut writer = self.blobs.create().await?;
        if let Some(s) = &sealer {
            writer.write(Bytes::copy_from_slice(s.header_bytes())).await?;
        }
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
            match &mut sealer {
                Some(s) => {
                    for segment in s.push(&chunk).map_err(|e| Error::Corrupt(e.to_string()))? {
                        writer.write(Bytes::from(segment)).await?;
                    }
                }
                None => writer.write(chunk).await?,
            }
        }
        if opts.expected_len.is_some_and(|n| size != n) {
            return Err(Error::IncompleteBody);
        }
        let seal = match sealer {
            Some(s) => {
                let header =
                    SegmentHeader::parse(s.header_bytes()).map_err(|e| Error::Corrupt(e.to_string()))?;
                writer
                    .write(Bytes::from(
                        s.finish().map_err(|e| Error::Corrupt(e.to_string()))?,
                    ))
                    .await?;
                Some(PieceSeal {
                    segment_size: header.segment_size,
                    salt: hex::encode(header.salt),
                    nonce_prefix: hex::encode(header.nonce_prefix),
                })
            }
            None => None,
        };
        let blob = writer.id().clone();
        let (finished, hashed) = tokio::join!(writer.finish(), digests.finish());
        finished?;
        let (md5, checksums) = hashed?;
        Ok(Staged {
            blob,
            size,
            md5,
            checksums,
            seal,
            blobs: self.blobs.clone(),
            committed: false,
        })
    }
}
