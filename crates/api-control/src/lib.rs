//! The control plane: every non-S3 HTTP API of coffer as one axum router — the IAM token
//! service, identities and policies today; key management and the console next. Errors take
//! each API family's wire shape in `error.rs`.

mod auth;
mod error;
mod identities;
mod kms;
mod policies;
mod token;

use axum::routing::{delete, get, post};
use axum::{Json, Router};
use coffer_iam::Iam;
use serde_json::{Value, json};

pub use error::{ControlError, PlatformError};
pub use kms::PeerAddr;

/// What the control plane needs to answer.
#[derive(Clone)]
pub struct ControlState {
    pub iam: Iam,
    pub kms: coffer_kms::Kms,
    pub store: coffer_objects::Store,
    pub region: String,
    /// The control plane's own base URL, for `href`s.
    pub public_url: String,
}

pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/identity/token", post(token::token))
        .route("/oidc/token", post(token::token))
        .route("/identity/keys", get(token::keys))
        .route("/identity/keys/rotate", post(token::rotate))
        .route("/v1/policies", post(policies::create).get(policies::list))
        .route("/v1/policies/{id}", get(policies::get).delete(policies::delete))
        .route(
            "/v1/users",
            post(identities::create_user).get(identities::list_users),
        )
        .route("/v1/users/{iam_id}", delete(identities::delete_user))
        .route(
            "/v1/serviceids",
            post(identities::create_service_id).get(identities::list_service_ids),
        )
        .route("/v1/serviceids/{id}", delete(identities::delete_service_id))
        .route(
            "/v1/apikeys",
            post(identities::create_apikey).get(identities::list_apikeys),
        )
        .route("/v1/apikeys/{id}", delete(identities::delete_apikey))
        .route(
            "/v1/apikeys/{id}/disable",
            post(identities::disable_apikey).delete(identities::enable_apikey),
        )
        .route(
            "/v1/hmac_keys",
            post(identities::create_hmac).get(identities::list_hmac),
        )
        .route("/v1/hmac_keys/{access_key_id}", delete(identities::delete_hmac))
        .route("/v1/activity", get(activity))
        .merge(kms::routes())
        .with_state(state)
}

async fn health(axum::extract::State(state): axum::extract::State<ControlState>) -> Json<Value> {
    Json(
        json!({ "status": "ok", "service": "coffer", "version": env!("CARGO_PKG_VERSION"), "region": state.region }),
    )
}

#[derive(serde::Deserialize)]
struct ActivityQuery {
    limit: Option<usize>,
}

/// The activity log (newest last), for account administrators.
async fn activity(
    axum::extract::State(state): axum::extract::State<ControlState>,
    who: auth::Authenticated,
    axum::extract::Query(q): axum::extract::Query<ActivityQuery>,
) -> Result<Json<Value>, PlatformError> {
    let account = coffer_iam::Resource {
        account: who.account().to_owned(),
        ..coffer_iam::Resource::default()
    };
    auth::require(&state, &who, coffer_iam::Action::IamViewPolicies, &account).await?;
    let events = state
        .store
        .activity(q.limit.unwrap_or(100).min(10_000))
        .await
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    Ok(Json(json!({ "events": events })))
}

/// RFC 3339 with seconds precision and a `Z`, as IBM's APIs answer.
pub(crate) fn time_rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
