//! [`Kms`]: the shared state (metadata store, unsealed master keys, caches) and the helpers
//! every operation uses: authorization, key lookup, compare-and-set updates, root material.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_crypto::{KeyMaterial, Pkcs11Token, hkdf_sha256};
use coffer_iam::{Action, Decision, Iam, Instance, Principal, Resource, ServiceKind};
use coffer_storage::{Batch, MetaStore};
use serde::de::DeserializeOwned;

use crate::config::{Pkcs11Config, Timing};
use crate::events::Subscribers;
use crate::model::{KeyRecord, Version};
use crate::provider::MasterKey;
use crate::{KmsError, Result};

pub(crate) const INSTANCES: &str = "kms.instances";
pub(crate) const KEYS: &str = "kms.keys";
pub(crate) const ALIASES: &str = "kms.aliases";
pub(crate) const KEY_RINGS: &str = "kms.key-rings";
pub(crate) const REGISTRATIONS: &str = "kms.registrations";
/// Registrations a forced delete took off a key, kept so a restore gives them back.
pub(crate) const PARKED_REGISTRATIONS: &str = "kms.registrations.parked";
pub(crate) const EVENTS: &str = "kms.events";
pub(crate) const INSTANCE_POLICIES: &str = "kms.instance-policies";
pub(crate) const IMPORT_TOKENS: &str = "kms.import-tokens";

/// Per-instance state held in memory only.
#[derive(Default)]
pub(crate) struct Runtime {
    pub master: Option<Arc<dyn MasterKey>>,
    /// Custodian parts loaded so far for the current master key.
    pub pending: Vec<KeyMaterial>,
    /// Parts loaded so far for a new master key (rotation).
    pub pending_new: Vec<KeyMaterial>,
}

pub(crate) struct Inner {
    pub meta: Arc<dyn MetaStore>,
    pub iam: Iam,
    pub timing: Timing,
    pub pkcs11: Option<Pkcs11Config>,
    pub token: Mutex<Option<Arc<Pkcs11Token>>>,
    pub runtime: Mutex<HashMap<String, Runtime>>,
    /// Parsed key records by key id (this process writes every key, so it stays current).
    pub records: Mutex<HashMap<String, Arc<KeyRecord>>>,
    /// Derived wrapping keys by version id.
    pub material: Mutex<HashMap<String, Arc<KeyMaterial>>>,
    pub subscribers: Subscribers,
}

/// The key management service.
#[derive(Clone)]
pub struct Kms {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the maps themselves stay consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn key_key(instance: &str, key_id: &str) -> String {
    format!("{instance}/{key_id}")
}

pub(crate) fn root_aad(instance: &str, key_id: &str, version: &str) -> Vec<u8> {
    format!("coffer-kms/root/v1|{instance}|{key_id}|{version}").into_bytes()
}

impl Kms {
    /// Opens the KMS: PKCS#11 instances unseal themselves from the token; software instances
    /// stay sealed until their custodians load their parts.
    pub async fn open(
        meta: Arc<dyn MetaStore>,
        iam: Iam,
        timing: Timing,
        pkcs11: Option<Pkcs11Config>,
    ) -> Result<Self> {
        let kms = Self {
            inner: Arc::new(Inner {
                meta,
                iam,
                timing,
                pkcs11,
                token: Mutex::new(None),
                runtime: Mutex::new(HashMap::new()),
                records: Mutex::new(HashMap::new()),
                material: Mutex::new(HashMap::new()),
                subscribers: Subscribers::default(),
            }),
        };
        kms.unseal_pkcs11_instances().await?;
        Ok(kms)
    }

    pub(crate) fn meta(&self) -> &dyn MetaStore {
        &*self.inner.meta
    }

    pub(crate) fn iam(&self) -> &Iam {
        &self.inner.iam
    }

    pub fn timing(&self) -> &Timing {
        &self.inner.timing
    }

    pub(crate) async fn load<T: DeserializeOwned>(
        &self,
        space: &'static str,
        key: &str,
    ) -> Result<Option<(T, Vec<u8>)>> {
        match self.meta().get(space, key.as_bytes()).await? {
            Some(raw) => Ok(Some((serde_json::from_slice(&raw)?, raw))),
            None => Ok(None),
        }
    }

