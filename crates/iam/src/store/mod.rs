//! [`Iam`]: the identity records in the metadata store, and the token keyring in memory.

mod apikeys;
mod bootstrap;
mod cache;
mod hmac;
mod identities;
mod policies;

use std::sync::{Arc, RwLock};

use coffer_storage::{Batch, KeyRange, MetaStore};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use apikeys::NewApiKey;
pub use bootstrap::{Bootstrap, BootstrapRequest};

use crate::model::{Account, Instance, ServiceKind};
use crate::token::{Keyring, TokenConfig};
use crate::{Error, Result};

pub(crate) const ACCOUNTS: &str = "iam.accounts";
pub(crate) const INSTANCES: &str = "iam.instances";
pub(crate) const USERS: &str = "iam.users";
pub(crate) const SERVICE_IDS: &str = "iam.serviceids";
pub(crate) const APIKEYS: &str = "iam.apikeys";
pub(crate) const APIKEY_HASHES: &str = "iam.apikey-hashes";
pub(crate) const HMAC: &str = "iam.hmac";
pub(crate) const POLICIES: &str = "iam.policies";
pub(crate) const POLICIES_BY_SUBJECT: &str = "iam.policies.by-subject";
pub(crate) const SIGNING_KEYS: &str = "iam.signing-keys";
pub(crate) const REFRESH_TOKENS: &str = "iam.refresh-tokens";
pub(crate) const SYSTEM: &str = "iam.system";

/// The identity records and the token service.
#[derive(Clone)]
pub struct Iam {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) keyring: Arc<RwLock<Keyring>>,
    pub(crate) tokens: TokenConfig,
    /// Tokens whose signature was verified, by SHA-256 of the token (see `token.rs`).
    pub(crate) verified: Arc<std::sync::Mutex<crate::token::VerifiedTokens>>,
    /// Each subject's policies, by index prefix.
    pub(crate) policies: Arc<cache::Cache<Arc<[crate::policy::Policy]>>>,
    /// HMAC credentials, by access key id.
    pub(crate) hmacs: Arc<cache::Cache<crate::model::HmacCredential>>,
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn random_hex(bytes: usize) -> String {
    hex::encode(coffer_crypto::random_bytes(bytes))
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn storage_conflict_as_exists(e: coffer_storage::Error) -> Error {
    match e {
        coffer_storage::Error::Conflict => Error::AlreadyExists,
        e => Error::Storage(e),
    }
}

impl Iam {
    /// Opens the identity store; loads (or, the first time, creates) the token signing keys.
    pub async fn open(meta: Arc<dyn MetaStore>, tokens: TokenConfig) -> Result<Self> {
        let keyring = Keyring::load(&*meta, &tokens).await?;
        Ok(Self {
            meta,
            keyring: Arc::new(RwLock::new(keyring)),
            tokens,
            verified: Arc::default(),
            policies: Arc::default(),
            hmacs: Arc::default(),
        })
    }

    pub(crate) async fn load<T: DeserializeOwned>(&self, space: &'static str, key: &str) -> Result<T> {
        let bytes = self
            .meta
            .get(space, key.as_bytes())
            .await?
            .ok_or(Error::NotFound)?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub(crate) async fn load_all<T: DeserializeOwned>(
        &self,
        space: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>> {
        let entries = self
            .meta
            .scan(space, KeyRange::prefix(prefix.as_bytes()), usize::MAX)
            .await?;
        entries
            .into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    }

    /// Adds a new record (fails with `AlreadyExists` if the key is taken).
    pub(crate) fn insert<T: Serialize>(
        batch: &mut Batch,
        space: &'static str,
        key: &str,
        value: &T,
    ) -> Result<()> {
        batch
            .expect_absent(space, key.as_bytes())
            .put(space, key.as_bytes(), serde_json::to_vec(value)?);
        Ok(())
    }

    pub(crate) async fn commit_new(&self, batch: Batch) -> Result<()> {
        self.meta.commit(batch).await.map_err(storage_conflict_as_exists)
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

    /// Creates a service instance in an account.
    pub async fn create_instance(
        &self,
        account: &str,
        service: ServiceKind,
        region: &str,
        name: &str,
    ) -> Result<Instance> {
        self.account(account).await?;
        let instance = Instance {
            id: new_uuid(),
            account: account.to_owned(),
            service,
            region: region.to_owned(),
            name: name.to_owned(),
            created: now(),
        };
        let mut b = Batch::new();
        Self::insert(&mut b, INSTANCES, &instance.id, &instance)?;
        self.commit_new(b).await?;
        Ok(instance)
    }

    pub async fn list_instances(&self, account: &str, service: Option<ServiceKind>) -> Result<Vec<Instance>> {
        let all: Vec<Instance> = self.load_all(INSTANCES, "").await?;
        Ok(all
            .into_iter()
            .filter(|i| i.account == account && service.is_none_or(|s| s == i.service))
            .collect())
    }

    pub async fn delete_instance(&self, id: &str) -> Result<()> {
        let raw = self
            .meta
            .get(INSTANCES, id.as_bytes())
            .await?
            .ok_or(Error::NotFound)?;
        let mut b = Batch::new();
        b.expect_value(INSTANCES, id, raw).delete(INSTANCES, id);
        self.meta.commit(b).await.map_err(|e| match e {
            coffer_storage::Error::Conflict => Error::NotFound,
            e => Error::Storage(e),
        })
    }
}
