//! The embedded backends: metadata in a redb file, blobs as files. Both live in the data dir.

mod fs_blobs;
mod fs_read;
mod redb_meta;

pub use fs_blobs::FsBlobStore;
pub use redb_meta::RedbMetaStore;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::contract;

    #[tokio::test]
    async fn redb_passes_the_meta_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
        contract::meta_suite(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn redb_keeps_commits_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = RedbMetaStore::open(&path).unwrap();
            let mut b = crate::Batch::new();
            b.put("s", "k", "v");
            crate::MetaStore::commit(&store, b).await.unwrap();
        }
        // The writer thread holds the database until its channel closes; wait for it to let go.
        let mut tries = 0;
        let store = loop {
            match RedbMetaStore::open(&path) {
                Ok(s) => break s,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(
            crate::MetaStore::get(&store, "s", b"k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    #[tokio::test]
    async fn fs_passes_the_blob_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        contract::blob_suite(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn fs_sweeps_unfinished_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("tmp").join("0123"), b"left by a crash").unwrap();
        assert_eq!(crate::BlobStore::sweep_unfinished(&store).await.unwrap(), 1);
    }
}
