//! Records every request needs, kept in memory between requests: each S3 request is
//! authorized, and reading its HMAC credential and its subject's policies from the store and
//! parsing them was about a quarter of a small GET's work. Every change of such a record
//! (policies created or deleted, credentials deleted, an identity deleted with its policies and
//! credentials) empties its cache once the commit returns, so the next request sees the change;
//! an epoch keeps a lookup that raced with a change from storing what it read before it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Entries kept; past this a cache starts over.
const ENTRIES: usize = 4096;

pub(crate) struct Cache<V>(Mutex<Cached<V>>);

struct Cached<V> {
    epoch: u64,
    entries: HashMap<String, V>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Self(Mutex::new(Cached {
            epoch: 0,
            entries: HashMap::new(),
        }))
    }
}

impl<V: Clone> Cache<V> {
    fn lock(&self) -> MutexGuard<'_, Cached<V>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value kept for `key`, or the epoch to store it under once read.
    pub(crate) fn get(&self, key: &str) -> Result<V, u64> {
        let c = self.lock();
        c.entries.get(key).cloned().ok_or(c.epoch)
    }

    /// Keeps what was read in `epoch`, unless something changed since.
    pub(crate) fn put(&self, epoch: u64, key: &str, value: V) {
        let mut c = self.lock();
        if c.epoch != epoch {
            return;
        }
        if c.entries.len() >= ENTRIES {
            c.entries.clear();
        }
        c.entries.insert(key.to_owned(), value);
    }

    /// Something changed: forget it all.
    pub(crate) fn changed(&self) {
        let mut c = self.lock();
        c.epoch += 1;
        c.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coffer_storage::local::RedbMetaStore;

    use crate::store::bootstrap::access;
    use crate::{Action, BootstrapRequest, Decision, Error, Iam, Principal, Resource, Role, TokenConfig};

    #[tokio::test]
    async fn a_policy_change_decides_the_very_next_request() {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMetaStore::open(&dir.path().join("m.redb")).unwrap();
        let iam = Iam::open(Arc::new(meta), TokenConfig::default()).await.unwrap();
        let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
        let account = boot.account_id.as_str();
        let user = iam.create_user(account, "reader").await.unwrap();
        let who = Principal::Identity {
            iam_id: user.iam_id.clone(),
            account: account.to_owned(),
        };
        let cos = Resource::instance(account, "cloud-object-storage", &boot.cos_instance_id);
        let scope = [("accountId", account), ("serviceName", "cloud-object-storage")];
        let grant = || access(&user.iam_id, &[Role::Reader], &scope);
        let may_read = || async {
            matches!(
                iam.authorize(&who, Action::CosReadObject, &cos).await.unwrap(),
                Decision::Allow
            )
        };

        // Each answer below was cached by the one before it.
        assert!(!may_read().await);
        assert!(!may_read().await);
        let p = iam
            .create_policy(grant(), account, &boot.admin_iam_id)
            .await
            .unwrap();
        assert!(may_read().await);
        assert!(may_read().await);
        iam.delete_policy(&p.id).await.unwrap();
        assert!(!may_read().await);
        iam.create_policy(grant(), account, &boot.admin_iam_id)
            .await
            .unwrap();
        assert!(may_read().await);
        iam.delete_user(&user.iam_id).await.unwrap();
        assert!(!may_read().await, "a deleted identity keeps no policy");
    }

    #[tokio::test]
    async fn a_deleted_credential_signs_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMetaStore::open(&dir.path().join("m.redb")).unwrap();
        let iam = Iam::open(Arc::new(meta), TokenConfig::default()).await.unwrap();
        let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
        let user = iam.create_user(&boot.account_id, "writer").await.unwrap();
        let gone = |r: crate::Result<crate::HmacCredential>| matches!(r, Err(Error::NotFound));

        let a = iam
            .create_hmac(&user.iam_id, &boot.cos_instance_id, None)
            .await
            .unwrap();
        for _ in 0..2 {
            let cached = iam.hmac(&a.access_key_id).await.unwrap();
            assert_eq!(cached.secret_access_key, a.secret_access_key);
        }
        iam.delete_hmac(&a.access_key_id).await.unwrap();
        assert!(gone(iam.hmac(&a.access_key_id).await));

        let b = iam
            .create_hmac(&user.iam_id, &boot.cos_instance_id, None)
            .await
            .unwrap();
        assert_eq!(iam.hmac(&b.access_key_id).await.unwrap().iam_id, user.iam_id);
        iam.delete_user(&user.iam_id).await.unwrap();
        assert!(
            gone(iam.hmac(&b.access_key_id).await),
            "a deleted identity keeps no credential"
        );
        // The owner's credential was cached alongside and is still there.
        assert!(iam.hmac(&boot.admin_access_key_id).await.is_ok());
    }
}
