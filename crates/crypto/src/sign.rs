//! Ed25519 signatures (the IAM token signing keys).

use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
#[error("invalid signing key")]
pub struct SignError;

/// An Ed25519 key pair. Its private half leaves only as PKCS#8 bytes, for storage.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new key pair and its PKCS#8 encoding (zeroized when dropped).
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), SignError> {
        let doc =
            Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).map_err(|_| SignError)?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, SignError> {
        Ok(Self {
            pair: Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| SignError)?,
        })
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

/// Whether `signature` is a valid Ed25519 signature of `message` under `public_key`.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_tampering() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let sig = key.sign(b"claims");
        assert!(verify_signature(&key.public_key(), b"claims", &sig));
        assert!(!verify_signature(&key.public_key(), b"claimz", &sig));
        let (other, _) = SigningKey::generate().unwrap();
        assert!(!verify_signature(&other.public_key(), b"claims", &sig));
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(&hex::encode(&pkcs8[..])));
    }

    /// Signing keys stored by coffer versions that used ring still load, and sign alike.
    #[test]
    fn keys_stored_by_ring_load() {
        use ring_ref::signature::{self as ring_sig, KeyPair as _};
        let rng = ring_ref::rand::SystemRandom::new();
        let pkcs8 = ring_sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let theirs = ring_sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ours = SigningKey::from_pkcs8(pkcs8.as_ref()).unwrap();
        assert_eq!(ours.public_key(), theirs.public_key().as_ref());
        // Ed25519 is deterministic: the same key signs the same message identically.
        assert_eq!(ours.sign(b"claims"), theirs.sign(b"claims").as_ref());
    }
}
