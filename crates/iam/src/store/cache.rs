//! IAM records every request needs, kept in memory between requests ([`coffer_storage::Cache`]):
//! each S3 request is authorized, and reading its HMAC credential and its subject's policies
//! from the store and parsing them was about a quarter of a small GET's work. Every change of
//! such a record (policies created or deleted, credentials deleted, an identity deleted with its
//! policies and credentials) empties its cache once the commit returns.

pub(crate) use coffer_storage::Cache;

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
