//! AES-256-GCM with associated data, and the key type that holds AES keys.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::CryptoError;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// 32 bytes of secret key material: zeroized on drop, redacted in `Debug`, compared in
/// constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial([u8; KEY_LEN]);

impl KeyMaterial {
    pub fn generate() -> Self {
        Self(crate::random_array())
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self(arr))
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Byte-wise XOR with another key (combining master-key parts).
    pub fn xor(&self, other: &KeyMaterial) -> KeyMaterial {
        let mut out = [0u8; KEY_LEN];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        KeyMaterial(out)
    }
}

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl Eq for KeyMaterial {}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// An AES-256-GCM key ready to seal and open.
pub struct AeadKey(LessSafeKey);

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

impl AeadKey {
    pub fn new(key: &KeyMaterial) -> Self {
        // A 32-byte key is always accepted by AES-256.
        let unbound = UnboundKey::new(&AES_256_GCM, key.expose()).map_err(|_| CryptoError::InvalidKey);
        match unbound {
            Ok(k) => Self(LessSafeKey::new(k)),
            Err(_) => std::process::abort(),
        }
    }

    /// Encrypts `buf` in place and appends the tag.
    pub fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::InvalidInput)
    }

    /// Decrypts `buf` (ciphertext only) in place, its tag given apart. On failure `buf` holds
    /// neither the ciphertext nor the plaintext.
    pub fn open_detached(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        tag: &[u8],
        buf: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.0
            .open_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), tag, buf)
            .map(|_| ())
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Decrypts `buf` (ciphertext and tag) in place; returns the plaintext part.
    pub fn open_in_place<'a>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// Seals `plaintext` under `key` with a random nonce: `nonce || ciphertext || tag`.
pub fn seal(key: &KeyMaterial, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = crate::random_array();
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    // Sealing a short buffer with a valid key cannot fail.
    if AeadKey::new(key).seal_in_place(nonce, aad, &mut body).is_err() {
        std::process::abort();
    }
    buf.extend_from_slice(&body);
    body.zeroize();
    buf
}

/// Opens what [`seal`] made. Any mismatch (key, AAD, a flipped bit) is one opaque error.
pub fn open(key: &KeyMaterial, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (nonce, body) = sealed.split_at_checked(NONCE_LEN).ok_or(CryptoError::Decrypt)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = AeadKey::new(key).open_in_place(nonce, aad, &mut buf)?.len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse_tampering() {
        let key = KeyMaterial::generate();
        let sealed = seal(&key, b"aad", b"secret dek");
        assert_eq!(open(&key, b"aad", &sealed).unwrap().as_slice(), b"secret dek");
        assert!(open(&key, b"other", &sealed).is_err());
        assert!(open(&KeyMaterial::generate(), b"aad", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[15] ^= 1;
        assert!(open(&key, b"aad", &flipped).is_err());
        assert!(open(&key, b"aad", &sealed[..10]).is_err());
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.expose())));
    }

    /// Test cases 13 and 14 of the GCM specification (McGrew and Viega): the backend seals
    /// exactly as the one that wrote older objects did.
    #[test]
    fn aes_256_gcm_known_answers() {
        let key = AeadKey::new(&KeyMaterial::from_slice(&[0u8; KEY_LEN]).unwrap());
        let mut empty = Vec::new();
        key.seal_in_place([0; NONCE_LEN], b"", &mut empty).unwrap();
        assert_eq!(hex::encode(&empty), "530f8afbc74536b9a963b4f1c4cb738b");
        let mut block = vec![0u8; 16];
        key.seal_in_place([0; NONCE_LEN], b"", &mut block).unwrap();
        assert_eq!(
            hex::encode(&block),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        assert_eq!(
            key.open_in_place([0; NONCE_LEN], b"", &mut block).unwrap(),
            &[0u8; 16]
        );
    }

    #[test]
    fn xor_combines_and_undoes() {
        let (a, b) = (KeyMaterial::generate(), KeyMaterial::generate());
        assert_eq!(a.xor(&b).xor(&b), a);
    }
}
