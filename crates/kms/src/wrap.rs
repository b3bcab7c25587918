//! Envelope encryption with root keys: wrap, unwrap and rewrap data keys (DEKs).
//!
//! A wrapped DEK is opaque to clients. Like Key Protect's, it is base64 of a small JSON
//! document: `{"ciphertext", "iv", "version": "4.0.0", "handle": <key version id>}`, the DEK
//! sealed with AES-256-GCM under the version's wrapping key. The AAD binds the key's id and
//! the caller's AAD strings, so a DEK opens only under its key and with the same AAD.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::{AeadKey, NONCE_LEN};
use coffer_iam::{Action, Principal};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::model::{KeyRecord, KeyState};
use crate::store::Kms;
use crate::{KmsError, Result, now};

/// A wrapped DEK, the version that wrapped it, and the DEK itself when the KMS generated it.
#[derive(Debug)]
pub struct Wrapped {
    pub ciphertext: String,
    pub key_version: String,
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    /// For a rewrap: the version the input was wrapped with.
    pub previous_version: Option<String>,
}

/// An unwrapped DEK; when it was wrapped by an older version, also the DEK rewrapped under
/// the newest one.
#[derive(Debug)]
pub struct Unwrapped {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub key_version: String,
    pub rewrapped: Option<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    ciphertext: String,
    iv: String,
    version: String,
    handle: String,
}

const FORMAT_VERSION: &str = "4.0.0";
/// Largest DEK accepted for wrapping (Key Protect allows up to 7,500 bytes).
const MAX_PLAINTEXT: usize = 7500;

fn aad_bytes(key_id: &str, aad: &[String]) -> Vec<u8> {
    let mut out = b"coffer-kms/dek/v1".to_vec();
    for part in std::iter::once(key_id).chain(aad.iter().map(String::as_str)) {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn check_aad(aad: &[String]) -> Result<()> {
    if aad.len() > 126 || aad.iter().any(|a| a.len() > 255) {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "aad",
            "at most 126 AAD strings of at most 255 characters",
        ));
    }
    Ok(())
}

fn usable_for(record: &KeyRecord, wrap: bool) -> Result<()> {
    if !record.is_root() {
        return Err(KmsError::invalid("KEY_ROOT_REQ_ERR", "wrapping needs a root key"));
    }
    match (record.effective_state(now()), wrap) {
        (KeyState::Active, _) | (KeyState::Deactivated, false) => Ok(()),
        (KeyState::Destroyed, _) => Err(KmsError::Deleted),
        (s, _) => Err(KmsError::invalid_state(format!(
            "the key is in state {}: {} is not allowed",
            u8::from(s),
            if wrap { "wrap" } else { "unwrap" }
        ))),
    }
}

impl Kms {
    async fn seal_dek(&self, record: &KeyRecord, dek: &[u8], aad: &[String]) -> Result<(String, String)> {
        let version = record
            .current_version()
            .ok_or_else(|| KmsError::Corrupt("a key without versions".into()))?;
        let key = self.wrapping_key(&record.instance, &record.id, version).await?;
        let nonce: [u8; NONCE_LEN] = coffer_crypto::random_array();
        let mut buf = dek.to_vec();
        AeadKey::new(&key)
            .seal_in_place(nonce, &aad_bytes(&record.id, aad), &mut buf)
            .map_err(|e| KmsError::Provider(e.to_string()))?;
        let envelope = Envelope {
            ciphertext: B64.encode(&buf),
            iv: B64.encode(nonce),
            version: FORMAT_VERSION.into(),
            handle: version.id.clone(),
        };
        buf.zeroize();
        Ok((B64.encode(serde_json::to_vec(&envelope)?), version.id.clone()))
    }

    async fn open_dek(
        &self,
        record: &KeyRecord,
        ciphertext: &str,
        aad: &[String],
    ) -> Result<(Zeroizing<Vec<u8>>, String)> {
        let bad = || {
            KmsError::unprocessable(
                "UNPROCESSABLE_CIPHERTEXT_ERR",
                "The provided ciphertext is invalid or corrupted",
            )
        };
        let raw = B64.decode(ciphertext.trim()).map_err(|_| {
            KmsError::field("INVALID_FIELD_ERR", "ciphertext", "the ciphertext is not base64")
        })?;
        let envelope: Envelope = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let version = record
            .versions
            .iter()
            .find(|v| v.id == envelope.handle)
            .ok_or_else(bad)?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&envelope.iv)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(bad)?;
        let mut buf = Zeroizing::new(B64.decode(&envelope.ciphertext).map_err(|_| bad())?);
        let key = self.wrapping_key(&record.instance, &record.id, version).await?;
        let len = AeadKey::new(&key)
            .open_in_place(nonce, &aad_bytes(&record.id, aad), &mut buf)
            .map_err(|_| bad())?
            .len();
        buf.truncate(len);
        Ok((buf, version.id.clone()))
    }

    /// Wraps `plaintext` (or a fresh 32-byte DEK, returned too) under the key's newest version.
    pub async fn wrap(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        plaintext: Option<Zeroizing<Vec<u8>>>,
        aad: &[String],
    ) -> Result<Wrapped> {
        let instance = self.kms_instance(instance_id).await?;
        let record = self.key_cached(instance_id, id).await?;
        self.authorize(caller, Action::KmsWrap, &instance, Some(&record.id))
            .await?;
        usable_for(&record, true)?;
        check_aad(aad)?;
        let generated = plaintext.is_none();
        let dek = plaintext.unwrap_or_else(|| Zeroizing::new(coffer_crypto::random_bytes(32)));
        if dek.is_empty() || dek.len() > MAX_PLAINTEXT {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "plaintext",
                "the plaintext is 1 to 7500 bytes",
            ));
        }
        let (ciphertext, key_version) = self.seal_dek(&record, &dek, aad).await?;
        Ok(Wrapped {
            ciphertext,
            key_version,
            plaintext: generated.then_some(dek),
            previous_version: None,
        })
    }

    /// Unwraps a DEK; one wrapped by an older version also comes back rewrapped under the newest.
    pub async fn unwrap(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        ciphertext: &str,
        aad: &[String],
    ) -> Result<Unwrapped> {
        let instance = self.kms_instance(instance_id).await?;
        let record = self.key_cached(instance_id, id).await?;
        self.authorize(caller, Action::KmsUnwrap, &instance, Some(&record.id))
            .await?;
        usable_for(&record, false)?;
        check_aad(aad)?;
        let (plaintext, version) = self.open_dek(&record, ciphertext, aad).await?;
        let newest = record.current_version().map(|v| v.id.clone()).unwrap_or_default();
        let rewrapped = if version != newest {
            Some(self.seal_dek(&record, &plaintext, aad).await?)
        } else {
            None
        };
        Ok(Unwrapped {
            plaintext,
            key_version: version,
            rewrapped,
        })
    }

    /// Re-encrypts a wrapped DEK under the key's newest version without returning it.
    pub async fn rewrap(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        ciphertext: &str,
        aad: &[String],
    ) -> Result<Wrapped> {
        let instance = self.kms_instance(instance_id).await?;
        let record = self.key_cached(instance_id, id).await?;
        self.authorize(caller, Action::KmsRewrap, &instance, Some(&record.id))
            .await?;
        usable_for(&record, false)?;
        check_aad(aad)?;
        let (plaintext, previous) = self.open_dek(&record, ciphertext, aad).await?;
        let (ciphertext, key_version) = self.seal_dek(&record, &plaintext, aad).await?;
        Ok(Wrapped {
            ciphertext,
            key_version,
            plaintext: None,
            previous_version: Some(previous),
        })
    }
}
