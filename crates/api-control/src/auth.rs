//! Who calls the control plane (a bearer token), and whether they may.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use coffer_iam::{Action, Principal, Resource};

use crate::ControlState;
use crate::error::{ControlError, PlatformError};

/// A caller authenticated by an IAM access token.
pub struct Authenticated(pub Principal);

impl Authenticated {
    pub fn account(&self) -> &str {
        self.0.account()
    }

    pub fn iam_id(&self) -> &str {
        self.0.iam_id().unwrap_or_default()
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<ControlState> for Authenticated {
    type Rejection = PlatformError;

    async fn from_request_parts(parts: &mut Parts, state: &ControlState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| ControlError::Unauthenticated("a bearer token is required".into()))?;
        let principal = state
            .iam
            .principal_for_token(token)
            .await
            .map_err(|e| ControlError::Unauthenticated(e.to_string()))?;
        Ok(Self(principal))
    }
}

/// Refuses unless the decision function allows `action` on `resource`.
pub async fn require(
    state: &ControlState,
    who: &Authenticated,
    action: Action,
    resource: &Resource,
) -> Result<(), ControlError> {
    let decision = state
        .iam
        .authorize(&who.0, action, resource)
        .await
        .map_err(ControlError::from)?;
    match decision {
        coffer_iam::Decision::Allow => Ok(()),
        coffer_iam::Decision::Deny(reason) => Err(ControlError::Forbidden(format!(
            "{} is not allowed: {reason}",
            action.name()
        ))),
    }
}

/// An account-level resource of an IAM service.
pub fn account_service(account: &str, service: &str) -> Resource {
    Resource {
        account: account.to_owned(),
        service: Some(service.to_owned()),
        ..Resource::default()
    }
}
