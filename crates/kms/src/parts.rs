//! Custodian master-key parts and their files.
//!
//! A part is 32 random bytes made where the custodian runs `coffer kms init`, not on the
//! server. Its file holds the part either in the clear or sealed under the custodian's
//! passphrase (Argon2id, then AES-256-GCM binding the instance and the part's index), and the
//! verification pattern of the whole master key so a custodian can check what they load.

use coffer_crypto::{Argon2Params, KeyMaterial, argon2id};
use serde::{Deserialize, Serialize};

use crate::provider::SoftwareMasterKey;
use crate::{KmsError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    pub format: String,
    pub instance: String,
    /// 1-based.
    pub index: u32,
    pub parts: u32,
    /// The verification pattern of the master key all parts make.
    pub verification_pattern: String,
    pub protection: Protection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Protection {
    /// The part in hex: whoever reads the file holds the part.
    Plain { part: String },
    /// Sealed under a key derived from the custodian's passphrase.
    Passphrase { kdf: Kdf, sealed: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    pub algorithm: String,
    pub salt: String,
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

const FORMAT: &str = "coffer-master-key-part/1";

fn aad(instance: &str, index: u32) -> Vec<u8> {
    format!("{FORMAT}|{instance}|{index}").into_bytes()
}

/// A part sent as 64 hex characters.
pub fn part_from_hex(hex_part: &str) -> Result<KeyMaterial> {
    let bytes = zeroize::Zeroizing::new(
        hex::decode(hex_part.trim())
            .map_err(|_| KmsError::field("INVALID_FIELD_ERR", "part", "a part is 64 hex characters"))?,
    );
    KeyMaterial::from_slice(&bytes)
        .map_err(|_| KmsError::field("INVALID_FIELD_ERR", "part", "a part is 32 bytes"))
}

/// `n` fresh parts and the verification pattern of the master key they make.
pub fn generate(n: u32) -> (Vec<KeyMaterial>, String) {
    let parts: Vec<KeyMaterial> = (0..n).map(|_| KeyMaterial::generate()).collect();
    let vp = SoftwareMasterKey::combine(&parts).map(|k| crate::provider::MasterKey::verification_pattern(&k));
    (parts, vp.unwrap_or_default())
}

impl PartFile {
    pub fn seal(
        instance: &str,
        index: u32,
        parts: u32,
        part: &KeyMaterial,
        verification_pattern: &str,
        passphrase: Option<&str>,
        params: Argon2Params,
    ) -> Result<Self> {
        let protection = match passphrase {
            None => Protection::Plain {
                part: hex::encode(part.expose()),
            },
            Some(pass) => {
                let salt = coffer_crypto::random_bytes(16);
                let key = argon2id(pass.as_bytes(), &salt, params)
                    .map_err(|e| KmsError::Provider(e.to_string()))?;
                let sealed = coffer_crypto::seal(&key, &aad(instance, index), part.expose());
                Protection::Passphrase {
                    kdf: Kdf {
                        algorithm: "argon2id".into(),
                        salt: hex::encode(salt),
                        m_cost: params.m_cost,
                        t_cost: params.t_cost,
                        p_cost: params.p_cost,
                    },
                    sealed: hex::encode(sealed),
                }
            }
        };
        Ok(Self {
            format: FORMAT.into(),
            instance: instance.into(),
            index,
            parts,
            verification_pattern: verification_pattern.into(),
            protection,
        })
    }

    /// The part, given the passphrase if the file needs one.
    pub fn open(&self, passphrase: Option<&str>) -> Result<KeyMaterial> {
        if self.format != FORMAT {
            return Err(KmsError::invalid(
                "BAD_BODY_ERR",
                format!("unknown part file format {:?}", self.format),
            ));
        }
        let bad = |m: &str| KmsError::invalid("BAD_BODY_ERR", m.to_owned());
        match &self.protection {
            Protection::Plain { part } => {
                KeyMaterial::from_slice(&hex::decode(part).map_err(|_| bad("the part is not hex"))?)
                    .map_err(|_| bad("a part is 32 bytes"))
            }
            Protection::Passphrase { kdf, sealed } => {
                let pass =
                    passphrase.ok_or_else(|| bad("this part file needs its custodian's passphrase"))?;
                if kdf.algorithm != "argon2id" {
                    return Err(bad("unknown key derivation"));
                }
                let salt = hex::decode(&kdf.salt).map_err(|_| bad("bad salt"))?;
                let params = Argon2Params {
                    m_cost: kdf.m_cost,
                    t_cost: kdf.t_cost,
                    p_cost: kdf.p_cost,
                };
                let key = argon2id(pass.as_bytes(), &salt, params)
                    .map_err(|_| bad("bad key derivation parameters"))?;
                let sealed = hex::decode(sealed).map_err(|_| bad("bad sealed part"))?;
                let part = coffer_crypto::open(&key, &aad(&self.instance, self.index), &sealed)
                    .map_err(|_| bad("wrong passphrase, or the file was altered"))?;
                KeyMaterial::from_slice(&part).map_err(|_| bad("a part is 32 bytes"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn part_files_round_trip() {
        let (parts, vp) = generate(2);
        let plain = PartFile::seal("i1", 1, 2, &parts[0], &vp, None, FAST).unwrap();
        assert_eq!(plain.open(None).unwrap(), parts[0]);
        let locked = PartFile::seal("i1", 2, 2, &parts[1], &vp, Some("hunter2"), FAST).unwrap();
        let text = serde_json::to_string(&locked).unwrap();
        assert!(
            !text.contains(&hex::encode(parts[1].expose())),
            "the sealed file does not show the part"
        );
        assert_eq!(locked.open(Some("hunter2")).unwrap(), parts[1]);
        assert!(locked.open(Some("wrong")).is_err());
        assert!(locked.open(None).is_err());
        let mut moved = locked.clone();
        moved.index = 1;
        assert!(
            moved.open(Some("hunter2")).is_err(),
            "a part is bound to its index"
        );
    }
}
