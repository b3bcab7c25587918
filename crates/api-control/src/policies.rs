//! Access and authorization policies (`/v1/policies`), as IamPolicyManagementV1 calls them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use coffer_iam::{Action, Policy, PolicyInput, PolicyType, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ControlState;
use crate::auth::{Authenticated, require};
use crate::error::{ControlError, PlatformError};
use crate::identities::json_body;

type R<T> = Result<T, PlatformError>;

/// The resource a policy is about: managing it needs Administrator there.
fn target(p_resources: &[coffer_iam::Attributes], account: &str) -> Resource {
    let r = p_resources.first();
    let get = |n: &str| r.and_then(|a| a.get(n)).map(str::to_owned);
    Resource {
        account: account.to_owned(),
        service: get("serviceName"),
        instance: get("serviceInstance"),
        resource_type: get("resourceType"),
        resource: get("resource"),
    }
}

pub async fn create(
    State(s): State<ControlState>,
    who: Authenticated,
    body: Bytes,
) -> R<(StatusCode, Json<Policy>)> {
    let input: PolicyInput = json_body(&body)?;
    require(
        &s,
        &who,
        Action::IamManagePolicies,
        &target(&input.resources, who.account()),
    )
    .await?;
    let policy = s.iam.create_policy(input, who.account(), who.iam_id()).await?;
    Ok((StatusCode::CREATED, Json(absolute(&s, policy))))
}

#[derive(Deserialize)]
pub struct ListQuery {
    account_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    iam_id: Option<String>,
}

pub async fn list(
    State(s): State<ControlState>,
    who: Authenticated,
    Query(q): Query<ListQuery>,
) -> R<Json<Value>> {
    let account = q.account_id.unwrap_or_else(|| who.account().to_owned());
    if account != who.account() {
        return Err(ControlError::Forbidden("policies of another account".into()).into());
    }
    // Whoever may not read the account's policies sees their own (as IBM lists only what the
    // caller may read).
    let account_wide = Resource {
        account: account.clone(),
        ..Resource::default()
    };
    let iam_id = match require(&s, &who, Action::IamViewPolicies, &account_wide).await {
        Ok(()) => q.iam_id,
        Err(ControlError::Forbidden(_)) => match q.iam_id {
            Some(id) if id != who.iam_id() => return Ok(Json(json!({ "policies": [] }))),
            _ => Some(who.iam_id().to_owned()),
        },
        Err(e) => return Err(e.into()),
    };
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some("access") => Some(PolicyType::Access),
        Some("authorization") => Some(PolicyType::Authorization),
        Some(other) => {
            return Err(ControlError::bad("invalid_query", format!("unknown policy type {other:?}")).into());
        }
    };
    let policies: Vec<Policy> = s
        .iam
        .list_policies(&account, kind, iam_id.as_deref())
        .await?
        .into_iter()
        .map(|p| absolute(&s, p))
        .collect();
    Ok(Json(json!({ "policies": policies })))
}

/// The policy with an absolute `href` on this control plane.
fn absolute(s: &ControlState, mut p: Policy) -> Policy {
    if p.href.starts_with('/') {
        p.href = format!("{}{}", s.public_url, p.href);
    }
    p
}

async fn visible(s: &ControlState, who: &Authenticated, id: &str) -> Result<Policy, ControlError> {
    let p = s.iam.policy(id).await?;
    if p.resource().and_then(|r| r.get("accountId")) != Some(who.account()) {
        return Err(ControlError::NotFound(format!("no policy {id:?}")));
    }
    Ok(p)
}

pub async fn get(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<Json<Policy>> {
    let p = visible(&s, &who, &id).await?;
    require(
        &s,
        &who,
        Action::IamViewPolicies,
        &Resource {
            account: who.account().to_owned(),
            ..Resource::default()
        },
    )
    .await?;
    Ok(Json(absolute(&s, p)))
}

pub async fn delete(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<StatusCode> {
    let p = visible(&s, &who, &id).await?;
    require(
        &s,
        &who,
        Action::IamManagePolicies,
        &target(&p.resources, who.account()),
    )
    .await?;
    s.iam.delete_policy(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
