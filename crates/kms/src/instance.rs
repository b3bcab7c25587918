//! KMS instances and their master keys: the custodian ceremony, the PKCS#11 provider, sealing
//! at start, and master key rotation.

use std::sync::Arc;

use coffer_crypto::{KeyMaterial, Pkcs11Token};
use coffer_iam::{Action, Instance, Principal, Resource, ServiceKind};
use coffer_storage::{Batch, KeyRange};
use serde::{Deserialize, Serialize};

use crate::provider::{MasterKey, Pkcs11MasterKey, ProviderKind, SoftwareMasterKey};
use crate::store::{IMPORT_TOKENS, INSTANCES, KEYS, Kms, lock, root_aad};
use crate::{KmsError, Result, now};

/// What the keystore remembers of an instance's master key: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub id: String,
    pub provider: ProviderKind,
    /// Custodian parts of the software master key.
    pub parts: u32,
    pub verification_pattern: String,
    /// True once a master key was loaded and verified.
    pub initialized: bool,
    /// A new master key being loaded (rotation): its parts and pattern.
    pub rotation: Option<PendingRotation>,
    pub updated: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingRotation {
    pub parts: u32,
    pub verification_pattern: String,
}

/// An instance as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub instance: Instance,
    pub provider: Option<ProviderKind>,
    pub initialized: bool,
    /// Initialized, but its master key is not in memory.
    pub sealed: bool,
    pub parts: u32,
    pub parts_loaded: u32,
    pub verification_pattern: Option<String>,
    pub rotation_pending: bool,
}

/// The result of loading one custodian part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOutcome {
    pub loaded: u32,
    pub needed: u32,
    /// All parts are in and the master key matched its verification pattern.
    pub complete: bool,
    pub verification_pattern: String,
}

const CANARY: &[u8] = b"coffer master key canary";

fn canary_aad(instance: &str) -> Vec<u8> {
    format!("coffer-kms/canary/v1|{instance}").into_bytes()
}

impl Kms {
    pub(crate) async fn instance_record(&self, id: &str) -> Result<Option<InstanceRecord>> {
        Ok(self.load::<InstanceRecord>(INSTANCES, id).await?.map(|(r, _)| r))
    }

    async fn put_instance(&self, record: &InstanceRecord, previous: Option<Vec<u8>>) -> Result<()> {
        let mut b = Batch::new();
        b.expect(INSTANCES, record.id.as_str(), previous).put(
            INSTANCES,
            record.id.as_str(),
            serde_json::to_vec(record)?,
        );
        self.meta().commit(b).await.map_err(|e| match e {
            coffer_storage::Error::Conflict => {
                KmsError::conflict("REQ_TOO_EARLY_ERR", "the instance changed meanwhile; retry")
            }
            e => e.into(),
        })
    }

    async fn manage(&self, caller: &Principal, instance: &Instance) -> Result<()> {
        let resource = Resource::instance(&instance.account, instance.service.name(), &instance.id);
        match self
            .iam()
            .authorize(caller, Action::InstanceManage, &resource)
            .await?
        {
            coffer_iam::Decision::Allow => Ok(()),
            coffer_iam::Decision::Deny(r) => Err(KmsError::Unauthorized(format!("Unauthorized: {r}"))),
        }
    }

    /// Creates a KMS instance (`hs-crypto` by default, or `kms`) in the caller's account.
    pub async fn create_instance(
        &self,
        caller: &Principal,
        service: ServiceKind,
        region: &str,
        name: &str,
    ) -> Result<Instance> {
        if !matches!(service, ServiceKind::Kms | ServiceKind::HsCrypto) {
            return Err(KmsError::invalid(
                "BAD_BODY_ERR",
                "a key management instance is kms or hs-crypto",
            ));
        }
        let resource = Resource {
            account: caller.account().to_owned(),
            service: Some(service.name().into()),
            ..Resource::default()
        };
        match self
            .iam()
            .authorize(caller, Action::InstanceManage, &resource)
            .await?
        {
            coffer_iam::Decision::Allow => {}
            coffer_iam::Decision::Deny(r) => {
                return Err(KmsError::Unauthorized(format!("Unauthorized: {r}")));
            }
        }
        Ok(self
            .iam()
            .create_instance(caller.account(), service, region, name)
            .await?)
    }

    pub async fn list_instances(&self, caller: &Principal) -> Result<Vec<InstanceInfo>> {
        let mut out = Vec::new();
        for kind in [ServiceKind::HsCrypto, ServiceKind::Kms] {
            for i in self.iam().list_instances(caller.account(), Some(kind)).await? {
                let resource = Resource::instance(&i.account, i.service.name(), &i.id);
                if self
                    .iam()
                    .authorize(caller, Action::InstanceView, &resource)
                    .await?
                    .is_allowed()
                {
                    out.push(self.info(i).await?);
                }
            }
        }
        Ok(out)
    }

