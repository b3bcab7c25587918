//! The identity records. They are stored as JSON in the metadata store.

use serde::{Deserialize, Serialize};

use crate::crn::Crn;
use crate::secret::SecretString;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// 32 lowercase hex characters.
    pub id: String,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
}

/// The services whose instances coffer hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceKind {
    #[serde(rename = "cloud-object-storage")]
    ObjectStorage,
    #[serde(rename = "kms")]
    Kms,
    #[serde(rename = "hs-crypto")]
    HsCrypto,
}

impl ServiceKind {
    /// The service name in CRNs and policies.
    pub fn name(self) -> &'static str {
        match self {
            Self::ObjectStorage => "cloud-object-storage",
            Self::Kms => "kms",
            Self::HsCrypto => "hs-crypto",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::ObjectStorage, Self::Kms, Self::HsCrypto]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// A service instance owned by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// A GUID.
    pub id: String,
    pub account: String,
    pub service: ServiceKind,
    /// `global` for object storage, the region for key management.
    pub region: String,
    pub name: String,
    pub created: i64,
}

impl Instance {
    pub fn crn(&self) -> Crn {
        Crn::instance(self.service.name(), &self.region, &self.account, &self.id)
    }
}

/// A person (or the account owner) of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `IBMid-` followed by ten characters.
    pub iam_id: String,
    pub account: String,
    pub name: String,
    pub created: i64,
}

/// An HMAC key pair for SigV4, bound to one object-storage instance and one identity.
///
/// The secret is stored as is: SigV4 verification needs it in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HmacCredential {
    /// 32 lowercase hex characters.
    pub access_key_id: String,
    /// 48 lowercase hex characters.
    pub secret_access_key: SecretString,
    pub iam_id: String,
    pub instance_id: String,
    pub account: String,
    pub created: i64,
}

/// A service ID: a non-person identity for applications, with API keys of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceId {
    /// `ServiceId-<uuid>`.
    pub id: String,
    /// `iam-ServiceId-<uuid>`.
    pub iam_id: String,
    pub account: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created: i64,
}

/// An API key. Only the SHA-256 of its secret is stored; the secret is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `ApiKey-<uuid>`.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The user or service ID the key authenticates as.
    pub iam_id: String,
    pub account: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    #[serde(default)]
    pub disabled: bool,
    pub created: i64,
    pub created_by: String,
}
