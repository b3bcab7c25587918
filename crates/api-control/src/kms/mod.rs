//! The Key Protect / Hyper Protect Crypto Services key-management API v2 (`/api/v2/...`), and
//! coffer's instance management and custodian ceremony (`/kms/v1/...`).

mod actions;
mod ceremony;
mod instance;
mod json;
mod keys;
mod wire;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use coffer_iam::Principal;
use coffer_kms::{KmsError, ip_allowed};

use crate::ControlState;
use crate::auth::bearer;
pub use wire::KpError;

/// The client's address, put into request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Who calls, on which instance (`Bluemix-Instance`), in which key ring (`X-Kms-Key-Ring`).
pub struct Kp {
    pub principal: Principal,
    pub instance: String,
    pub key_ring: Option<String>,
}

impl FromRequestParts<ControlState> for Kp {
    type Rejection = KpError;

    async fn from_request_parts(parts: &mut Parts, state: &ControlState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| KmsError::Unauthorized("Unauthorized: a bearer token is required".into()))?;
        let principal = state
            .iam
            .principal_for_token(token)
            .await
            .map_err(|e| KmsError::Unauthorized(format!("Unauthorized: {e}")))?;
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let instance = header("bluemix-instance")
            .ok_or_else(|| KmsError::Invalid {
                code: "BAD_BODY_ERR",
                message: "the Bluemix-Instance header is required".into(),
                field: None,
            })?
            .to_owned();
        if let Some(allowed) = state.kms.allowed_ips(&instance).await.map_err(KpError)?
            && let Some(PeerAddr(peer)) = parts.extensions.get::<PeerAddr>()
            && !ip_allowed(peer.ip(), &allowed)
        {
            return Err(KmsError::Unauthorized(
                "Unauthorized: the instance's allowedIP policy refuses this address".into(),
            )
            .into());
        }
        Ok(Self {
            principal,
            instance,
            key_ring: header("x-kms-key-ring").map(str::to_owned),
        })
    }
}

pub fn routes() -> Router<ControlState> {
    Router::new()
        .route(
            "/api/v2/keys",
            get(keys::list).head(keys::total).post(keys::create),
        )
        .route(
            "/api/v2/keys_with_policy_overrides",
            post(keys::create_with_policies),
        )
        .route("/api/v2/keys/registrations", get(instance::all_registrations))
        .route(
            "/api/v2/keys/{id}",
            get(keys::get)
                .patch(keys::patch)
                .delete(keys::delete)
                .post(actions::deprecated_action),
        )
        .route("/api/v2/keys/{id}/metadata", get(keys::metadata))
        .route("/api/v2/keys/{id}/purge", axum::routing::delete(keys::purge))
        .route("/api/v2/keys/{id}/restore", post(keys::restore))
        .route("/api/v2/keys/{id}/versions", get(keys::versions))
        .route("/api/v2/keys/{id}/events", get(keys::events))
        .route("/api/v2/keys/{id}/actions/{action}", post(actions::action))
        .route(
            "/api/v2/keys/{id}/policies",
            get(keys::get_policies).put(keys::put_policy),
        )
        .route(
            "/api/v2/keys/{id}/aliases/{alias}",
            post(keys::create_alias).delete(keys::delete_alias),
        )
        .route(
            "/api/v2/keys/{id}/registrations",
            get(instance::key_registrations),
        )
        .route(
            "/api/v2/keys/{id}/registrations/{crn}",
            post(instance::create_registration)
                .put(instance::replace_registration)
                .patch(instance::update_registration)
                .delete(instance::delete_registration),
        )
        .route(
            "/api/v2/instance/policies",
            get(instance::get_policies).put(instance::put_policy),
        )
        .route("/api/v2/instance/allowed_ip_port", get(instance::allowed_ip_port))
        .route(
            "/api/v2/import_token",
            post(instance::create_import_token).get(instance::get_import_token),
        )
        .route("/api/v2/key_rings", get(instance::list_key_rings))
        .route(
            "/api/v2/key_rings/{id}",
            post(instance::create_key_ring).delete(instance::delete_key_ring),
        )
        .route("/api/v2/event_ack", post(instance::event_ack))
        .route("/api/v2/kmip_adapters", get(instance::kmip_adapters))
        .route("/kms/v1/instances", get(ceremony::list).post(ceremony::create))
        .route(
            "/kms/v1/instances/{id}",
            get(ceremony::get).delete(ceremony::delete),
        )
        .route("/kms/v1/instances/{id}/init", post(ceremony::init))
        .route("/kms/v1/instances/{id}/parts", post(ceremony::load_part))
        .route(
            "/kms/v1/instances/{id}/master_key/rotate",
            post(ceremony::rotate_master),
        )
}
