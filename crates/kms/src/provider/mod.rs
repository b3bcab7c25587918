//! Key providers: where an instance's master key lives and how it wraps root key material.
//!
//! Two providers pass one contract (`contract_suite`): the software provider (a master key
//! combined in memory from custodian parts, never written) and the PKCS#11 provider (a
//! non-extractable AES-256 key inside a token; wrapping happens in the token).

mod pkcs11;
mod software;

use zeroize::Zeroizing;

pub use pkcs11::Pkcs11MasterKey;
#[cfg(test)]
pub(crate) use pkcs11::tests as pkcs11_tests;
pub use software::SoftwareMasterKey;

use crate::Result;

/// The provider kind an instance was initialized with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Software,
    Pkcs11,
}

/// An instance's master key. It never leaves the provider: callers get sealed bytes.
pub trait MasterKey: Send + Sync {
    /// Seals `secret` (root key material, an import token's private key) binding `aad`.
    fn wrap(&self, secret: &[u8], aad: &[u8]) -> Result<Vec<u8>>;

    /// Opens what [`MasterKey::wrap`] sealed with the same `aad`.
    fn unwrap(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>>;

    /// Names this master key without revealing it (HPCS's verification pattern).
    fn verification_pattern(&self) -> String;

    fn kind(&self) -> ProviderKind;
}

/// The contract every provider passes.
#[cfg(test)]
pub(crate) fn contract_suite(key: &dyn MasterKey, other: &dyn MasterKey) {
    let sealed = key
        .wrap(b"root key material 32 bytes long!", b"instance|key|version")
        .unwrap();
    assert_eq!(
        key.unwrap(&sealed, b"instance|key|version").unwrap().as_slice(),
        b"root key material 32 bytes long!"
    );
    assert!(
        !sealed.windows(8).any(|w| w == b"root key"),
        "the material does not appear in the sealed bytes"
    );
    assert!(
        key.unwrap(&sealed, b"instance|key|other").is_err(),
        "the AAD is bound"
    );
    assert!(
        other.unwrap(&sealed, b"instance|key|version").is_err(),
        "another master key cannot open it"
    );
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    assert!(
        key.unwrap(&tampered, b"instance|key|version").is_err(),
        "tampering is detected"
    );
    assert_ne!(
        key.wrap(b"x", b"a").unwrap(),
        key.wrap(b"x", b"a").unwrap(),
        "wrapping is randomized"
    );
    assert_ne!(key.verification_pattern(), other.verification_pattern());
    assert_eq!(key.verification_pattern(), key.verification_pattern());
}
