//! coffer's key management service: the Key Protect / Hyper Protect Crypto Services model.
//!
//! An instance's master key (custodian parts combined in memory, or a key inside a PKCS#11
//! token) seals every root key version; root keys wrap data keys (DEKs) with AES-256-GCM and
//! caller-supplied AAD. Keys have Key Protect's states and rules; services register resources
//! on keys and hear of every lifecycle change through events. Every operation is authorized
//! with `coffer_iam::eval` for the calling principal, person or service alike.
//!
//! This crate never returns root key material and never writes it unsealed.

// Key-handling code must not panic; tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod config;
mod error;
mod events;
mod import_token;
mod instance;
mod keys;
mod lifecycle;
mod model;
pub mod parts;
mod policies;
mod provider;
mod registrations;
mod store;
mod wrap;

#[cfg(test)]
mod tests;

pub use coffer_crypto::KeyMaterial;
pub use config::{Pkcs11Config, Timing};
pub use error::{KmsError, Result};
pub use events::{AckState, EventKind, EventSubscriber, KeyEvent};
pub use instance::{InstanceInfo, LoadOutcome};
pub use keys::{KeyListQuery, KeyPage, NewKey};
pub use lifecycle::DeleteOptions;
pub use model::{
    Deletion, DualAuth, ImportToken, InstancePolicy, KeyRecord, KeyRing, KeyState, PolicyMeta, Registration,
    RotationPolicy, Version,
};
pub use policies::{INSTANCE_POLICY_TYPES, KeyPolicy, ip_allowed, parse_cidr};
pub use provider::{MasterKey, Pkcs11MasterKey, ProviderKind, SoftwareMasterKey};
pub use registrations::RegistrationInput;
pub use store::Kms;
pub use wrap::{Unwrapped, Wrapped};

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
