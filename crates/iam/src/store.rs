//! [`Iam`]: the identity records in the metadata store, and the first-start bootstrap.

use std::sync::Arc;

use coffer_storage::{Batch, MetaStore};
use serde::{Serialize, de::DeserializeOwned};

use crate::model::{Account, HmacCredential, Instance, ServiceKind, User};
use crate::secret::SecretString;
use crate::{Error, Result};

const ACCOUNTS: &str = "iam.accounts";
const INSTANCES: &str = "iam.instances";
const USERS: &str = "iam.users";
const HMAC: &str = "iam.hmac";
const SYSTEM: &str = "iam.system";
const BOOTSTRAP_KEY: &[u8] = b"bootstrap";

/// What the first start needs: optionally, preset admin HMAC credentials.
#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    pub admin_hmac: Option<(String, SecretString)>,
}

/// What the first start created; the same on every later start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bootstrap {
    pub account_id: String,
    pub cos_instance_id: String,
    pub admin_iam_id: String,
    pub admin_access_key_id: String,
}

/// The identity records.
#[derive(Clone)]
pub struct Iam {
    meta: Arc<dyn MetaStore>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

fn new_iam_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let tail: String = (0..10)
        .map(|_| {
            char::from(
                ALPHABET
                    .get(rand::random_range(0..ALPHABET.len()))
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect();
    format!("IBMid-{tail}")
}

impl Iam {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self { meta }
    }

    async fn load<T: DeserializeOwned>(&self, space: &'static str, key: &str) -> Result<T> {
        let bytes = self
            .meta
            .get(space, key.as_bytes())
            .await?
            .ok_or(Error::NotFound)?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    fn put<T: Serialize>(batch: &mut Batch, space: &'static str, key: &str, value: &T) -> Result<()> {
        batch
            .expect_absent(space, key.as_bytes())
            .put(space, key.as_bytes(), serde_json::to_vec(value)?);
        Ok(())
    }

    pub async fn account(&self, id: &str) -> Result<Account> {
        self.load(ACCOUNTS, id).await
    }

    pub async fn instance(&self, id: &str) -> Result<Instance> {
        self.load(INSTANCES, id).await
    }

    /// An instance named by its GUID or by its CRN, as `ibm-service-instance-id` may carry either.
    pub async fn instance_by_ref(&self, guid_or_crn: &str) -> Result<Instance> {
        let id = match guid_or_crn.parse::<crate::Crn>() {
            Ok(crn) => crn.instance,
            Err(_) => guid_or_crn.to_owned(),
        };
        if id.is_empty() {
            return Err(Error::NotFound);
        }
        self.instance(&id).await
    }

    pub async fn user(&self, iam_id: &str) -> Result<User> {
        self.load(USERS, iam_id).await
    }

    pub async fn hmac(&self, access_key_id: &str) -> Result<HmacCredential> {
        self.load(HMAC, access_key_id).await
    }

    /// Creates an HMAC pair for `iam_id` on an object-storage instance. With `preset`, uses
    /// those values (they must have the documented shapes' lengths: 16 to 128 characters).
    pub async fn create_hmac(
        &self,
        iam_id: &str,
        instance_id: &str,
        preset: Option<(String, SecretString)>,
    ) -> Result<HmacCredential> {
        let instance = self.instance(instance_id).await?;
        if instance.service != ServiceKind::ObjectStorage {
            return Err(Error::Invalid(
                "HMAC credentials belong to object-storage instances",
            ));
        }
        let (access_key_id, secret) = match preset {
            Some((ak, sk)) => {
                let ok = |s: &str| (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
                if !ok(&ak) || !ok(sk.expose()) {
                    return Err(Error::Invalid(
                        "access key and secret must be 16 to 128 printable characters",
                    ));
                }
                (ak, sk)
            }
            None => (random_hex(16), SecretString::new(random_hex(24))),
        };
        let cred = HmacCredential {
            access_key_id,
            secret_access_key: secret,
            iam_id: iam_id.to_owned(),
            instance_id: instance.id,
            account: instance.account,
            created: now(),
        };
        let mut b = Batch::new();
        Self::put(&mut b, HMAC, &cred.access_key_id, &cred)?;
        self.meta.commit(b).await.map_err(|e| match e {
            coffer_storage::Error::Conflict => Error::AlreadyExists,
            e => Error::Storage(e),
        })?;
        Ok(cred)
    }

    /// Creates, on the first start, the default account, its object-storage instance and an
    /// admin user with an HMAC pair. On later starts returns what was created then, and adds
    /// preset admin credentials if they are new.
    pub async fn bootstrap(&self, req: BootstrapRequest) -> Result<Bootstrap> {
        if let Some(bytes) = self.meta.get(SYSTEM, BOOTSTRAP_KEY).await? {
            let boot: Bootstrap = serde_json::from_slice(&bytes)?;
            if let Some((ak, sk)) = req.admin_hmac {
                match self.hmac(&ak).await {
                    Ok(existing)
                        if existing.secret_access_key == sk && existing.iam_id == boot.admin_iam_id => {}
                    Ok(_) => {
                        return Err(Error::Invalid(
                            "preset admin access key is taken by another secret or identity",
                        ));
                    }
                    Err(Error::NotFound) => {
                        self.create_hmac(&boot.admin_iam_id, &boot.cos_instance_id, Some((ak, sk)))
                            .await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(boot);
        }

        let created = now();
        let account = Account {
            id: random_hex(16),
            name: "default".into(),
            created,
        };
        let instance = Instance {
            id: uuid::Uuid::new_v4().to_string(),
            account: account.id.clone(),
            service: ServiceKind::ObjectStorage,
            region: "global".into(),
            name: "default object storage".into(),
            created,
        };
        let admin = User {
            iam_id: new_iam_id(),
            account: account.id.clone(),
            name: "admin".into(),
            created,
        };
        let mut b = Batch::new();
        Self::put(&mut b, ACCOUNTS, &account.id, &account)?;
        Self::put(&mut b, INSTANCES, &instance.id, &instance)?;
        Self::put(&mut b, USERS, &admin.iam_id, &admin)?;
        self.meta.commit(b).await?;

        let cred = self
            .create_hmac(&admin.iam_id, &instance.id, req.admin_hmac)
            .await?;
        let boot = Bootstrap {
            account_id: account.id,
            cos_instance_id: instance.id,
            admin_iam_id: admin.iam_id,
            admin_access_key_id: cred.access_key_id,
        };
        let mut b = Batch::new();
        Self::put(&mut b, SYSTEM, "bootstrap", &boot)?;
        self.meta.commit(b).await?;
        Ok(boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_storage::local::RedbMetaStore;

    fn iam() -> (tempfile::TempDir, Iam) {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMetaStore::open(&dir.path().join("m.redb")).unwrap();
        (dir, Iam::new(Arc::new(meta)))
    }

    #[tokio::test]
    async fn bootstrap_is_created_once() {
        let (_d, iam) = iam();
        let a = iam
            .bootstrap(BootstrapRequest { admin_hmac: None })
            .await
            .unwrap();
        let b = iam
            .bootstrap(BootstrapRequest { admin_hmac: None })
            .await
            .unwrap();
        assert_eq!(a, b);
        let cred = iam.hmac(&a.admin_access_key_id).await.unwrap();
        assert_eq!(cred.access_key_id.len(), 32);
        assert_eq!(cred.secret_access_key.expose().len(), 48);
        assert_eq!(cred.instance_id, a.cos_instance_id);
        let inst = iam
            .instance_by_ref(&iam.instance(&a.cos_instance_id).await.unwrap().crn().to_string())
            .await
            .unwrap();
        assert_eq!(inst.account, a.account_id);
    }

    #[tokio::test]
    async fn preset_credentials_are_used_and_added_later() {
        let (_d, iam) = iam();
        let preset = (
            "AKIDPRESET000001".to_string(),
            SecretString::new("secretsecretsecret".into()),
        );
        let a = iam
            .bootstrap(BootstrapRequest {
                admin_hmac: Some(preset.clone()),
            })
            .await
            .unwrap();
        assert_eq!(a.admin_access_key_id, preset.0);
        let later = (
            "AKIDPRESET000002".to_string(),
            SecretString::new("othersecretothersecret".into()),
        );
        iam.bootstrap(BootstrapRequest {
            admin_hmac: Some(later.clone()),
        })
        .await
        .unwrap();
        assert_eq!(iam.hmac(&later.0).await.unwrap().iam_id, a.admin_iam_id);
        let clash = (preset.0.clone(), SecretString::new("a-different-secret".into()));
        assert!(
            iam.bootstrap(BootstrapRequest {
                admin_hmac: Some(clash)
            })
            .await
            .is_err()
        );
    }
}
