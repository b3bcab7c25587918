//! The records of the keystore. Root key material appears here only sealed by the instance's
//! master key.

use serde::{Deserialize, Serialize};

/// Key states (Key Protect's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum KeyState {
    PreActivation = 0,
    Active = 1,
    Suspended = 2,
    Deactivated = 3,
    Destroyed = 5,
}

impl From<KeyState> for u8 {
    fn from(s: KeyState) -> u8 {
        s as u8
    }
}

impl TryFrom<u8> for KeyState {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            0 => Self::PreActivation,
            1 => Self::Active,
            2 => Self::Suspended,
            3 => Self::Deactivated,
            5 => Self::Destroyed,
            other => return Err(format!("no key state {other}")),
        })
    }
}

/// One version of a key's material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub created: i64,
    /// The material sealed by the master key (AAD: instance, key, version).
    pub sealed: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualAuth {
    pub enabled: bool,
    /// Who asked for deletion (the first of the two authorizations), and until when it holds.
    pub set_by: Option<String>,
    pub set_until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    pub enabled: bool,
    pub interval_month: u32,
}

/// A policy's bookkeeping fields, as the API reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMeta {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub updated: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub at: i64,
    pub by: String,
}

/// A root or standard key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub instance: String,
    pub name: String,
    pub description: Option<String>,
    pub aliases: Vec<String>,
    pub tags: Vec<String>,
    pub key_ring: String,
    /// `false`: a root key; `true`: a standard key.
    pub extractable: bool,
    pub imported: bool,
    pub state: KeyState,
    pub created: i64,
    pub created_by: String,
    pub updated: i64,
    /// Last state change (disable, enable, delete, restore), for the 30-second rules.
    pub state_changed: i64,
    pub last_rotated: Option<i64>,
    pub expiration: Option<i64>,
    pub deleted: Option<Deletion>,
    /// Oldest first; the last is current.
    pub versions: Vec<Version>,
    pub dual_auth: DualAuth,
    pub dual_auth_meta: Option<PolicyMeta>,
    pub rotation: Option<RotationPolicy>,
    pub rotation_meta: Option<PolicyMeta>,
    pub last_synced: Option<i64>,
}

impl KeyRecord {
    pub fn current_version(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn is_root(&self) -> bool {
        !self.extractable
    }

    /// The state as of `now`: an expired active key is deactivated.
    pub fn effective_state(&self, now: i64) -> KeyState {
        match (self.state, self.expiration) {
            (KeyState::Active, Some(exp)) if exp <= now => KeyState::Deactivated,
            (s, _) => s,
        }
    }
}

/// A service resource registered on a key (a bucket on its root key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub key_id: String,
    pub instance: String,
    pub resource_crn: String,
    pub prevent_key_deletion: bool,
    pub description: Option<String>,
    pub metadata: Option<String>,
    pub key_version: String,
    pub created: i64,
    pub created_by: String,
    pub updated: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    pub id: String,
    pub created: i64,
    pub created_by: String,
}

/// An instance policy (`rotation`, `dualAuthDelete`, `keyCreateImportAccess`, `allowedIP`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePolicy {
    pub policy_type: String,
    pub enabled: bool,
    pub attributes: serde_json::Value,
    pub meta: PolicyMeta,
}

/// An import token: an RSA key pair whose private half is sealed by the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportToken {
    pub created: i64,
    pub expires: i64,
    pub max_retrievals: u32,
    pub remaining: u32,
    pub public_pem: String,
    pub sealed_private: String,
    pub nonce: String,
}
