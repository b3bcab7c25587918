//! IAM tokens: API key (or refresh token) → a signed JWT access token and a refresh token.
//!
//! Access tokens are JWTs signed with Ed25519 (`alg: EdDSA`); the public keys are served as a
//! JWKS. IBM's SDKs decode the token without verifying it (only its shape and `exp`/`iat`
//! matter to them); coffer verifies every token it receives. Signing keys rotate with an
//! overlap: the previous key keeps verifying until every token it signed has expired.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use coffer_crypto::{SigningKey, verify_signature};
use coffer_storage::{Batch, KeyRange, MetaStore};
use serde::{Deserialize, Serialize};

use crate::eval::Principal;
use crate::secret::SecretString;
use crate::store::{Iam, REFRESH_TOKENS, SIGNING_KEYS, new_uuid, now};
use crate::{Error, Result};

/// Token lifetimes and the issuer name.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub lifetime_secs: i64,
    pub refresh_lifetime_secs: i64,
    pub issuer: String,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            lifetime_secs: 3600,
            refresh_lifetime_secs: 30 * 24 * 3600,
            issuer: "coffer".into(),
        }
    }
}

/// What the token endpoint answers (IBM's field names).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub expiration: i64,
    pub scope: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountClaim {
    pub bss: String,
    pub valid: bool,
}

/// Verified tokens: SHA-256 of the token -> (signing key id, claims).
pub(crate) type VerifiedTokens = std::collections::HashMap<[u8; 32], (String, Claims)>;

/// Verified tokens remembered at most (expired ones are dropped first).
const VERIFIED_TOKENS_MAX: usize = 10_000;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iam_id: String,
    pub id: String,
    pub realmid: String,
    pub jti: String,
    pub identifier: String,
    pub sub: String,
    pub sub_type: String,
    pub account: AccountClaim,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub grant_type: String,
    pub scope: String,
    pub client_id: String,
}

/// Why a token was refused (every case is a 401 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token's identity no longer exists")]
    IdentityGone,
    #[error("the token could not be checked")]
    Unavailable,
}

/// Tolerated clock difference for `iat`, in seconds.
const SKEW: i64 = 60;

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    pkcs8: SecretString,
    created: i64,
    /// When set, the key no longer signs and stops verifying at this time.
    retire_at: Option<i64>,
}

struct LoadedKey {
    kid: String,
    key: SigningKey,
    public: Vec<u8>,
    retire_at: Option<i64>,
}

/// The signing keys in memory: the current one first.
pub(crate) struct Keyring {
    keys: Vec<LoadedKey>,
}

