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

pub use digest::{ChecksumAlgorithm, Checksums, Md5};
