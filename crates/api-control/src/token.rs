//! The IAM token service: `POST /identity/token` and `POST /oidc/token` (the same), and the
//! public keys at `GET /identity/keys`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use serde_json::Value;

use crate::ControlState;
use crate::auth::{Authenticated, account_service, require};
use crate::error::{ControlError, PlatformError, TokenError};

const APIKEY_GRANT: &str = "urn:ibm:params:oauth:grant-type:apikey";

/// The grant, from a form body (whatever the Content-Type says, as the SDKs differ).
pub async fn token(
    State(state): State<ControlState>,
    body: Bytes,
) -> Result<Json<coffer_iam::TokenResponse>, TokenError> {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ControlError::bad("BXNIM0109E", "The request body is not a valid form."))?;
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let response = match field("grant_type") {
        Some(APIKEY_GRANT) => {
            let key = field("apikey")
                .ok_or_else(|| ControlError::bad("BXNIM0109E", "Property missing or empty: apikey"))?;
            state.iam.token_for_apikey(key).await?
        }
        Some("refresh_token") => {
            let rt = field("refresh_token")
                .ok_or_else(|| ControlError::bad("BXNIM0109E", "Property missing or empty: refresh_token"))?;
            state.iam.token_for_refresh(rt).await?
        }
        Some(other) => {
            return Err(ControlError::bad("BXNIM0101E", format!("Unsupported grant_type {other:?}")).into());
        }
        None => return Err(ControlError::bad("BXNIM0109E", "Property missing or empty: grant_type").into()),
    };
    Ok(Json(response))
}

pub async fn keys(State(state): State<ControlState>) -> Json<Value> {
    Json(state.iam.jwks())
}

/// Rotates the signing key (account administrators only).
pub async fn rotate(
    State(state): State<ControlState>,
    who: Authenticated,
) -> Result<Json<Value>, PlatformError> {
    require(
        &state,
        &who,
        coffer_iam::Action::IamManageIdentities,
        &account_service(who.account(), "iam-identity"),
    )
    .await?;
    let kid = state.iam.rotate_signing_key().await?;
    Ok(Json(serde_json::json!({ "kid": kid })))
}
