use std::fs::OpenOptions;
use std::io;
use std::io::ErrorKind::StorageFull;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, Builder, StorageBackend};

use super::*;
use crate::MetaStore;

#[test]
fn a_full_disk_stays_an_io_error() {
    let full = redb::StorageError::Io(StorageFull.into());
    let e = meta_err(redb::CommitError::Storage(full));
    assert!(matches!(&e, Error::Io(io) if io.kind() == StorageFull), "{e:?}");
    // Each batch of a group that failed to commit is told the same.
    assert!(matches!(same_error(&e), Error::Io(io) if io.kind() == StorageFull));
    let corrupt = meta_err(redb::StorageError::Corrupted("bad page".into()));
    assert!(
        matches!(&corrupt, Error::Meta(m) if m.contains("bad page")),
        "{corrupt:?}"
    );
    assert!(matches!(same_error(&corrupt), Error::Meta(m) if m.contains("bad page")));
}

/// The database file, on a disk that can be made full: every write fails with `StorageFull`
/// while `full` is set.
#[derive(Debug)]
struct Disk {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn room(&self) -> io::Result<()> {
        match self.full.load(Ordering::SeqCst) {
            true => Err(StorageFull.into()),
            false => Ok(()),
        }
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.room()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.room()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.room()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.file.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(s, e)
    }
}

fn put(key: &str, value: &[u8]) -> Batch {
    let mut b = Batch::new();
    b.put("s", key, value.to_vec());
    b
}

#[tokio::test]
async fn a_full_disk_loses_nothing_and_the_store_works_again_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let (path, full) = (dir.path().join("meta.redb"), Arc::new(AtomicBool::new(false)));
    let disk = full.clone();
    let store = RedbMetaStore::open_with(Box::new(move || {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Builder::new().create_with_backend(Disk {
            file: FileBackend::new(file)?,
            full: disk.clone(),
        })
    }))
    .unwrap();
    store.commit(put("a", b"before")).await.unwrap();

    full.store(true, Ordering::SeqCst);
    let big = vec![7u8; 1 << 20];
    let e = store.commit(put("b", &big)).await.unwrap_err();
    assert!(matches!(&e, Error::Io(io) if io.kind() == StorageFull), "{e:?}");
    // While the disk is full, nothing works but nothing breaks either.
    assert!(store.commit(put("c", b"c")).await.is_err());

    full.store(false, Ordering::SeqCst);
    // At most one attempt to open it again per RETRY_OPEN.
    let mut tries = 0;
    let a = loop {
        match store.get("s", b"a").await {
            Ok(a) => break a,
            Err(_) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the store did not come back: {e:?}"),
        }
    };
    assert_eq!(a.as_deref(), Some(&b"before"[..]));
    assert_eq!(
        store.get("s", b"b").await.unwrap(),
        None,
        "a failed commit left nothing"
    );
    assert_eq!(store.get("s", b"c").await.unwrap(), None);
    store.commit(put("b", &big)).await.unwrap();
    assert_eq!(store.get("s", b"b").await.unwrap(), Some(big));
    let all = store.scan("s", crate::KeyRange::prefix(b""), 10).await.unwrap();
    assert_eq!(all.len(), 2);
}
