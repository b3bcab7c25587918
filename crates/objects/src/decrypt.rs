//! Opening a sealed piece as its bytes arrive from the blob store.
//!
//! Raw bytes are cut into batches of whole sealed segments; each batch is opened in place and
//! its segments' plaintexts handed on as slices of the same buffer (no copy). A large batch is
//! opened on a blocking thread while the previous one is being sent, so decryption overlaps the
//! network; the first batch and small ones are opened inline, where a thread hand-off would
//! cost more.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use coffer_crypto::segments::Opener;
use coffer_storage::ByteStream;
use futures::{StreamExt, TryStreamExt};

use crate::read::BodyStream;
use crate::{Error, Result};

/// Batches at least this large are opened on a blocking thread, except the first.
const OFFLOAD_BYTES: usize = 128 << 10;

/// A run of whole sealed segments, starting at segment `first`.
struct Batch {
    first: u64,
    sealed: BytesMut,
}

/// Cuts the raw stream into batches. Reads are not aligned to sealed segments, so the one
/// segment that straddles two reads is copied together (`carry`); everything else is cut from
/// the read buffers without a copy.
struct Cutter {
    raw: ByteStream,
    opener: Arc<Opener>,
    /// The unconsumed rest of the latest read.
    current: BytesMut,
    /// The start of a segment that continues in the next read.
    carry: BytesMut,
    next: u64,
    end: u64,
    /// Most segments in the next batch.
    limit: u64,
    blob: Arc<str>,
}

impl Cutter {
    fn sealed_len(&self, index: u64) -> usize {
        usize::try_from(self.opener.sealed_segment_len(index)).unwrap_or(usize::MAX)
    }

    /// The next batch: every whole segment the bytes received so far hold.
    async fn next_batch(&mut self) -> Option<Result<Batch>> {
        loop {
            if self.next >= self.end {
                return None;
            }
            let need = self.sealed_len(self.next);
            if !self.carry.is_empty() {
                let take = (need - self.carry.len()).min(self.current.len());
                self.carry.extend_from_slice(&self.current.split_to(take));
                if self.carry.len() == need {
                    self.next += 1;
                    let sealed = std::mem::take(&mut self.carry);
                    return Some(Ok(Batch {
                        first: self.next - 1,
                        sealed,
                    }));
                }
            } else {
                let (mut count, mut len) = (0u64, 0usize);
                while self.next + count < self.end && count < self.limit {
                    let n = self.sealed_len(self.next + count);
                    if self.current.len() - len < n {
                        break;
                    }
                    len += n;
                    count += 1;
                }
                if count > 0 {
                    self.limit = u64::MAX;
                    let batch = Batch {
                        first: self.next,
                        sealed: self.current.split_to(len),
                    };
                    self.next += count;
                    return Some(Ok(batch));
                }
                self.carry = std::mem::take(&mut self.current);
            }
            match self.raw.next().await {
                // Unshared read buffers become `BytesMut` without a copy.
                Some(Ok(b)) => self.current = BytesMut::from(b),
                Some(Err(e)) => return Some(Err(Error::from(e))),
                None => {
                    tracing::error!(blob = %self.blob, segment = self.next, "object integrity check failed: the blob is truncated");
                    return Some(Err(Error::Integrity));
                }
            }
        }
    }
}

/// Opens every segment of `batch` in place; returns each segment's plaintext as a slice of
/// the batch's buffer. (Moving the plaintexts together into one run would cost a copy per
/// segment: aws-lc opens within a buffer by decrypting and then moving.)
fn open_batch(opener: &Opener, mut batch: Batch, blob: &str) -> Result<Vec<Bytes>> {
    let mut plain = Vec::new();
    let (mut at, mut index) = (0usize, batch.first);
    while at < batch.sealed.len() {
        let need = usize::try_from(opener.sealed_segment_len(index)).unwrap_or(usize::MAX);
        let end = at
            .checked_add(need)
            .filter(|&e| e <= batch.sealed.len())
            .ok_or(Error::Integrity)?;
        let len = opener
            .open(index, &mut batch.sealed[at..end])
            .map_err(|_| {
                tracing::error!(%blob, segment = index, "object integrity check failed: tampered, truncated or swapped ciphertext");
                Error::Integrity
            })?
            .len();
        plain.push(at..at + len);
        at = end;
        index += 1;
    }
    let sealed = batch.sealed.freeze();
    Ok(plain.into_iter().map(|r| sealed.slice(r)).collect())
}

