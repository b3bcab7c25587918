//! Identity for coffer: who exists (accounts, service instances, users), how they prove it
//! (HMAC credentials for SigV4), and how everything is named (CRNs).
//!
//! This crate stores records through [`coffer_storage::MetaStore`] and never touches object
//! data or key material.

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

mod crn;
mod error;
mod model;
mod secret;
mod store;

pub use crn::{Crn, ParseCrnError};
pub use error::{Error, Result};
pub use model::{Account, HmacCredential, Instance, ServiceKind, User};
pub use secret::SecretString;
pub use store::{Bootstrap, BootstrapRequest, Iam};