    pub async fn instance_info(&self, caller: &Principal, id: &str) -> Result<InstanceInfo> {
        let instance = self.kms_instance(id).await?;
        let resource = Resource::instance(&instance.account, instance.service.name(), &instance.id);
        if !self
            .iam()
            .authorize(caller, Action::InstanceView, &resource)
            .await?
            .is_allowed()
        {
            return Err(KmsError::Unauthorized("Unauthorized".into()));
        }
        self.info(instance).await
    }

    async fn info(&self, instance: Instance) -> Result<InstanceInfo> {
        let record = self.instance_record(&instance.id).await?;
        let (loaded, unsealed) = {
            let rt = lock(&self.inner.runtime);
            let r = rt.get(&instance.id);
            (
                r.map_or(0, |r| r.pending.len()),
                r.is_some_and(|r| r.master.is_some()),
            )
        };
        Ok(InstanceInfo {
            provider: record.as_ref().map(|r| r.provider),
            initialized: record.as_ref().is_some_and(|r| r.initialized),
            sealed: record.as_ref().is_some_and(|r| r.initialized) && !unsealed,
            parts: record.as_ref().map_or(0, |r| r.parts),
            parts_loaded: u32::try_from(loaded).unwrap_or(u32::MAX),
            verification_pattern: record.as_ref().map(|r| r.verification_pattern.clone()),
            rotation_pending: record.as_ref().is_some_and(|r| r.rotation.is_some()),
            instance,
        })
    }

    /// Deletes an instance that holds no keys.
    pub async fn delete_instance(&self, caller: &Principal, id: &str) -> Result<()> {
        let instance = self.kms_instance(id).await?;
        self.manage(caller, &instance).await?;
        let keys = self
            .meta()
            .scan(KEYS, KeyRange::prefix(format!("{id}/").as_bytes()), 1)
            .await?;
        if !keys.is_empty() {
            return Err(KmsError::conflict(
                "PROTECTED_RESOURCE_ERR",
                "the instance still holds keys; delete and purge them first",
            ));
        }
        let mut b = Batch::new();
        b.delete(INSTANCES, id).delete(IMPORT_TOKENS, id);
        self.meta().commit(b).await?;
        lock(&self.inner.runtime).remove(id);
        self.iam().delete_instance(id).await?;
        Ok(())
    }

    /// Starts the software ceremony: the instance expects `parts` custodian parts whose master
    /// key has `verification_pattern`. The parts were made by the custodians, not here.
    pub async fn begin_software_init(
        &self,
        caller: &Principal,
        id: &str,
        parts: u32,
        verification_pattern: &str,
    ) -> Result<()> {
        let instance = self.kms_instance(id).await?;
        self.manage(caller, &instance).await?;
        if !(2..=3).contains(&parts) {
            return Err(KmsError::invalid(
                "BAD_BODY_ERR",
                "a master key has 2 or 3 custodian parts",
            ));
        }
        let previous = self.load::<InstanceRecord>(INSTANCES, id).await?;
        if previous.as_ref().is_some_and(|(r, _)| r.initialized) {
            return Err(KmsError::conflict(
                "INSTANCE_INITIALIZED_ERR",
                "the instance is already initialized; rotate its master key instead",
            ));
        }
        let record = InstanceRecord {
            id: id.to_owned(),
            provider: ProviderKind::Software,
            parts,
            verification_pattern: verification_pattern.to_owned(),
            initialized: false,
            rotation: None,
            updated: now(),
        };
        self.put_instance(&record, previous.map(|(_, raw)| raw)).await?;
        lock(&self.inner.runtime)
            .entry(id.to_owned())
            .or_default()
            .pending
            .clear();
        Ok(())
    }

