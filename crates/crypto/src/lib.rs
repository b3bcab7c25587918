//! Cryptography for coffer, and nothing else: no I/O, no async, no HTTP.
//!
//! Every hash, checksum, cipher and key derivation the other crates use lives here, so that
//! the primitives and their parameters can be audited in one place.

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

mod digest;
mod random;
mod sign;

pub use digest::{ChecksumAlgorithm, Checksums, Md5, sha256};
pub use random::{random_array, random_bytes};
pub use sign::{SignError, SigningKey, verify_signature};
