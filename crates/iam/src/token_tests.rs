//! Tokens: issue, verify, refresh, refuse.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use coffer_storage::local::RedbMetaStore;

use crate::store::{BootstrapRequest, Iam};
use crate::token::{TokenConfig, TokenError};
use crate::{Error, Principal};

async fn setup(cfg: TokenConfig) -> (tempfile::TempDir, Iam, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let iam = Iam::open(meta, cfg).await.unwrap();
    let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let key = iam.admin_apikey(&boot, None, None).await.unwrap();
    (dir, iam, boot.admin_iam_id, key.expose().to_owned())
}

#[tokio::test]
async fn apikey_grant_and_verification() {
    let (_d, iam, admin, key) = setup(TokenConfig::default()).await;
    let t = iam.token_for_apikey(&key).await.unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, 3600);
    let claims = iam.verify_token(&t.access_token).await.unwrap();
    assert_eq!(claims.iam_id, admin);
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!(matches!(
        iam.principal_for_token(&t.access_token).await.unwrap(),
        Principal::Identity { .. }
    ));
    assert!(matches!(
        iam.token_for_apikey("nope-nope-nope-nope-nope").await,
        Err(Error::ApiKeyNotFound)
    ));
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let (_d, iam, _, key) = setup(TokenConfig::default()).await;
    let t = iam.token_for_apikey(&key).await.unwrap().access_token;
    // The genuine token, verified (and remembered) first, lends nothing to a forgery of it.
    iam.verify_token(&t).await.unwrap();
    iam.verify_token(&t).await.unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    claims["iam_id"] = "IBMid-INTRUDER0".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_eq!(
        iam.verify_token(&forged).await.unwrap_err(),
        TokenError::BadSignature
    );
    assert_eq!(iam.verify_token("a.b").await.unwrap_err(), TokenError::Malformed);

    // Signed by another coffer (another key): unknown key id.
    let (_d2, other, _, other_key) = setup(TokenConfig::default()).await;
    let foreign = other.token_for_apikey(&other_key).await.unwrap().access_token;
    assert_eq!(
        iam.verify_token(&foreign).await.unwrap_err(),
        TokenError::UnknownKey
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let cfg = TokenConfig {
        lifetime_secs: 1,
        ..TokenConfig::default()
    };
    let (_d, iam, _, key) = setup(cfg).await;
    let t = iam.token_for_apikey(&key).await.unwrap().access_token;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(iam.verify_token(&t).await.unwrap_err(), TokenError::Expired);
}

#[tokio::test]
async fn refresh_once_and_only_while_the_key_lives() {
    let (_d, iam, _, key) = setup(TokenConfig::default()).await;
    let t = iam.token_for_apikey(&key).await.unwrap();
    let again = iam.token_for_refresh(&t.refresh_token).await.unwrap();
    iam.verify_token(&again.access_token).await.unwrap();
    assert!(matches!(
        iam.token_for_refresh(&t.refresh_token).await,
        Err(Error::RefreshTokenInvalid)
    ));
    let apikey = iam.apikey_by_secret(&key).await.unwrap();
    iam.set_apikey_disabled(&apikey.id, true).await.unwrap();
    assert!(matches!(
        iam.token_for_refresh(&again.refresh_token).await,
        Err(Error::ApiKeyDisabled)
    ));
    assert!(matches!(
        iam.token_for_apikey(&key).await,
        Err(Error::ApiKeyDisabled)
    ));
    iam.set_apikey_disabled(&apikey.id, false).await.unwrap();
    iam.delete_apikey(&apikey.id).await.unwrap();
    assert!(matches!(
        iam.token_for_apikey(&key).await,
        Err(Error::ApiKeyNotFound)
    ));
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_tokens_valid() {
    let (_d, iam, _, key) = setup(TokenConfig::default()).await;
    let before = iam.token_for_apikey(&key).await.unwrap().access_token;
    let kid = iam.rotate_signing_key().await.unwrap();
    let after = iam.token_for_apikey(&key).await.unwrap().access_token;
    iam.verify_token(&before).await.unwrap();
    iam.verify_token(&after).await.unwrap();
    let jwks = iam.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], kid, "the new key signs");
}

#[tokio::test]
async fn deleting_an_identity_revokes_its_tokens_and_keys() {
    let (_d, iam, admin, _) = setup(TokenConfig::default()).await;
    let account = iam.identity_account(&admin).await.unwrap();
    let sid = iam.create_service_id(&account, "app", None).await.unwrap();
    let k = iam
        .create_apikey(&sid.iam_id, "k", None, &admin, None)
        .await
        .unwrap();
    let t = iam
        .token_for_apikey(k.secret.expose())
        .await
        .unwrap()
        .access_token;
    iam.delete_service_id(&sid.id).await.unwrap();
    assert_eq!(iam.verify_token(&t).await.unwrap_err(), TokenError::IdentityGone);
    assert!(matches!(
        iam.token_for_apikey(k.secret.expose()).await,
        Err(Error::ApiKeyNotFound)
    ));
}
