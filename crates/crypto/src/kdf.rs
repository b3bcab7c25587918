//! Key derivation: Argon2id for passphrases (custodian part files), HKDF-SHA256 for keys
//! derived from keys.

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::aead::{KEY_LEN, KeyMaterial};

/// Argon2id cost parameters, stored next to what they protect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for Argon2Params {
    /// OWASP's first recommended configuration: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Self {
            m_cost: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// A 32-byte key from a passphrase and a salt (at least 16 bytes).
pub fn argon2id(passphrase: &[u8], salt: &[u8], params: Argon2Params) -> Result<KeyMaterial, CryptoError> {
    let p = argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, Some(KEY_LEN))
        .map_err(|_| CryptoError::Kdf)?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    a.hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|_| CryptoError::Kdf)?;
    KeyMaterial::from_slice(out.as_ref())
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256: a 32-byte key from `ikm`, a salt and context `info`.
pub fn hkdf_sha256(ikm: &KeyMaterial, salt: &[u8], info: &[u8]) -> KeyMaterial {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm.expose());
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let info = [info];
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: neither call can fail.
    let filled = prk
        .expand(&info, Len(KEY_LEN))
        .and_then(|okm| okm.fill(out.as_mut()));
    if filled.is_err() {
        std::process::abort();
    }
    match KeyMaterial::from_slice(out.as_ref()) {
        Ok(k) => k,
        Err(_) => std::process::abort(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_is_deterministic_and_salted() {
        let fast = Argon2Params {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        };
        let a = argon2id(b"correct horse", b"0123456789abcdef", fast).unwrap();
        assert_eq!(a, argon2id(b"correct horse", b"0123456789abcdef", fast).unwrap());
        assert_ne!(a, argon2id(b"correct horse", b"fedcba9876543210", fast).unwrap());
        assert_ne!(a, argon2id(b"wrong horse", b"0123456789abcdef", fast).unwrap());
    }

    #[test]
    fn hkdf_separates_contexts() {
        let k = KeyMaterial::generate();
        assert_eq!(hkdf_sha256(&k, b"s", b"a"), hkdf_sha256(&k, b"s", b"a"));
        assert_ne!(hkdf_sha256(&k, b"s", b"a"), hkdf_sha256(&k, b"s", b"b"));
        assert_ne!(hkdf_sha256(&k, b"s", b"a"), hkdf_sha256(&k, b"t", b"a"));
    }

    #[test]
    fn hkdf_known_answer() {
        // RFC 5869 extract-then-expand, computed independently (Python's hmac module).
        let ikm = KeyMaterial::from_slice(&[0x0b; 32]).unwrap();
        let okm = hkdf_sha256(&ikm, &[0u8; 13], b"coffer");
        assert_eq!(
            hex::encode(okm.expose()),
            "7bf2d17d5e4a2cbc9fcb85cccd78003d540237b59928d89e82c0e12393972a1f"
        );
    }
}
