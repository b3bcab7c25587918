//! HMAC credentials for SigV4.

use coffer_storage::Batch;

use super::{HMAC, Iam, now, random_hex};
use crate::model::{HmacCredential, ServiceKind};
use crate::secret::SecretString;
use crate::{Error, Result};

impl Iam {
    pub async fn hmac(&self, access_key_id: &str) -> Result<HmacCredential> {
        let epoch = match self.hmacs.get(access_key_id) {
            Ok(hit) => return Ok(hit),
            Err(epoch) => epoch,
        };
        let cred: HmacCredential = self.load(HMAC, access_key_id).await?;
        self.hmacs.put(epoch, access_key_id, cred.clone());
        Ok(cred)
    }

    /// Creates an HMAC pair (32 hex / 48 hex) for an identity on an object-storage instance.
    /// With `preset`, uses those values (16 to 128 printable characters each).
    pub async fn create_hmac(
        &self,
        iam_id: &str,
        instance_id: &str,
        preset: Option<(String, SecretString)>,
    ) -> Result<HmacCredential> {
        let instance = self.instance(instance_id).await?;
        if instance.service != ServiceKind::ObjectStorage {
            return Err(Error::invalid(
                "HMAC credentials belong to object-storage instances",
            ));
        }
        if self.identity_account(iam_id).await? != instance.account {
            return Err(Error::invalid(
                "the identity and the instance belong to different accounts",
            ));
        }
        let (access_key_id, secret) = match preset {
            Some((ak, sk)) => {
                let ok = |s: &str| (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
                if !ok(&ak) || !ok(sk.expose()) {
                    return Err(Error::invalid(
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
        Self::insert(&mut b, HMAC, &cred.access_key_id, &cred)?;
        self.commit_new(b).await?;
        Ok(cred)
    }

    pub async fn list_hmac(&self, account: &str) -> Result<Vec<HmacCredential>> {
        let all: Vec<HmacCredential> = self.load_all(HMAC, "").await?;
        Ok(all.into_iter().filter(|c| c.account == account).collect())
    }

    pub async fn delete_hmac(&self, access_key_id: &str) -> Result<()> {
        self.hmac(access_key_id).await?;
        let mut b = Batch::new();
        b.delete(HMAC, access_key_id);
        let done = self.meta.commit(b).await;
        self.hmacs.changed();
        done?;
        Ok(())
    }
}
