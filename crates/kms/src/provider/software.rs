//! The software provider: a master key held in memory only, combined from custodian parts.

use coffer_crypto::KeyMaterial;
use zeroize::Zeroizing;

use super::{MasterKey, ProviderKind};
use crate::{KmsError, Result};

pub struct SoftwareMasterKey {
    key: KeyMaterial,
}

impl SoftwareMasterKey {
    pub fn new(key: KeyMaterial) -> Self {
        Self { key }
    }

    /// The master key of several custodian parts: their XOR. Every part is needed; any
    /// subset reveals nothing about the key.
    pub fn combine(parts: &[KeyMaterial]) -> Option<Self> {
        let (first, rest) = parts.split_first()?;
        Some(Self::new(rest.iter().fold(first.clone(), |acc, p| acc.xor(p))))
    }

    /// The verification pattern of a master key: a one-way fingerprint custodians compare.
    pub fn pattern_of(key: &KeyMaterial) -> String {
        let mut input = b"coffer master key verification pattern v1".to_vec();
        input.extend_from_slice(key.expose());
        let digest = coffer_crypto::sha256(&input);
        zeroize::Zeroize::zeroize(&mut input);
        hex::encode(digest.get(..16).unwrap_or_default())
    }
}

impl MasterKey for SoftwareMasterKey {
    fn wrap(&self, secret: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        Ok(coffer_crypto::seal(&self.key, aad, secret))
    }

    fn unwrap(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        coffer_crypto::open(&self.key, aad, sealed).map_err(|_| KmsError::Provider("unwrap failed".into()))
    }

    fn verification_pattern(&self) -> String {
        Self::pattern_of(&self.key)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Software
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_provider_passes_the_contract() {
        let a = SoftwareMasterKey::new(KeyMaterial::generate());
        let b = SoftwareMasterKey::new(KeyMaterial::generate());
        super::super::contract_suite(&a, &b);
    }

    #[test]
    fn every_part_counts() {
        let parts: Vec<KeyMaterial> = (0..3).map(|_| KeyMaterial::generate()).collect();
        let all = SoftwareMasterKey::combine(&parts).unwrap();
        let two = SoftwareMasterKey::combine(&parts[..2]).unwrap();
        assert_ne!(all.verification_pattern(), two.verification_pattern());
        let mut swapped = parts.clone();
        swapped[1] = KeyMaterial::generate();
        assert_ne!(
            all.verification_pattern(),
            SoftwareMasterKey::combine(&swapped)
                .unwrap()
                .verification_pattern()
        );
        let reordered = [parts[2].clone(), parts[0].clone(), parts[1].clone()];
        assert_eq!(
            all.verification_pattern(),
            SoftwareMasterKey::combine(&reordered)
                .unwrap()
                .verification_pattern()
        );
    }
}