    /// The IAM instance behind a `Bluemix-Instance` value, if it is a KMS instance.
    pub async fn kms_instance(&self, id: &str) -> Result<Instance> {
        match self.iam().instance(id).await {
            Ok(i) if matches!(i.service, ServiceKind::Kms | ServiceKind::HsCrypto) => Ok(i),
            Ok(_) | Err(coffer_iam::Error::NotFound) => Err(KmsError::Unauthorized(
                "the Bluemix-Instance header names no key management instance".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Authorizes `caller` for `action` on the instance (and a key in it).
    pub(crate) async fn authorize(
        &self,
        caller: &Principal,
        action: Action,
        instance: &Instance,
        key: Option<&str>,
    ) -> Result<()> {
        let mut resource = Resource::instance(&instance.account, instance.service.name(), &instance.id);
        if let Some(k) = key {
            resource = resource.within("key", k);
        }
        match self.iam().authorize(caller, action, &resource).await? {
            Decision::Allow => Ok(()),
            Decision::Deny(coffer_iam::DenyReason::ServiceOnly) => Err(KmsError::Forbidden {
                code: "SERVICE_ONLY_ERR",
                message: "Only services may perform this action".into(),
            }),
            Decision::Deny(reason) => Err(KmsError::Unauthorized(format!(
                "Unauthorized: the caller may not perform {} on this resource ({reason})",
                action.name()
            ))),
        }
    }

    /// The unsealed master key of an initialized instance.
    pub(crate) async fn master(&self, instance: &str) -> Result<Arc<dyn MasterKey>> {
        if let Some(m) = lock(&self.inner.runtime)
            .get(instance)
            .and_then(|r| r.master.clone())
        {
            return Ok(m);
        }
        match self.instance_record(instance).await? {
            Some(r) if r.initialized => Err(KmsError::Sealed),
            _ => Err(KmsError::NotInitialized),
        }
    }

    /// Loads a key by id or alias (purged and foreign keys are not found).
    pub(crate) async fn key(&self, instance: &str, id_or_alias: &str) -> Result<(Arc<KeyRecord>, Vec<u8>)> {
        let id = match self
            .load::<String>(crate::store::ALIASES, &format!("{instance}/{id_or_alias}"))
            .await?
        {
            Some((id, _)) => id,
            None => id_or_alias.to_owned(),
        };
        let (record, raw): (KeyRecord, Vec<u8>) = self
            .load(KEYS, &key_key(instance, &id))
            .await?
            .ok_or_else(KmsError::key_not_found)?;
        let record = Arc::new(record);
        lock(&self.inner.records).insert(record.id.clone(), record.clone());
        Ok((record, raw))
    }

    /// A key from the cache when possible (the hot path of wrap and unwrap).
    pub(crate) async fn key_cached(&self, instance: &str, id_or_alias: &str) -> Result<Arc<KeyRecord>> {
        if let Some(r) = lock(&self.inner.records)
            .get(id_or_alias)
            .filter(|r| r.instance == instance)
            .cloned()
        {
            return Ok(r);
        }
        Ok(self.key(instance, id_or_alias).await?.0)
    }

    /// Applies `change` to a key with compare-and-set, retrying on races; `extra` adds writes
    /// that commit with it.
    pub(crate) async fn update_key<F>(&self, instance: &str, key_id: &str, mut change: F) -> Result<KeyRecord>
    where
        F: FnMut(&mut KeyRecord, &mut Batch) -> Result<()>,
    {
        loop {
            let (current, raw) = self.key(instance, key_id).await?;
            let mut next = (*current).clone();
            let mut batch = Batch::new();
            change(&mut next, &mut batch)?;
            next.updated = crate::now();
            let k = key_key(instance, &next.id);
            batch
                .expect_value(KEYS, k.clone(), raw)
                .put(KEYS, k, serde_json::to_vec(&next)?);
            match self.meta().commit(batch).await {
                Ok(()) => {
                    lock(&self.inner.records).insert(next.id.clone(), Arc::new(next.clone()));
                    return Ok(next);
                }
                Err(coffer_storage::Error::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Seals fresh material as a new version of a key.
    pub(crate) async fn seal_version(
        &self,
        instance: &str,
        key_id: &str,
        material: &[u8],
    ) -> Result<Version> {
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = self
            .master(instance)
            .await?
            .wrap(material, &root_aad(instance, key_id, &id))?;
        Ok(Version {
            id,
            created: crate::now(),
            sealed: hex::encode(sealed),
        })
    }

    /// The raw material of a version (standard keys' payloads).
    pub(crate) async fn open_version(
        &self,
        instance: &str,
        key_id: &str,
        v: &Version,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let sealed = hex::decode(&v.sealed).map_err(|_| KmsError::Corrupt("sealed material".into()))?;
        self.master(instance)
            .await?
            .unwrap(&sealed, &root_aad(instance, key_id, &v.id))
    }

    /// The AES-256 key that wraps DEKs for a version, derived from its material; cached.
    pub(crate) async fn wrapping_key(
        &self,
        instance: &str,
        key_id: &str,
        v: &Version,
    ) -> Result<Arc<KeyMaterial>> {
        if let Some(k) = lock(&self.inner.material).get(&v.id).cloned() {
            return Ok(k);
        }
        let material = self.open_version(instance, key_id, v).await?;
        // Imported root keys may be 16, 24 or 32 bytes: HKDF gives every one a 32-byte key.
        let ikm = KeyMaterial::from_slice(&coffer_crypto::sha256(&material))
            .map_err(|e| KmsError::Corrupt(e.to_string()))?;
        let key = Arc::new(hkdf_sha256(&ikm, b"coffer-kms/wrap/v1", v.id.as_bytes()));
        lock(&self.inner.material).insert(v.id.clone(), key.clone());
        Ok(key)
    }

    /// Forgets cached material of a key (on purge).
    pub(crate) fn forget(&self, record: &KeyRecord) {
        let mut m = lock(&self.inner.material);
        for v in &record.versions {
            m.remove(&v.id);
        }
        lock(&self.inner.records).remove(&record.id);
    }
}