    /// Loads one custodian part. When the last part arrives, the combined master key must
    /// match the recorded verification pattern; otherwise every loaded part is discarded and
    /// the instance stays sealed.
    pub async fn load_part(&self, caller: &Principal, id: &str, part: KeyMaterial) -> Result<LoadOutcome> {
        let instance = self.kms_instance(id).await?;
        self.manage(caller, &instance).await?;
        let Some(record) = self.instance_record(id).await? else {
            return Err(KmsError::NotInitialized);
        };
        if record.provider != ProviderKind::Software {
            return Err(KmsError::invalid(
                "BAD_BODY_ERR",
                "this instance's master key lives in a PKCS#11 token",
            ));
        }
        let (loaded, parts) = {
            let mut rt = lock(&self.inner.runtime);
            let state = rt.entry(id.to_owned()).or_default();
            if state.master.is_some() {
                return Err(KmsError::conflict(
                    "INSTANCE_UNSEALED_ERR",
                    "the master key is already loaded",
                ));
            }
            state.pending.push(part);
            let loaded = u32::try_from(state.pending.len()).unwrap_or(u32::MAX);
            if loaded < record.parts {
                return Ok(LoadOutcome {
                    loaded,
                    needed: record.parts,
                    complete: false,
                    verification_pattern: String::new(),
                });
            }
            (loaded, std::mem::take(&mut state.pending))
        };
        let key = SoftwareMasterKey::combine(&parts).ok_or(KmsError::NotInitialized)?;
        let pattern = key.verification_pattern();
        if pattern != record.verification_pattern {
            return Err(KmsError::invalid(
                "MASTER_KEY_VERIFICATION_ERR",
                format!(
                    "the parts make a master key with verification pattern {pattern}, not {}: a part is wrong; \
                     every loaded part was discarded",
                    record.verification_pattern
                ),
            ));
        }
        lock(&self.inner.runtime).entry(id.to_owned()).or_default().master = Some(Arc::new(key));
        if !record.initialized {
            let previous = self
                .load::<InstanceRecord>(INSTANCES, id)
                .await?
                .map(|(_, raw)| raw);
            self.put_instance(
                &InstanceRecord {
                    initialized: true,
                    updated: now(),
                    ..record.clone()
                },
                previous,
            )
            .await?;
        }
        tracing::info!(instance = id, "master key loaded");
        Ok(LoadOutcome {
            loaded,
            needed: record.parts,
            complete: true,
            verification_pattern: pattern,
        })
    }

