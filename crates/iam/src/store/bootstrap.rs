//! The first start: the default account, its object-storage instance, and an admin with an
//! HMAC pair, an API key and policies that let it do everything in the account.

use coffer_storage::Batch;

use super::identities::new_user_iam_id;
use super::{ACCOUNTS, INSTANCES, Iam, SYSTEM, USERS, new_uuid, now, random_hex};
use crate::model::{Account, Instance, ServiceKind, User};
use crate::policy::{Attribute, Attributes, PolicyInput, PolicyRole, PolicyType};
use crate::role::Role;
use crate::secret::SecretString;
use crate::{Error, Result};

const BOOTSTRAP_KEY: &str = "bootstrap";

/// Preset admin credentials, if the operator gave any.
#[derive(Debug, Clone, Default)]
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

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    Attributes {
        attributes: pairs
            .iter()
            .map(|(n, v)| Attribute {
                name: (*n).into(),
                value: (*v).into(),
                operator: None,
            })
            .collect(),
    }
}

pub(super) fn access(iam_id: &str, roles: &[Role], resource: &[(&str, &str)]) -> PolicyInput {
    PolicyInput {
        kind: PolicyType::Access,
        subjects: vec![attrs(&[("iam_id", iam_id)])],
        roles: roles
            .iter()
            .map(|r| PolicyRole {
                role_id: r.role_id(),
                display_name: None,
                description: None,
            })
            .collect(),
        resources: vec![attrs(resource)],
        description: Some("account owner (created at bootstrap)".into()),
    }
}

impl Iam {
    /// What the first start created, if it happened.
    pub async fn bootstrap_record(&self) -> Result<Option<Bootstrap>> {
        match self.meta.get(SYSTEM, BOOTSTRAP_KEY.as_bytes()).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Creates the default account on the first start; afterwards returns it, adding preset
    /// admin HMAC credentials if they are new.
    pub async fn bootstrap(&self, req: BootstrapRequest) -> Result<Bootstrap> {
        if let Some(bytes) = self.meta.get(SYSTEM, BOOTSTRAP_KEY.as_bytes()).await? {
            let boot: Bootstrap = serde_json::from_slice(&bytes)?;
            if let Some((ak, sk)) = req.admin_hmac {
                match self.hmac(&ak).await {
                    Ok(existing)
                        if existing.secret_access_key == sk && existing.iam_id == boot.admin_iam_id => {}
                    Ok(_) => {
                        return Err(Error::invalid(
                            "the preset admin access key is taken by another secret",
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
            id: new_uuid(),
            account: account.id.clone(),
            service: ServiceKind::ObjectStorage,
            region: "global".into(),
            name: "default object storage".into(),
            created,
        };
        let admin = User {
            iam_id: new_user_iam_id(),
            account: account.id.clone(),
            name: "admin".into(),
            created,
        };
        let mut b = Batch::new();
        Self::insert(&mut b, ACCOUNTS, &account.id, &account)?;
        Self::insert(&mut b, INSTANCES, &instance.id, &instance)?;
        Self::insert(&mut b, USERS, &admin.iam_id, &admin)?;
        self.meta.commit(b).await?;

        let everything = [("accountId", account.id.as_str())];
        self.create_policy(
            access(&admin.iam_id, &[Role::Administrator, Role::Manager], &everything),
            &account.id,
            &admin.iam_id,
        )
        .await?;
        for kms in [ServiceKind::Kms, ServiceKind::HsCrypto] {
            let scope = [("accountId", account.id.as_str()), ("serviceName", kms.name())];
            self.create_policy(
                access(&admin.iam_id, &[Role::KeyPurge], &scope),
                &account.id,
                &admin.iam_id,
            )
            .await?;
        }
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
        Self::insert(&mut b, SYSTEM, BOOTSTRAP_KEY, &boot)?;
        self.meta.commit(b).await?;
        Ok(boot)
    }

    /// The admin's API key for the bootstrap file: `preset` if given (created if new), else
    /// `known` if it still authenticates the admin, else a new key. Only a hash is stored, so a
    /// key is re-issued when the file that held it is gone.
    pub async fn admin_apikey(
        &self,
        boot: &Bootstrap,
        known: Option<SecretString>,
        preset: Option<SecretString>,
    ) -> Result<SecretString> {
        let candidate = preset.clone().or(known);
        if let Some(secret) = candidate {
            match self.apikey_by_secret(secret.expose()).await {
                Ok(k) if k.iam_id == boot.admin_iam_id && !k.disabled => return Ok(secret),
                Ok(_) if preset.is_some() => {
                    return Err(Error::invalid(
                        "the preset admin API key belongs to another identity or is disabled",
                    ));
                }
                Ok(_) | Err(Error::ApiKeyNotFound) => {
                    if preset.is_some() {
                        let key = self
                            .create_apikey(
                                &boot.admin_iam_id,
                                "admin (preset)",
                                None,
                                &boot.admin_iam_id,
                                Some(secret),
                            )
                            .await?;
                        return Ok(key.secret);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let key = self
            .create_apikey(
                &boot.admin_iam_id,
                "admin (bootstrap)",
                None,
                &boot.admin_iam_id,
                None,
            )
            .await?;
        Ok(key.secret)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coffer_storage::local::RedbMetaStore;

    use super::*;
    use crate::token::TokenConfig;

    async fn iam() -> (tempfile::TempDir, Iam) {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMetaStore::open(&dir.path().join("m.redb")).unwrap();
        (
            dir,
            Iam::open(Arc::new(meta), TokenConfig::default()).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn bootstrap_is_created_once() {
        let (_d, iam) = iam().await;
        let a = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
        let b = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
        assert_eq!(a, b);
        let cred = iam.hmac(&a.admin_access_key_id).await.unwrap();
        assert_eq!(cred.access_key_id.len(), 32);
        assert_eq!(cred.secret_access_key.expose().len(), 48);
        assert_eq!(cred.instance_id, a.cos_instance_id);
        let crn = iam.instance(&a.cos_instance_id).await.unwrap().crn().to_string();
        assert_eq!(iam.instance_by_ref(&crn).await.unwrap().account, a.account_id);
        assert_eq!(
            iam.list_policies(&a.account_id, None, Some(&a.admin_iam_id))
                .await
                .unwrap()
                .len(),
            3
        );
    }

    #[tokio::test]
    async fn preset_credentials_are_used_and_added_later() {
        let (_d, iam) = iam().await;
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

    #[tokio::test]
    async fn admin_apikey_is_kept_preset_or_reissued() {
        let (_d, iam) = iam().await;
        let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
        let first = iam.admin_apikey(&boot, None, None).await.unwrap();
        let kept = iam.admin_apikey(&boot, Some(first.clone()), None).await.unwrap();
        assert_eq!(kept, first);
        let preset = SecretString::new("preset-admin-key-0123456789".into());
        assert_eq!(
            iam.admin_apikey(&boot, Some(first.clone()), Some(preset.clone()))
                .await
                .unwrap(),
            preset
        );
        assert_eq!(
            iam.apikey_by_secret(preset.expose()).await.unwrap().iam_id,
            boot.admin_iam_id
        );
        let unknown = SecretString::new("not-a-key-not-a-key-not-a-key".into());
        let reissued = iam
            .admin_apikey(&boot, Some(unknown.clone()), None)
            .await
            .unwrap();
        assert_ne!(reissued, unknown);
    }
}
