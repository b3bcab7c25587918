//! The policies of each subject, kept in memory between requests: every S3 request is
//! authorized, and reading its subject's policies from the store and parsing them was a fifth
//! of a small GET's work. Every change of a policy (create, delete, an identity deleted with its
//! policies) empties the cache once its commit returns, so the next request decides on the new
//! policies; an epoch keeps a lookup that raced with a change from storing what it read before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::policy::Policy;

/// Subjects kept; past this the cache starts over.
const SUBJECTS: usize = 4096;

#[derive(Default)]
pub(crate) struct PolicyCache(Mutex<Cached>);

#[derive(Default)]
struct Cached {
    epoch: u64,
    by_subject: HashMap<String, Arc<[Policy]>>,
}

impl PolicyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The policies of the subject with index prefix `subject`, or the epoch to store them
    /// under once read.
    pub(crate) fn get(&self, subject: &str) -> Result<Arc<[Policy]>, u64> {
        let c = self.lock();
        c.by_subject.get(subject).cloned().ok_or(c.epoch)
    }

    /// Keeps what was read in `epoch`, unless a policy changed since.
    pub(crate) fn put(&self, epoch: u64, subject: &str, policies: Arc<[Policy]>) {
        let mut c = self.lock();
        if c.epoch != epoch {
            return;
        }
        if c.by_subject.len() >= SUBJECTS {
            c.by_subject.clear();
        }
        c.by_subject.insert(subject.to_owned(), policies);
    }

    /// A policy changed: forget them all.
    pub(crate) fn changed(&self) {
        let mut c = self.lock();
        c.epoch += 1;
        c.by_subject.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coffer_storage::local::RedbMetaStore;

    use crate::store::bootstrap::access;
    use crate::{Action, BootstrapRequest, Decision, Iam, Principal, Resource, Role, TokenConfig};

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
}