    fn token(&self) -> Result<Arc<Pkcs11Token>> {
        let mut slot = lock(&self.inner.token);
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let cfg = self.inner.pkcs11.as_ref().ok_or_else(|| {
            KmsError::invalid(
                "BAD_BODY_ERR",
                "no PKCS#11 module is configured (COFFER_PKCS11_MODULE, _TOKEN_LABEL, _PIN)",
            )
        })?;
        let token = Arc::new(
            Pkcs11Token::open(&cfg.module, &cfg.token_label, cfg.pin.expose())
                .map_err(|e| KmsError::Provider(e.to_string()))?,
        );
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Initializes an instance with a master key generated inside the PKCS#11 token.
    pub async fn init_pkcs11(&self, caller: &Principal, id: &str) -> Result<String> {
        let instance = self.kms_instance(id).await?;
        self.manage(caller, &instance).await?;
        let previous = self.load::<InstanceRecord>(INSTANCES, id).await?;
        if previous.as_ref().is_some_and(|(r, _)| r.initialized) {
            return Err(KmsError::conflict(
                "INSTANCE_INITIALIZED_ERR",
                "the instance is already initialized",
            ));
        }
        let key = Pkcs11MasterKey::generate(self.token()?, &Pkcs11MasterKey::label_for(id))?;
        let canary = key.wrap(CANARY, &canary_aad(id))?;
        let record = InstanceRecord {
            id: id.to_owned(),
            provider: ProviderKind::Pkcs11,
            parts: 0,
            verification_pattern: format!("{}:{}", key.verification_pattern(), hex::encode(canary)),
            initialized: true,
            rotation: None,
            updated: now(),
        };
        self.put_instance(&record, previous.map(|(_, raw)| raw)).await?;
        let vp = key.verification_pattern();
        lock(&self.inner.runtime).entry(id.to_owned()).or_default().master = Some(Arc::new(key));
        Ok(vp)
    }

    /// At start: every PKCS#11 instance finds its token key and proves it with the canary.
    pub(crate) async fn unseal_pkcs11_instances(&self) -> Result<()> {
        let all = self
            .meta()
            .scan(INSTANCES, KeyRange::prefix(b""), usize::MAX)
            .await?;
        for (_, raw) in all {
            let record: InstanceRecord = serde_json::from_slice(&raw)?;
            if record.provider != ProviderKind::Pkcs11 || !record.initialized {
                continue;
            }
            let unsealed = self.token().and_then(|t| {
                let key = Pkcs11MasterKey::existing(t, &Pkcs11MasterKey::label_for(&record.id))?;
                let canary = record
                    .verification_pattern
                    .rsplit(':')
                    .next()
                    .and_then(|h| hex::decode(h).ok())
                    .unwrap_or_default();
                let ok = key
                    .unwrap(&canary, &canary_aad(&record.id))
                    .is_ok_and(|c| c.as_slice() == CANARY);
                if ok {
                    Ok(key)
                } else {
                    Err(KmsError::Provider(
                        "the token key does not open the canary".into(),
                    ))
                }
            });
            match unsealed {
                Ok(key) => {
                    lock(&self.inner.runtime)
                        .entry(record.id.clone())
                        .or_default()
                        .master = Some(Arc::new(key));
                }
                Err(e) => tracing::error!(instance = %record.id, error = %e, "PKCS#11 instance stays sealed"),
            }
        }
        Ok(())
    }

    /// Starts a master key rotation: the new key's parts and verification pattern.
    pub async fn begin_master_rotation(
        &self,
        caller: &Principal,
        id: &str,
        parts: u32,
        verification_pattern: &str,
    ) -> Result<()> {
        let instance = self.kms_instance(id).await?;
        self.manage(caller, &instance).await?;
        self.master(id).await?;
        let (record, raw) = self
            .load::<InstanceRecord>(INSTANCES, id)
            .await?
            .ok_or(KmsError::NotInitialized)?;
        if record.provider != ProviderKind::Software {
            return Err(KmsError::invalid(
                "BAD_BODY_ERR",
                "master key rotation by parts is for software instances",
            ));
        }
        if !(2..=3).contains(&parts) {
            return Err(KmsError::invalid(
                "BAD_BODY_ERR",
                "a master key has 2 or 3 custodian parts",
            ));
        }
        let next = InstanceRecord {
            rotation: Some(PendingRotation {
                parts,
                verification_pattern: verification_pattern.to_owned(),
            }),
            updated: now(),
            ..record
        };
        self.put_instance(&next, Some(raw)).await?;
        lock(&self.inner.runtime)
            .entry(id.to_owned())
            .or_default()
            .pending_new
            .clear();
        Ok(())
    }

    /// Loads a part of the new master key; the last part re-encrypts the keystore under the
    /// new key (online: readers keep using the cached material meanwhile) and makes it current.
    pub async fn load_new_part(
        &self,
        caller: &Principal,
        id: &str,
        part: KeyMaterial,
    ) -> Result<LoadOutcome> {
        let instance = self.kms_instance(id).await?;
        self.manage(caller, &instance).await?;
        let old = self.master(id).await?;
        let (record, _) = self
            .load::<InstanceRecord>(INSTANCES, id)
            .await?
            .ok_or(KmsError::NotInitialized)?;
        let pending = record
            .rotation
            .clone()
            .ok_or_else(|| KmsError::conflict("NO_ROTATION_ERR", "no master key rotation was started"))?;
        let parts = {
            let mut rt = lock(&self.inner.runtime);
            let state = rt.entry(id.to_owned()).or_default();
            state.pending_new.push(part);
            let loaded = u32::try_from(state.pending_new.len()).unwrap_or(u32::MAX);
            if loaded < pending.parts {
                return Ok(LoadOutcome {
                    loaded,
                    needed: pending.parts,
                    complete: false,
                    verification_pattern: String::new(),
                });
            }
            std::mem::take(&mut state.pending_new)
        };
        let new = SoftwareMasterKey::combine(&parts).ok_or(KmsError::NotInitialized)?;
        let pattern = new.verification_pattern();
        if pattern != pending.verification_pattern {
            return Err(KmsError::invalid(
                "MASTER_KEY_VERIFICATION_ERR",
                "the new parts do not match the new verification pattern; every loaded new part was discarded",
            ));
        }
        let new: Arc<dyn MasterKey> = Arc::new(new);
        self.reseal_keystore(id, &*old, &*new).await?;
        let (record, raw) = self
            .load::<InstanceRecord>(INSTANCES, id)
            .await?
            .ok_or(KmsError::NotInitialized)?;
        let next = InstanceRecord {
            verification_pattern: pattern.clone(),
            parts: pending.parts,
            rotation: None,
            updated: now(),
            ..record
        };
        self.put_instance(&next, Some(raw)).await?;
        lock(&self.inner.runtime).entry(id.to_owned()).or_default().master = Some(new);
        tracing::info!(instance = id, "master key rotated");
        Ok(LoadOutcome {
            loaded: pending.parts,
            needed: pending.parts,
            complete: true,
            verification_pattern: pattern,
        })
    }

    /// Re-seals every key version and the import token under `new`, one key at a time.
    async fn reseal_keystore(&self, id: &str, old: &dyn MasterKey, new: &dyn MasterKey) -> Result<()> {
        let keys = self
            .meta()
            .scan(KEYS, KeyRange::prefix(format!("{id}/").as_bytes()), usize::MAX)
            .await?;
        for (k, _) in keys {
            let key_id = String::from_utf8_lossy(k.get(id.len() + 1..).unwrap_or_default()).into_owned();
            self.update_key(id, &key_id, |r, _| {
                for v in &mut r.versions {
                    let aad = root_aad(id, &r.id, &v.id);
                    let sealed =
                        hex::decode(&v.sealed).map_err(|_| KmsError::Corrupt("sealed material".into()))?;
                    let material = old.unwrap(&sealed, &aad).or_else(|_| new.unwrap(&sealed, &aad))?;
                    v.sealed = hex::encode(new.wrap(&material, &aad)?);
                }
                Ok(())
            })
            .await?;
        }
        self.reseal_import_token(id, old, new).await
    }
}
