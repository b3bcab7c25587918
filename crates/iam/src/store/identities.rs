//! Users and service IDs.

use coffer_storage::Batch;

use super::{APIKEYS, HMAC, Iam, SERVICE_IDS, USERS, new_uuid, now};
use crate::model::{ApiKey, HmacCredential, ServiceId, User};
use crate::{Error, Result};

pub(crate) fn new_user_iam_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let tail: String = coffer_crypto::random_bytes(10)
        .iter()
        .map(|b| {
            char::from(
                ALPHABET
                    .get(usize::from(*b) % ALPHABET.len())
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect();
    format!("IBMid-{tail}")
}

fn valid_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 256 {
        return Err(Error::invalid("a name of 1 to 256 characters is required"));
    }
    Ok(())
}

impl Iam {
    pub async fn create_user(&self, account: &str, name: &str) -> Result<User> {
        valid_name(name)?;
        self.account(account).await?;
        let user = User {
            iam_id: new_user_iam_id(),
            account: account.to_owned(),
            name: name.to_owned(),
            created: now(),
        };
        let mut b = Batch::new();
        Self::insert(&mut b, USERS, &user.iam_id, &user)?;
        self.commit_new(b).await?;
        Ok(user)
    }

    pub async fn user(&self, iam_id: &str) -> Result<User> {
        self.load(USERS, iam_id).await
    }

    pub async fn list_users(&self, account: &str) -> Result<Vec<User>> {
        let all: Vec<User> = self.load_all(USERS, "").await?;
        Ok(all.into_iter().filter(|u| u.account == account).collect())
    }

    pub async fn create_service_id(
        &self,
        account: &str,
        name: &str,
        description: Option<String>,
    ) -> Result<ServiceId> {
        valid_name(name)?;
        self.account(account).await?;
        let uuid = new_uuid();
        let sid = ServiceId {
            id: format!("ServiceId-{uuid}"),
            iam_id: format!("iam-ServiceId-{uuid}"),
            account: account.to_owned(),
            name: name.to_owned(),
            description,
            created: now(),
        };
        let mut b = Batch::new();
        Self::insert(&mut b, SERVICE_IDS, &sid.iam_id, &sid)?;
        self.commit_new(b).await?;
        Ok(sid)
    }

    /// A service ID by its `ServiceId-…` id or its `iam-ServiceId-…` IAM id.
    pub async fn service_id(&self, id: &str) -> Result<ServiceId> {
        let iam_id = if id.starts_with("iam-") {
            id.to_owned()
        } else {
            format!("iam-{id}")
        };
        self.load(SERVICE_IDS, &iam_id).await
    }

    pub async fn list_service_ids(&self, account: &str) -> Result<Vec<ServiceId>> {
        let all: Vec<ServiceId> = self.load_all(SERVICE_IDS, "").await?;
        Ok(all.into_iter().filter(|s| s.account == account).collect())
    }

    /// The account of an identity (user or service ID), if it exists.
    pub async fn identity_account(&self, iam_id: &str) -> Result<String> {
        if iam_id.starts_with("iam-ServiceId-") {
            Ok(self.service_id(iam_id).await?.account)
        } else {
            Ok(self.user(iam_id).await?.account)
        }
    }

    /// Deletes a user, except the account owner (the account would have no administrator).
    pub async fn delete_user(&self, iam_id: &str) -> Result<()> {
        self.user(iam_id).await?;
        if self
            .bootstrap_record()
            .await?
            .is_some_and(|b| b.admin_iam_id == iam_id)
        {
            return Err(Error::invalid("the account owner cannot be deleted"));
        }
        self.delete_identity(USERS, iam_id).await
    }

    pub async fn delete_service_id(&self, id: &str) -> Result<()> {
        let sid = self.service_id(id).await?;
        self.delete_identity(SERVICE_IDS, &sid.iam_id).await
    }

    /// Deletes an identity with its API keys, HMAC credentials and access policies.
    async fn delete_identity(&self, space: &'static str, iam_id: &str) -> Result<()> {
        let mut b = Batch::new();
        b.delete(space, iam_id);
        let keys: Vec<ApiKey> = self.load_all(APIKEYS, "").await?;
        for k in keys.iter().filter(|k| k.iam_id == iam_id) {
            Self::delete_apikey_ops(&mut b, k);
        }
        let creds: Vec<HmacCredential> = self.load_all(HMAC, "").await?;
        for c in creds.iter().filter(|c| c.iam_id == iam_id) {
            b.delete(HMAC, c.access_key_id.as_str());
        }
        for p in self.policies_naming(iam_id).await? {
            Self::delete_policy_ops(&mut b, &p);
        }
        let done = self.meta.commit(b).await;
        self.policies.changed();
        self.hmacs.changed();
        done?;
        Ok(())
    }
}
