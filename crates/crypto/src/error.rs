/// Errors of the cryptographic primitives. Decryption failures are one opaque variant, so that
/// they cannot serve as an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("decryption failed")]
    Decrypt,
    #[error("invalid key")]
    InvalidKey,
    #[error("invalid input")]
    InvalidInput,
    #[error("key derivation failed")]
    Kdf,
    #[error("PKCS#11: {0}")]
    Pkcs11(&'static str),
}
