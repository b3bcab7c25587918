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

mod aead;
mod digest;
mod error;
mod kdf;
mod md5;
mod oaep;
mod pkcs11;
mod random;
pub mod segments;
mod sign;

pub use aead::{AeadKey, KEY_LEN, KeyMaterial, NONCE_LEN, TAG_LEN, open, seal};
pub use digest::{ChecksumAlgorithm, Checksums, Md5, hmac_sha256, sha256};
pub use error::CryptoError;
pub use kdf::{Argon2Params, argon2id, hkdf_sha256};
pub use oaep::{ImportKeyPair, OaepHash};
pub use pkcs11::{KeyProtection, Pkcs11Token};
pub use random::{random_array, random_bytes};
pub use sign::{SignError, SigningKey, verify_signature};