/// A sealed read at most this long is read whole and opened at once (small objects: the
/// pipeline below costs more than it saves).
const SMALL_READ: u64 = 128 << 10;

/// The plaintext of `segments` of a sealed piece, from `skip` bytes into the first segment,
/// `len` bytes in all; `sealed_len` is the length of the raw read.
pub(crate) async fn decrypt(
    raw: ByteStream,
    opener: Opener,
    segments: Range<u64>,
    (skip, len): (usize, u64),
    sealed_len: u64,
    blob: Arc<str>,
) -> Result<BodyStream> {
    if sealed_len > SMALL_READ {
        return Ok(pipeline(raw, opener, segments, skip, len, blob));
    }
    let mut raw = raw;
    let mut sealed = BytesMut::new();
    while let Some(chunk) = raw.next().await {
        let chunk = chunk?;
        if sealed.is_empty() {
            sealed = BytesMut::from(chunk);
        } else {
            sealed.extend_from_slice(&chunk);
        }
    }
    if (sealed.len() as u64) < sealed_len {
        tracing::error!(%blob, "object integrity check failed: the blob is truncated");
        return Err(Error::Integrity);
    }
    let batch = Batch {
        first: segments.start,
        sealed,
    };
    let mut trim = Trim { skip, remaining: len };
    let plain: Vec<Result<Bytes>> = open_batch(&opener, batch, &blob)?
        .into_iter()
        .map(|p| trim.cut(p))
        .filter(|p| !p.is_empty())
        .map(Ok)
        .collect();
    Ok(futures::stream::iter(plain).boxed())
}

/// What of the opened plaintext the request wants: skip the first bytes, then stop after
/// `remaining`.
struct Trim {
    skip: usize,
    remaining: u64,
}

impl Trim {
    fn cut(&mut self, bytes: Bytes) -> Bytes {
        let from = self.skip.min(bytes.len());
        let to = (from as u64 + self.remaining).min(bytes.len() as u64) as usize;
        self.skip -= from;
        self.remaining -= (to - from) as u64;
        bytes.slice(from..to)
    }
}

/// Larger reads: cut, open (overlapping the network) and trim as the bytes arrive.
fn pipeline(
    raw: ByteStream,
    opener: Opener,
    segments: Range<u64>,
    skip: usize,
    len: u64,
    blob: Arc<str>,
) -> BodyStream {
    let opener = Arc::new(opener);
    let cutter = Cutter {
        raw,
        opener: opener.clone(),
        current: BytesMut::new(),
        carry: BytesMut::new(),
        next: segments.start,
        end: segments.end,
        // The first batch is one segment: its plaintext goes out while the rest of the first
        // read is opened on another thread, so the first byte does not wait for a whole read's
        // decryption.
        limit: 1,
        blob: blob.clone(),
    };
    let batches = futures::stream::unfold(
        cutter,
        |mut c| async move { c.next_batch().await.map(|b| (b, c)) },
    );
    // The first batch (one segment) is opened inline: nothing is being sent yet that its
    // decryption could overlap, so a thread hand-off would only delay the first byte. Later
    // ones are opened on a blocking thread while the batch before them is sent.
    let mut first = true;
    let opened = batches
        .map(move |batch| {
            let (opener, blob) = (opener.clone(), blob.clone());
            let inline = std::mem::replace(&mut first, false);
            async move {
                let batch = batch?;
                if inline || batch.sealed.len() < OFFLOAD_BYTES {
                    return open_batch(&opener, batch, &blob);
                }
                tokio::task::spawn_blocking(move || open_batch(&opener, batch, &blob))
                    .await
                    .map_err(|e| Error::Corrupt(format!("opening segments: {e}")))?
            }
        })
        .buffered(2)
        .map_ok(|segments| futures::stream::iter(segments.into_iter().map(Ok)))
        .try_flatten();
    // Trim to the requested bytes; the first error ends the stream.
    let mut trim = Some(Trim { skip, remaining: len });
    opened
        .scan((), move |_, item| {
            let out = match (item, trim.as_mut()) {
                (_, None) => None,
                (Err(e), Some(_)) => {
                    trim = None;
                    Some(Err(e))
                }
                (Ok(bytes), Some(t)) => {
                    let out = t.cut(bytes);
                    if t.remaining == 0 {
                        trim = None;
                    }
                    Some(Ok(out))
                }
            };
            futures::future::ready(out)
        })
        .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())))
        .boxed()
}
