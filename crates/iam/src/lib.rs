//! Identity and access for coffer: who exists (accounts, service instances, users, service
//! IDs), how they prove it (API keys → signed tokens, HMAC credentials for SigV4), what they may
//! do (policies and the pure decision function [`eval`]), and how things are named (CRNs).
//!
//! This crate stores records through [`coffer_storage::MetaStore`]; its cryptography (token
//! signatures, hashes, randomness) comes from `coffer-crypto`. It never touches object data.

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

mod action;
mod crn;
mod error;
mod eval;
mod model;
mod policy;
mod role;
mod secret;
mod store;
mod token;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod token_tests;

pub use action::Action;
pub use crn::{Crn, ParseCrnError};
pub use error::{Error, Result};
pub use eval::{Decision, DenyReason, Principal, Resource, eval};
pub use model::{Account, ApiKey, HmacCredential, Instance, ServiceId, ServiceKind, User};
pub use policy::{Attribute, Attributes, Policy, PolicyInput, PolicyRole, PolicyType};
pub use role::Role;
pub use secret::SecretString;
pub use store::{Bootstrap, BootstrapRequest, Iam, NewApiKey};
pub use token::{Claims, TokenConfig, TokenError, TokenResponse};