impl Keyring {
    pub(crate) async fn load(meta: &dyn MetaStore, cfg: &TokenConfig) -> Result<Self> {
        let t = now();
        let mut stored: Vec<StoredKey> = Vec::new();
        let mut expired = Batch::new();
        for (k, v) in meta.scan(SIGNING_KEYS, KeyRange::prefix(b""), usize::MAX).await? {
            let key: StoredKey = serde_json::from_slice(&v)?;
            if key.retire_at.is_some_and(|r| r <= t) {
                expired.delete(SIGNING_KEYS, k);
            } else {
                stored.push(key);
            }
        }
        meta.commit(expired).await?;
        if !stored.iter().any(|k| k.retire_at.is_none()) {
            stored.push(new_stored_key(meta).await?);
        }
        let _ = cfg;
        // Current (never retiring) first, then the rest newest first.
        stored.sort_by_key(|k| (k.retire_at.is_some(), std::cmp::Reverse(k.created)));
        let keys = stored
            .into_iter()
            .map(|s| {
                let key = SigningKey::from_pkcs8(
                    &B64.decode(s.pkcs8.expose())
                        .map_err(|_| Error::Signing("stored key".into()))?,
                )
                .map_err(|e| Error::Signing(e.to_string()))?;
                Ok(LoadedKey {
                    public: key.public_key(),
                    kid: s.kid,
                    key,
                    retire_at: s.retire_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { keys })
    }
}

async fn new_stored_key(meta: &dyn MetaStore) -> Result<StoredKey> {
    let (_, pkcs8) = SigningKey::generate().map_err(|e| Error::Signing(e.to_string()))?;
    let stored = StoredKey {
        kid: new_uuid(),
        pkcs8: SecretString::new(B64.encode(&*pkcs8)),
        created: now(),
        retire_at: None,
    };
    let mut b = Batch::new();
    b.put(SIGNING_KEYS, stored.kid.as_str(), serde_json::to_vec(&stored)?);
    meta.commit(b).await?;
    Ok(stored)
}

fn b64url_json<T: Serialize>(v: &T) -> Result<String> {
    Ok(B64URL.encode(serde_json::to_vec(v)?))
}

impl Iam {
    fn sign(&self, claims: &Claims) -> Result<String> {
        let ring = self
            .keyring
            .read()
            .map_err(|_| Error::Signing("keyring poisoned".into()))?;
        let current = ring
            .keys
            .first()
            .ok_or_else(|| Error::Signing("no signing key".into()))?;
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": current.kid });
        let signing_input = format!("{}.{}", b64url_json(&header)?, b64url_json(claims)?);
        let sig = current.key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", B64URL.encode(sig)))
    }

    async fn issue(&self, iam_id: &str, apikey_id: &str, grant_type: &str) -> Result<TokenResponse> {
        let account = self.identity_account(iam_id).await?;
        let t = now();
        let exp = t + self.tokens.lifetime_secs;
        let claims = Claims {
            iam_id: iam_id.to_owned(),
            id: iam_id.to_owned(),
            realmid: "iam".into(),
            jti: new_uuid(),
            identifier: apikey_id.to_owned(),
            sub: iam_id.to_owned(),
            sub_type: if iam_id.starts_with("iam-ServiceId-") {
                "ServiceId"
            } else {
                "user"
            }
            .into(),
            account: AccountClaim {
                bss: account,
                valid: true,
            },
            iat: t,
            exp,
            iss: self.tokens.issuer.clone(),
            grant_type: grant_type.to_owned(),
            scope: "ibm openid".into(),
            client_id: "default".into(),
        };
        let access_token = self.sign(&claims)?;
        let refresh = B64URL.encode(coffer_crypto::random_bytes(32));
        let record = RefreshRecord {
            iam_id: iam_id.to_owned(),
            apikey_id: apikey_id.to_owned(),
            expires: t + self.tokens.refresh_lifetime_secs,
        };
        let mut b = Batch::new();
        b.put(
            REFRESH_TOKENS,
            refresh_key(&refresh),
            serde_json::to_vec(&record)?,
        );
        self.meta.commit(b).await?;
        Ok(TokenResponse {
            access_token,
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: self.tokens.lifetime_secs,
            expiration: exp,
            scope: "ibm openid",
        })
    }

    /// The API-key grant.
    pub async fn token_for_apikey(&self, secret: &str) -> Result<TokenResponse> {
        let key = self.apikey_by_secret(secret).await?;
        if key.disabled {
            return Err(Error::ApiKeyDisabled);
        }
        self.issue(&key.iam_id, &key.id, "urn:ibm:params:oauth:grant-type:apikey")
            .await
    }

    /// The refresh-token grant: a refresh token is used once, and only while its API key
    /// still exists and is enabled.
    pub async fn token_for_refresh(&self, refresh: &str) -> Result<TokenResponse> {
        let k = refresh_key(refresh);
        let raw = self
            .meta
            .get(REFRESH_TOKENS, k.as_bytes())
            .await?
            .ok_or(Error::RefreshTokenInvalid)?;
        let record: RefreshRecord = serde_json::from_slice(&raw)?;
        let mut b = Batch::new();
        b.expect_value(REFRESH_TOKENS, k.as_str(), raw)
            .delete(REFRESH_TOKENS, k.as_str());
        self.meta
            .commit(b)
            .await
            .map_err(|_| Error::RefreshTokenInvalid)?;
        if record.expires <= now() {
            return Err(Error::RefreshTokenInvalid);
        }
        match self.apikey(&record.apikey_id).await {
            Ok(key) if key.disabled => return Err(Error::ApiKeyDisabled),
            Ok(_) => {}
            Err(Error::NotFound) => return Err(Error::ApiKeyNotFound),
            Err(e) => return Err(e),
        }
        self.issue(&record.iam_id, &record.apikey_id, "refresh_token")
            .await
    }

    /// Checks a token's signature, lifetime and identity.
    pub async fn verify_token(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.check_signature(token)?;
        let t = now();
        if claims.exp <= t {
            return Err(TokenError::Expired);
        }
        if claims.iat > t + SKEW {
            return Err(TokenError::Malformed);
        }
        match self.identity_account(&claims.iam_id).await {
            Ok(account) if account == claims.account.bss => Ok(claims),
            Ok(_) | Err(Error::NotFound) => Err(TokenError::IdentityGone),
            Err(_) => Err(TokenError::Unavailable),
        }
    }

    /// The principal a valid token speaks for.
    pub async fn principal_for_token(&self, token: &str) -> Result<Principal, TokenError> {
        let c = self.verify_token(token).await?;
        Ok(Principal::Identity {
            iam_id: c.iam_id,
            account: c.account.bss,
        })
    }

    fn check_signature(&self, token: &str) -> Result<Claims, TokenError> {
        // An Ed25519 verification costs more than the rest of a KMS call: a token verified once
        // is known by its digest until it expires, as long as its signing key is not retired.
        let digest = coffer_crypto::sha256(token.as_bytes());
        if let Some((kid, claims)) = self.verified_lock().get(&digest).cloned() {
            let ring = self.keyring.read().map_err(|_| TokenError::Unavailable)?;
            if ring
                .keys
                .iter()
                .any(|k| k.kid == kid && k.retire_at.is_none_or(|r| r > now()))
            {
                return Ok(claims);
            }
        }
        let (kid, claims) = self.verify_signature_of(token)?;
        let mut cache = self.verified_lock();
        if cache.len() >= VERIFIED_TOKENS_MAX {
            let t = now();
            cache.retain(|_, (_, c)| c.exp > t);
            if cache.len() >= VERIFIED_TOKENS_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, (kid, claims.clone()));
        Ok(claims)
    }

    fn verified_lock(&self) -> std::sync::MutexGuard<'_, VerifiedTokens> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the token's signature; its key id and claims.
    fn verify_signature_of(&self, token: &str) -> Result<(String, Claims), TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(h).map_err(|_| TokenError::Malformed)?)
                .map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
            return Err(TokenError::BadSignature);
        }
        let kid = header
            .get("kid")
            .and_then(|k| k.as_str())
            .ok_or(TokenError::UnknownKey)?;
        let sig = B64URL.decode(s).map_err(|_| TokenError::Malformed)?;
        {
            let ring = self.keyring.read().map_err(|_| TokenError::Unavailable)?;
            let key = ring
                .keys
                .iter()
                .find(|k| k.kid == kid && k.retire_at.is_none_or(|r| r > now()))
                .ok_or(TokenError::UnknownKey)?;
            if !verify_signature(&key.public, format!("{h}.{c}").as_bytes(), &sig) {
                return Err(TokenError::BadSignature);
            }
        }
        let claims = serde_json::from_slice(&B64URL.decode(c).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
        Ok((kid.to_owned(), claims))
    }

    /// The public keys that verify tokens, as a JWKS.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keyring
            .read()
            .map(|ring| {
                ring.keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                            "kid": k.kid, "x": B64URL.encode(&k.public),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({ "keys": keys })
    }

    /// Starts signing with a new key; the previous one verifies until its tokens expired.
    pub async fn rotate_signing_key(&self) -> Result<String> {
        let retire_at = now() + self.tokens.lifetime_secs + SKEW;
        let mut b = Batch::new();
        for (k, v) in self
            .meta
            .scan(SIGNING_KEYS, KeyRange::prefix(b""), usize::MAX)
            .await?
        {
            let mut key: StoredKey = serde_json::from_slice(&v)?;
            if key.retire_at.is_none() {
                key.retire_at = Some(retire_at);
                b.expect_value(SIGNING_KEYS, k.clone(), v)
                    .put(SIGNING_KEYS, k, serde_json::to_vec(&key)?);
            }
        }
        self.meta.commit(b).await?;
        let fresh = new_stored_key(&*self.meta).await?;
        let reloaded = Keyring::load(&*self.meta, &self.tokens).await?;
        *self
            .keyring
            .write()
            .map_err(|_| Error::Signing("keyring poisoned".into()))? = reloaded;
        Ok(fresh.kid)
    }
}

#[derive(Serialize, Deserialize)]
struct RefreshRecord {
    iam_id: String,
    apikey_id: String,
    expires: i64,
}

fn refresh_key(token: &str) -> String {
    hex::encode(coffer_crypto::sha256(token.as_bytes()))
}
