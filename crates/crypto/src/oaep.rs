//! RSA-OAEP for secure key import (Key Protect import tokens): a 4096-bit key pair whose public
//! half clients encrypt key material to.

use std::fmt;

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Oaep, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::CryptoError;

/// The OAEP hash (`encryptionAlgorithm` `RSAES_OAEP_SHA_256` or `RSAES_OAEP_SHA_1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepHash {
    Sha1,
    Sha256,
}

pub struct ImportKeyPair {
    key: PrivateKey,
}

impl fmt::Debug for ImportKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ImportKeyPair(<redacted>)")
    }
}

impl ImportKeyPair {
    pub fn generate(bits: usize) -> Result<Self, CryptoError> {
        let key = PrivateKey::new(&mut crypto_common::getrandom::SysRng, bits)
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self { key })
    }

    /// The public key as a PKIX (SubjectPublicKeyInfo) PEM document.
    pub fn public_key_pem(&self) -> Result<String, CryptoError> {
        self.key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| CryptoError::InvalidKey)
    }

    /// The private key as PKCS#8 DER, for sealed storage.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let doc = self.key.to_pkcs8_der().map_err(|_| CryptoError::InvalidKey)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self {
            key: PrivateKey::from_pkcs8_der(der).map_err(|_| CryptoError::InvalidKey)?,
        })
    }

    pub fn decrypt(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let out = match hash {
            OaepHash::Sha256 => self.key.decrypt(Oaep::<rsa::sha2::Sha256>::new(), ciphertext),
            OaepHash::Sha1 => self.key.decrypt(Oaep::<sha1::Sha1>::new(), ciphertext),
        };
        out.map(Zeroizing::new).map_err(|_| CryptoError::Decrypt)
    }

    /// Encrypts to this key pair, as a client would (tests and tools).
    pub fn encrypt(&self, hash: OaepHash, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        encrypt_to(&self.key.to_public_key(), hash, plaintext)
    }
}

fn encrypt_to(key: &PublicKey, hash: OaepHash, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let rng = &mut crypto_common::getrandom::SysRng;
    match hash {
        OaepHash::Sha256 => key.encrypt(rng, Oaep::<rsa::sha2::Sha256>::new(), plaintext),
        OaepHash::Sha1 => key.encrypt(rng, Oaep::<sha1::Sha1>::new(), plaintext),
    }
    .map_err(|_| CryptoError::InvalidInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oaep_round_trip_and_persistence() {
        let pair = ImportKeyPair::generate(2048).unwrap();
        let pem = pair.public_key_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        for hash in [OaepHash::Sha256, OaepHash::Sha1] {
            let ct = pair.encrypt(hash, b"0123456789abcdef0123456789abcdef").unwrap();
            assert_eq!(
                pair.decrypt(hash, &ct).unwrap().as_slice(),
                b"0123456789abcdef0123456789abcdef"
            );
        }
        let ct = pair.encrypt(OaepHash::Sha256, b"k").unwrap();
        assert!(pair.decrypt(OaepHash::Sha1, &ct).is_err());
        let again = ImportKeyPair::from_pkcs8_der(&pair.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(again.decrypt(OaepHash::Sha256, &ct).unwrap().as_slice(), b"k");
    }
}
