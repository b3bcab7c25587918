//! The digests of a body being taken in: the MD5 (the ETag) and the requested checksums.
//!
//! MD5 is the slowest step of a PUT (one core hashes about as fast as the disk writes, and far
//! slower than AES-GCM seals), so past the first 128 KiB the hashing moves to a blocking thread of
//! its own and runs beside receiving, sealing and writing. Small bodies stay inline: a thread
//! hand-off would cost more than it saves.

use bytes::Bytes;
use coffer_crypto::{ChecksumAlgorithm, Checksums, Md5};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Bytes hashed inline before the hashing moves to its own thread.
const INLINE_LIMIT: u64 = 128 << 10;
/// Chunks queued for the hashing thread before the receiver waits: the backpressure that keeps
/// a PUT's memory bounded (a chunk is at most hyper's read buffer, a few hundred KiB).
const QUEUE: usize = 8;

type Digests = (Md5, Checksums);

pub(crate) enum BodyDigests {
    Inline {
        digests: Digests,
        seen: u64,
    },
    Background {
        tx: mpsc::Sender<Bytes>,
        task: JoinHandle<Digests>,
    },
}

impl BodyDigests {
    pub(crate) fn new(checksums: &[ChecksumAlgorithm]) -> Self {
        Self::Inline {
            digests: (Md5::new(), Checksums::new(checksums.iter().copied())),
            seen: 0,
        }
    }

    pub(crate) async fn update(&mut self, chunk: &Bytes) -> Result<()> {
        match self {
            Self::Inline { digests, seen } if *seen + chunk.len() as u64 <= INLINE_LIMIT => {
                *seen += chunk.len() as u64;
                digests.0.update(chunk);
                digests.1.update(chunk);
                Ok(())
            }
            Self::Inline { digests, .. } => {
                let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
                let mut digests = std::mem::replace(digests, (Md5::new(), Checksums::new([])));
                let task = tokio::task::spawn_blocking(move || {
                    while let Some(c) = rx.blocking_recv() {
                        digests.0.update(&c);
                        digests.1.update(&c);
                    }
                    digests
                });
                *self = Self::Background { tx, task };
                Box::pin(self.update(chunk)).await
            }
            Self::Background { tx, .. } => tx
                .send(chunk.clone())
                .await
                .map_err(|_| Error::Corrupt("the hashing thread ended early".into())),
        }
    }

    /// The MD5 and the checksums, once every chunk is hashed.
    pub(crate) async fn finish(self) -> Result<([u8; 16], Vec<(ChecksumAlgorithm, String)>)> {
        let (md5, sums) = match self {
            Self::Inline { digests, .. } => digests,
            Self::Background { tx, task } => {
                drop(tx);
                task.await
                    .map_err(|e| Error::Corrupt(format!("the hashing thread failed: {e}")))?
            }
        };
        Ok((md5.finalize(), sums.finalize()))
    }
}
