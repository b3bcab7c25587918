//! Import tokens (secure import): an RSA-4096 key pair per instance. Clients encrypt key
//! material to its public key with RSA-OAEP, and a nonce with AES-GCM under that material, so
//! the server learns the material only inside this module and can tell a replayed import.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::{AeadKey, ImportKeyPair, KeyMaterial, NONCE_LEN, OaepHash};
use coffer_iam::{Action, Principal};
use coffer_storage::Batch;
use zeroize::Zeroizing;

use crate::keys::NewKey;
use crate::model::ImportToken;
use crate::provider::MasterKey;
use crate::store::{IMPORT_TOKENS, Kms};
use crate::{KmsError, Result, now};

const RSA_BITS: usize = 4096;

fn token_aad(instance: &str) -> Vec<u8> {
    format!("coffer-kms/import-token/v1|{instance}").into_bytes()
}

impl Kms {
    /// Creates the instance's import token, replacing any previous one.
    pub async fn create_import_token(
        &self,
        caller: &Principal,
        instance_id: &str,
        expiration: Option<i64>,
        max_retrievals: Option<u32>,
    ) -> Result<ImportToken> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsImportToken, &instance, None)
            .await?;
        let master = self.master(instance_id).await?;
        let expiration = expiration.unwrap_or(600);
        if !(300..=86_400).contains(&expiration) {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "expiration",
                "expiration is 300 to 86400 seconds",
            ));
        }
        let max = max_retrievals.unwrap_or(1);
        if !(1..=500).contains(&max) {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "maxAllowedRetrievals",
                "maxAllowedRetrievals is 1 to 500",
            ));
        }
        let pair = tokio::task::spawn_blocking(|| ImportKeyPair::generate(RSA_BITS))
            .await
            .map_err(|e| KmsError::Provider(e.to_string()))?
            .map_err(|e| KmsError::Provider(e.to_string()))?;
        let private = pair
            .to_pkcs8_der()
            .map_err(|e| KmsError::Provider(e.to_string()))?;
        let t = now();
        let token = ImportToken {
            created: t,
            expires: t + expiration,
            max_retrievals: max,
            remaining: max,
            public_pem: pair
                .public_key_pem()
                .map_err(|e| KmsError::Provider(e.to_string()))?,
            sealed_private: hex::encode(master.wrap(&private, &token_aad(instance_id))?),
            nonce: B64.encode(coffer_crypto::random_bytes(8)),
        };
        let mut b = Batch::new();
        b.put(IMPORT_TOKENS, instance_id, serde_json::to_vec(&token)?);
        self.meta().commit(b).await?;
        Ok(token)
    }

    /// Retrieves the token (its public key and nonce), counting the retrieval.
    pub async fn retrieve_import_token(&self, caller: &Principal, instance_id: &str) -> Result<ImportToken> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsImportToken, &instance, None)
            .await?;
        let (mut token, raw) = self
            .load::<ImportToken>(IMPORT_TOKENS, instance_id)
            .await?
            .ok_or_else(|| {
                KmsError::not_found("IMPORT_TOKEN_NOT_FOUND_ERR", "the instance has no import token")
            })?;
        if token.expires <= now() {
            return Err(KmsError::conflict(
                "IMPORT_TOKEN_EXPIRED_ERR",
                "the import token has expired",
            ));
        }
        if token.remaining == 0 {
            return Err(KmsError::conflict(
                "IMPORT_TOKEN_EXPIRED_ERR",
                "the import token reached its maximum retrievals",
            ));
        }
        token.remaining -= 1;
        let mut b = Batch::new();
        b.expect_value(IMPORT_TOKENS, instance_id, raw).put(
            IMPORT_TOKENS,
            instance_id,
            serde_json::to_vec(&token)?,
        );
        self.meta().commit(b).await?;
        Ok(token)
    }

    /// Decrypts a securely imported payload and checks its nonce.
    pub(crate) async fn secure_import(
        &self,
        instance_id: &str,
        payload: &[u8],
        key: &NewKey,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (Some(encrypted_nonce), Some(iv)) = (&key.encrypted_nonce, &key.iv) else {
            return Err(KmsError::invalid(
                "INCORRECT_NONCE_IV_ERR",
                "secure import needs both encryptedNonce and iv",
            ));
        };
        let (token, _) = self
            .load::<ImportToken>(IMPORT_TOKENS, instance_id)
            .await?
            .ok_or_else(|| {
                KmsError::not_found("IMPORT_TOKEN_NOT_FOUND_ERR", "the instance has no import token")
            })?;
        if token.expires <= now() {
            return Err(KmsError::conflict(
                "IMPORT_TOKEN_EXPIRED_ERR",
                "the import token has expired",
            ));
        }
        let hash = match key.encryption_algorithm.as_deref() {
            None | Some("RSAES_OAEP_SHA_256") => OaepHash::Sha256,
            Some("RSAES_OAEP_SHA_1") => OaepHash::Sha1,
            Some(other) => {
                return Err(KmsError::field(
                    "INVALID_FIELD_ERR",
                    "encryptionAlgorithm",
                    format!("unsupported {other}"),
                ));
            }
        };
        let master = self.master(instance_id).await?;
        let sealed =
            hex::decode(&token.sealed_private).map_err(|_| KmsError::Corrupt("import token".into()))?;
        let private = master.unwrap(&sealed, &token_aad(instance_id))?;
        let pair = ImportKeyPair::from_pkcs8_der(&private).map_err(|e| KmsError::Corrupt(e.to_string()))?;
        let material = pair.decrypt(hash, payload).map_err(|_| {
            KmsError::field(
                "INVALID_FIELD_ERR",
                "payload",
                "the payload does not decrypt with the import token",
            )
        })?;
        // The nonce, sealed with AES-GCM under the material itself, proves the client used this token.
        let nonce_key = KeyMaterial::from_slice(&coffer_crypto::sha256(&material))
            .map_err(|e| KmsError::Corrupt(e.to_string()))?;
        let direct = (material.len() == 32)
            .then(|| KeyMaterial::from_slice(&material).ok())
            .flatten();
        let iv: [u8; NONCE_LEN] = iv
            .as_slice()
            .try_into()
            .map_err(|_| KmsError::invalid("INCORRECT_NONCE_IV_ERR", "the iv is 12 bytes"))?;
        let expected = B64.decode(&token.nonce).unwrap_or_default();
        let opens = |k: &KeyMaterial| {
            let mut buf = encrypted_nonce.clone();
            AeadKey::new(k)
                .open_in_place(iv, b"", &mut buf)
                .ok()
                .map(|p| p.to_vec())
        };
        let nonce = direct.as_ref().and_then(opens).or_else(|| opens(&nonce_key));
        if nonce.as_deref() != Some(expected.as_slice()) {
            return Err(KmsError::invalid(
                "INCORRECT_NONCE_ERR",
                "the encrypted nonce does not match the import token",
            ));
        }
        Ok(material)
    }

    /// Re-seals the import token under a new master key (master key rotation).
    pub(crate) async fn reseal_import_token(
        &self,
        instance_id: &str,
        old: &dyn MasterKey,
        new: &dyn MasterKey,
    ) -> Result<()> {
        let Some((mut token, raw)) = self.load::<ImportToken>(IMPORT_TOKENS, instance_id).await? else {
            return Ok(());
        };
        let aad = token_aad(instance_id);
        let sealed =
            hex::decode(&token.sealed_private).map_err(|_| KmsError::Corrupt("import token".into()))?;
        let private = old.unwrap(&sealed, &aad).or_else(|_| new.unwrap(&sealed, &aad))?;
        token.sealed_private = hex::encode(new.wrap(&private, &aad)?);
        let mut b = Batch::new();
        b.expect_value(IMPORT_TOKENS, instance_id, raw).put(
            IMPORT_TOKENS,
            instance_id,
            serde_json::to_vec(&token)?,
        );
        self.meta().commit(b).await?;
        Ok(())
    }
}
