//! Control-plane errors and their wire shapes, in one place.
//!
//! Each API family has the error body its clients parse: the IAM token endpoint
//! (`errorCode`/`errorMessage`, read by ibm_botocore and kp-go), the platform APIs (`trace`,
//! `errors[]`, `status_code`, read by ibm-cloud-sdk-core's `ApiException`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong, independent of the wire.
#[derive(Debug)]
pub enum ControlError {
    /// No usable credentials (401).
    Unauthenticated(String),
    /// Authenticated, but the decision function said no (403).
    Forbidden(String),
    NotFound(String),
    /// A client mistake: a machine-readable code and a message (400).
    BadRequest {
        code: &'static str,
        message: String,
    },
    Conflict(String),
    Internal(String),
}

impl ControlError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "invalid_token",
            Self::Forbidden(_) => "access_denied",
            Self::NotFound(_) => "not_found",
            Self::BadRequest { code, .. } => code,
            Self::Conflict(_) => "conflict",
            Self::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthenticated(m) | Self::Forbidden(m) | Self::NotFound(m) | Self::Conflict(m) => {
                m.clone()
            }
            Self::BadRequest { message, .. } => message.clone(),
            Self::Internal(_) => "internal error".into(),
        }
    }
}

impl From<coffer_iam::Error> for ControlError {
    fn from(e: coffer_iam::Error) -> Self {
        use coffer_iam::Error as E;
        match e {
            E::NotFound => Self::NotFound("the requested resource does not exist".into()),
            E::AlreadyExists => Self::Conflict("the resource already exists".into()),
            E::Invalid(m) => Self::bad("invalid_body", m),
            E::ApiKeyNotFound => Self::bad("BXNIM0415E", "Provided API key could not be found."),
            E::ApiKeyDisabled => Self::bad("BXNIM0416E", "Provided API key is disabled."),
            E::RefreshTokenInvalid => Self::bad("BXNIM0407E", "The refresh token is invalid or expired."),
            other => Self::Internal(other.to_string()),
        }
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn log_internal(e: &ControlError) {
    if let ControlError::Internal(detail) = e {
        tracing::error!(error = %detail, "control plane internal error");
    }
}

/// The platform API error shape (`/v1/...`).
pub struct PlatformError(pub ControlError);

impl<E: Into<ControlError>> From<E> for PlatformError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PlatformError {
    fn into_response(self) -> Response {
        let e = self.0;
        log_internal(&e);
        let status = e.status();
        let body = json!({
            "trace": request_id(),
            "errors": [{ "code": e.code(), "message": e.message() }],
            "status_code": status.as_u16(),
        });
        (status, Json(body)).into_response()
    }
}

/// The IAM token endpoint error shape (`/identity/token`, `/oidc/token`).
pub struct TokenError(pub ControlError);

impl<E: Into<ControlError>> From<E> for TokenError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let e = self.0;
        log_internal(&e);
        let body = json!({
            "errorCode": e.code(),
            "errorMessage": e.message(),
            "context": { "requestId": request_id(), "requestType": "incoming.Identity_Token" },
        });
        (e.status(), Json(body)).into_response()
    }
}
