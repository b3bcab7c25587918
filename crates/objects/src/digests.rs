//! The digests of a body being taken in: the MD5 (the ETag) and the requested checksums.
//!
//! MD5 is the slowest step of a PUT (one core hashes about as fast as the disk writes, and far
//! slower than AES-GCM seals), so past the first 128 KiB the hashing moves to a thread of the
//! hashing pool and runs beside receiving, sealing and writing. Small bodies stay inline: a
//! thread hand-off would cost more than it saves.
//!
//! The pool has one thread per core, shared by every upload: a body's chunks all go to one
//! thread, in order, and each thread takes the chunks of all its uploads as they come. A slow
//! client therefore holds no thread, and no number of uploads can starve the blocking pool
//! that file reads and writes use.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, mpsc};

use bytes::Bytes;
use coffer_crypto::{ChecksumAlgorithm, Checksums, Md5};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::{Error, Result};

/// Bytes hashed inline before the hashing moves to the pool.
const INLINE_LIMIT: u64 = 128 << 10;
/// Chunks of one body queued for its hashing thread before the receiver waits: the
/// backpressure that keeps a PUT's memory bounded (a chunk is at most hyper's read buffer, a
/// few hundred KiB).
const QUEUE: usize = 8;

type Digests = (Md5, Checksums);
type Shared = Arc<Mutex<Digests>>;

fn lock(d: &Shared) -> MutexGuard<'_, Digests> {
    d.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) enum Job {
    /// Hash a chunk into a body's digests; the permit is the body's queue slot.
    Chunk(Shared, Bytes, OwnedSemaphorePermit),
    /// Answered once every chunk sent before it is hashed.
    Flush(oneshot::Sender<()>),
}

/// The nice value of the hashing threads: ahead of the server's other threads. MD5 is the one
/// step of an upload that cannot be spread over cores, and the rest of the upload waits on it;
/// a hashing thread that waits for a core holds its upload back. (Measured on 2 shared cores:
/// a single 64 MiB PUT had its hashing thread runnable but off a core for about a tenth of its
/// time, and reached 86% of the one-core MD5 + AES-GCM limit at nice 0, 89-91% at -5 and
/// 93-95% at -10.) A hashing thread has work only while bodies stream in, at most [`QUEUE`]
/// chunks per body ahead of their receivers. Raising a thread's priority needs
/// `CAP_SYS_NICE` (or an `RLIMIT_NICE`): without it the threads keep the default, and coffer
/// says so once.
pub(crate) const HASH_NICE: i32 = -10;

/// The hashing threads, one per core; each body is assigned one in turn.
struct Pool {
    threads: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let threads = (0..cores)
        .filter_map(|i| {
            let (tx, rx) = mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name(format!("coffer-hash-{i}"))
                .spawn(move || hash_jobs(&rx));
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "starting a hashing thread failed");
                    None
                }
            }
        })
        .collect();
    Pool {
        threads,
        next: AtomicUsize::new(0),
    }
});

/// Gives the calling thread [`HASH_NICE`] (on Linux a nice value belongs to a thread).
fn raise_priority() {
    static TOLD: std::sync::Once = std::sync::Once::new();
    if let Err(e) = rustix::process::setpriority_process(None, HASH_NICE) {
        TOLD.call_once(|| {
            tracing::info!(error = %e, nice = HASH_NICE, "hashing threads keep the default priority");
        });
    }
}

fn hash_jobs(rx: &mpsc::Receiver<Job>) {
    raise_priority();
    for job in rx {
        match job {
            Job::Chunk(digests, chunk, _slot) => {
                // Nothing here should panic; if it did, the thread must live on for the
                // bodies after this one, and the poisoned lock fails this body's `finish`.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let mut d = lock(&digests);
                    d.0.update(&chunk);
                    d.1.update(&chunk);
                }));
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

pub(crate) enum BodyDigests {
    Inline {
        digests: Digests,
        seen: u64,
    },
    Pooled {
        digests: Shared,
        slots: Arc<Semaphore>,
        thread: mpsc::Sender<Job>,
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
            Self::Inline { digests, seen }
                if *seen + chunk.len() as u64 <= INLINE_LIMIT || POOL.threads.is_empty() =>
            {
                *seen += chunk.len() as u64;
                digests.0.update(chunk);
                digests.1.update(chunk);
                Ok(())
            }
            Self::Inline { digests, .. } => {
                let digests = std::mem::replace(digests, (Md5::new(), Checksums::new([])));
                let n = POOL.next.fetch_add(1, Ordering::Relaxed) % POOL.threads.len();
                *self = Self::Pooled {
                    digests: Arc::new(Mutex::new(digests)),
                    slots: Arc::new(Semaphore::new(QUEUE)),
                    thread: POOL.threads[n].clone(),
                };
                Box::pin(self.update(chunk)).await
            }
            Self::Pooled {
                digests,
                slots,
                thread,
            } => {
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Corrupt("the hashing queue closed".into()))?;
                thread
                    .send(Job::Chunk(digests.clone(), chunk.clone(), slot))
                    .map_err(|_| Error::Corrupt("the hashing thread ended".into()))
            }
        }
    }

    /// The MD5 and the checksums, once every chunk is hashed.
    pub(crate) async fn finish(self) -> Result<([u8; 16], Vec<(ChecksumAlgorithm, String)>)> {
        let (md5, sums) = match self {
            Self::Inline { digests, .. } => digests,
            Self::Pooled { digests, thread, .. } => {
                let (done, hashed) = oneshot::channel();
                thread
                    .send(Job::Flush(done))
                    .map_err(|_| Error::Corrupt("the hashing thread ended".into()))?;
                hashed
                    .await
                    .map_err(|_| Error::Corrupt("the hashing thread ended".into()))?;
                let mut d = digests
                    .lock()
                    .map_err(|_| Error::Corrupt("hashing the body failed".into()))?;
                std::mem::replace(&mut *d, (Md5::new(), Checksums::new([])))
            }
        };
        Ok((md5.finalize(), sums.finalize()))
    }
}
