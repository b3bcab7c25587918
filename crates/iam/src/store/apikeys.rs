//! API keys: created with a secret shown once, stored as a hash, listed, disabled, deleted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_storage::Batch;

use super::{APIKEY_HASHES, APIKEYS, Iam, new_uuid, now};
use crate::model::ApiKey;
use crate::secret::SecretString;
use crate::{Error, Result};

/// A new API key: the record, and the secret, which is never shown again.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: SecretString,
}

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(coffer_crypto::sha256(secret.as_bytes()))
}

/// 44 characters of `[A-Za-z0-9_-]`, as IBM API keys look.
fn new_secret() -> SecretString {
    SecretString::new(URL_SAFE_NO_PAD.encode(coffer_crypto::random_bytes(33)))
}

impl Iam {
    /// Creates an API key for a user or service ID. With `preset`, uses that secret.
    pub async fn create_apikey(
        &self,
        iam_id: &str,
        name: &str,
        description: Option<String>,
        created_by: &str,
        preset: Option<SecretString>,
    ) -> Result<NewApiKey> {
        let account = self.identity_account(iam_id).await?;
        let secret = match preset {
            Some(s) => {
                let ok = (20..=128).contains(&s.expose().len())
                    && s.expose()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(Error::invalid(
                        "an API key is 20 to 128 characters of letters, digits, '-' and '_'",
                    ));
                }
                s
            }
            None => new_secret(),
        };
        let key = ApiKey {
            id: format!("ApiKey-{}", new_uuid()),
            name: name.to_owned(),
            description,
            iam_id: iam_id.to_owned(),
            account,
            hash: hash_secret(secret.expose()),
            disabled: false,
            created: now(),
            created_by: created_by.to_owned(),
        };
        let mut b = Batch::new();
        Self::insert(&mut b, APIKEYS, &key.id, &key)?;
        b.expect_absent(APIKEY_HASHES, key.hash.as_str()).put(
            APIKEY_HASHES,
            key.hash.as_str(),
            key.id.as_bytes().to_vec(),
        );
        self.commit_new(b).await?;
        Ok(NewApiKey { key, secret })
    }

    pub async fn apikey(&self, id: &str) -> Result<ApiKey> {
        self.load(APIKEYS, id).await
    }

    /// The API key a secret belongs to.
    pub async fn apikey_by_secret(&self, secret: &str) -> Result<ApiKey> {
        let hash = hash_secret(secret);
        let id = self
            .meta
            .get(APIKEY_HASHES, hash.as_bytes())
            .await?
            .ok_or(Error::ApiKeyNotFound)?;
        let id = String::from_utf8(id).map_err(|_| Error::ApiKeyNotFound)?;
        self.apikey(&id).await.map_err(|e| match e {
            Error::NotFound => Error::ApiKeyNotFound,
            e => e,
        })
    }

    pub async fn list_apikeys(&self, account: &str, iam_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let all: Vec<ApiKey> = self.load_all(APIKEYS, "").await?;
        Ok(all
            .into_iter()
            .filter(|k| k.account == account && iam_id.is_none_or(|i| k.iam_id == i))
            .collect())
    }

    pub(crate) fn delete_apikey_ops(b: &mut Batch, key: &ApiKey) {
        b.delete(APIKEYS, key.id.as_str())
            .delete(APIKEY_HASHES, key.hash.as_str());
    }

    pub async fn delete_apikey(&self, id: &str) -> Result<()> {
        let key = self.apikey(id).await?;
        let mut b = Batch::new();
        Self::delete_apikey_ops(&mut b, &key);
        self.meta.commit(b).await?;
        Ok(())
    }

    /// Disables (or enables again) an API key: a disabled key gets no tokens.
    pub async fn set_apikey_disabled(&self, id: &str, disabled: bool) -> Result<ApiKey> {
        loop {
            let raw = self
                .meta
                .get(APIKEYS, id.as_bytes())
                .await?
                .ok_or(Error::NotFound)?;
            let mut key: ApiKey = serde_json::from_slice(&raw)?;
            key.disabled = disabled;
            let mut b = Batch::new();
            b.expect_value(APIKEYS, id, raw)
                .put(APIKEYS, id, serde_json::to_vec(&key)?);
            match self.meta.commit(b).await {
                Ok(()) => return Ok(key),
                Err(coffer_storage::Error::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
