//! The [`BlobStore`] contract.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use crate::{BlobId, BlobStore, ChunkRejected, Error, WriteMap};

/// Runs every blob contract check against a fresh, empty store.
pub async fn blob_suite(store: Arc<dyn BlobStore>) {
    round_trip_and_ranges(&*store).await;
    empty_blob(&*store).await;
    mapped_writes(&*store).await;
    refused_write_leaves_nothing(&*store).await;
    abandoned_writer_leaves_nothing(&*store).await;
    missing_and_delete(&*store).await;
    reader_survives_delete(&*store).await;
}

async fn read_all(store: &dyn BlobStore, id: &BlobId, offset: u64, len: u64) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .read(id, offset, len)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

async fn write_blob(store: &dyn BlobStore, data: &[u8], piece: usize) -> BlobId {
    let mut w = store.create().await.unwrap();
    let id = w.id().clone();
    for c in data.chunks(piece.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), data.len() as u64);
    id
}

async fn round_trip_and_ranges(store: &dyn BlobStore) {
    let data = pattern(3 * 1024 * 1024 + 17);
    let id = write_blob(store, &data, 100_003).await;
    assert!(store.list().await.unwrap().contains(&id));
    assert_eq!(store.len(&id).await.unwrap(), data.len() as u64);
    assert_eq!(read_all(store, &id, 0, data.len() as u64).await, data);
    for (off, len) in [
        (0u64, 1u64),
        (1, 0),
        (5, 1_000_000),
        (1_048_575, 2),
        (data.len() as u64 - 1, 1),
    ] {
        let (o, l) = (off as usize, len as usize);
        assert_eq!(
            read_all(store, &id, off, len).await,
            &data[o..o + l],
            "range {off}+{len}"
        );
    }
    // A range past the end is an error, never a short read.
    let past: Result<Vec<Bytes>, Error> = store
        .read(&id, data.len() as u64 - 2, 10)
        .await
        .unwrap()
        .try_collect()
        .await;
    assert!(past.is_err());
    store.delete(&id).await.unwrap();
}

/// Flips every byte's bits, ends the blob with a trailer, and refuses its bytes once it has
/// mapped `refuse_after` of them.
struct Flip {
    mapped: usize,
    refuse_after: usize,
}

const TRAILER: &[u8] = b"-the end";

impl WriteMap for Flip {
    fn map(&mut self, chunks: Vec<Bytes>) -> Result<Vec<Bytes>, ChunkRejected> {
        let flipped: Vec<u8> = chunks.concat().iter().map(|b| !b).collect();
        self.mapped += flipped.len();
        if self.mapped > self.refuse_after {
            return Err(ChunkRejected);
        }
        Ok(vec![flipped.into()])
    }

    fn finish(&mut self) -> Result<Vec<Bytes>, ChunkRejected> {
        Ok(vec![Bytes::from_static(TRAILER)])
    }
}

async fn mapped_writes(store: &dyn BlobStore) {
    let data = pattern(3 * 1024 * 1024 + 17);
    let map = Flip {
        mapped: 0,
        refuse_after: usize::MAX,
    };
    let mut w = store.create_mapped(Some(Box::new(map))).await.unwrap();
    let id = w.id().clone();
    for c in data.chunks(100_003) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    let stored = w.finish().await.unwrap();
    let mut want: Vec<u8> = data.iter().map(|b| !b).collect();
    want.extend_from_slice(TRAILER);
    assert_eq!(stored, want.len() as u64);
    assert_eq!(read_all(store, &id, 0, stored).await, want);
    store.delete(&id).await.unwrap();
}

async fn refused_write_leaves_nothing(store: &dyn BlobStore) {
    let map = Flip {
        mapped: 0,
        refuse_after: 1 << 20,
    };
    let mut w = store.create_mapped(Some(Box::new(map))).await.unwrap();
    let id = w.id().clone();
    let mut failed = None;
    for c in pattern(2 << 20).chunks(65_536) {
        if let Err(e) = w.write(Bytes::copy_from_slice(c)).await {
            failed = Some(e);
            break;
        }
    }
    let failed = match failed {
        Some(e) => {
            drop(w);
            e
        }
        None => w.finish().await.unwrap_err(),
    };
    assert!(matches!(failed, Error::ChunkRejected), "{failed:?}");
    assert!(!store.list().await.unwrap().contains(&id));
}

async fn empty_blob(store: &dyn BlobStore) {
    let id = write_blob(store, &[], 1).await;
    assert!(read_all(store, &id, 0, 0).await.is_empty());
    store.delete(&id).await.unwrap();
}

async fn abandoned_writer_leaves_nothing(store: &dyn BlobStore) {
    let before = store.list().await.unwrap().len();
    let mut w = store.create().await.unwrap();
    let id = w.id().clone();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    drop(w);
    assert_eq!(store.list().await.unwrap().len(), before);
    assert!(matches!(store.read(&id, 0, 1).await, Err(Error::BlobNotFound)));
    assert_eq!(store.sweep_unfinished().await.unwrap(), 0);
}

async fn missing_and_delete(store: &dyn BlobStore) {
    let id = BlobId::random();
    assert!(matches!(store.read(&id, 0, 1).await, Err(Error::BlobNotFound)));
    assert!(matches!(store.len(&id).await, Err(Error::BlobNotFound)));
    store.delete(&id).await.unwrap();
    let id = write_blob(store, b"hello", 2).await;
    store.delete(&id).await.unwrap();
    store.delete(&id).await.unwrap();
    assert!(!store.list().await.unwrap().contains(&id));
}

async fn reader_survives_delete(store: &dyn BlobStore) {
    let data = pattern(2 * 1024 * 1024);
    let id = write_blob(store, &data, 1 << 20).await;
    let stream = store.read(&id, 0, data.len() as u64).await.unwrap();
    store.delete(&id).await.unwrap();
    let got: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(got.concat(), data);
}
