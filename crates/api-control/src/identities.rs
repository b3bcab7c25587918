//! Users, service IDs, API keys and HMAC credentials (`/v1/...`). Account administrators
//! manage them all; anyone may manage their own API keys.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use coffer_iam::{Action, ApiKey, HmacCredential, Iam, ServiceId, User};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ControlState;
use crate::auth::{Authenticated, account_service, require};
use crate::error::{ControlError, PlatformError};

type R<T> = Result<T, PlatformError>;

fn timestamp(unix: i64) -> String {
    crate::time_rfc3339(unix)
}

/// Parses a JSON body, answering a 400 with the parser's message when it is not valid.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::bad("invalid_body", format!("invalid JSON body: {e}")))
}

async fn admin(state: &ControlState, who: &Authenticated) -> Result<(), ControlError> {
    require(
        state,
        who,
        Action::IamManageIdentities,
        &account_service(who.account(), "iam-identity"),
    )
    .await
}

fn user_json(u: &User) -> Value {
    json!({ "iam_id": u.iam_id, "name": u.name, "account_id": u.account, "created_at": timestamp(u.created) })
}

fn service_id_json(s: &ServiceId) -> Value {
    json!({
        "id": s.id, "iam_id": s.iam_id, "name": s.name, "description": s.description,
        "account_id": s.account, "created_at": timestamp(s.created),
    })
}

fn apikey_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id, "name": k.name, "description": k.description, "iam_id": k.iam_id,
        "account_id": k.account, "disabled": k.disabled, "created_at": timestamp(k.created),
        "created_by": k.created_by,
    })
}

fn hmac_json(c: &HmacCredential) -> Value {
    json!({
        "access_key_id": c.access_key_id, "iam_id": c.iam_id, "instance_id": c.instance_id,
        "account_id": c.account, "created_at": timestamp(c.created),
    })
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

pub async fn create_user(
    State(s): State<ControlState>,
    who: Authenticated,
    body: Bytes,
) -> R<(StatusCode, Json<Value>)> {
    admin(&s, &who).await?;
    let req: NewUser = json_body(&body)?;
    let user = s.iam.create_user(who.account(), &req.name).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

pub async fn list_users(State(s): State<ControlState>, who: Authenticated) -> R<Json<Value>> {
    admin(&s, &who).await?;
    let users = s.iam.list_users(who.account()).await?;
    Ok(Json(
        json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() }),
    ))
}

pub async fn delete_user(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(iam_id): Path<String>,
) -> R<StatusCode> {
    admin(&s, &who).await?;
    in_account(&s.iam, &iam_id, who.account()).await?;
    s.iam.delete_user(&iam_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct NewServiceId {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

pub async fn create_service_id(
    State(s): State<ControlState>,
    who: Authenticated,
    body: Bytes,
) -> R<(StatusCode, Json<Value>)> {
    admin(&s, &who).await?;
    let req: NewServiceId = json_body(&body)?;
    let sid = s
        .iam
        .create_service_id(who.account(), &req.name, req.description)
        .await?;
    Ok((StatusCode::CREATED, Json(service_id_json(&sid))))
}

pub async fn list_service_ids(State(s): State<ControlState>, who: Authenticated) -> R<Json<Value>> {
    admin(&s, &who).await?;
    let all = s.iam.list_service_ids(who.account()).await?;
    Ok(Json(
        json!({ "serviceids": all.iter().map(service_id_json).collect::<Vec<_>>() }),
    ))
}

pub async fn delete_service_id(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<StatusCode> {
    admin(&s, &who).await?;
    let sid = s.iam.service_id(&id).await?;
    if sid.account != who.account() {
        return Err(ControlError::NotFound("no such service ID".into()).into());
    }
    s.iam.delete_service_id(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn in_account(iam: &Iam, iam_id: &str, account: &str) -> Result<(), ControlError> {
    match iam.identity_account(iam_id).await {
        Ok(a) if a == account => Ok(()),
        Ok(_) | Err(coffer_iam::Error::NotFound) => {
            Err(ControlError::NotFound(format!("no identity {iam_id:?}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Administrators manage every key; others only their own.
async fn own_or_admin(s: &ControlState, who: &Authenticated, iam_id: &str) -> Result<(), ControlError> {
    if who.iam_id() == iam_id {
        Ok(())
    } else {
        admin(s, who).await
    }
}

#[derive(Deserialize)]
struct NewApiKey {
    name: String,
    iam_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

pub async fn create_apikey(
    State(s): State<ControlState>,
    who: Authenticated,
    body: Bytes,
) -> R<(StatusCode, Json<Value>)> {
    let req: NewApiKey = json_body(&body)?;
    let iam_id = req.iam_id.unwrap_or_else(|| who.iam_id().to_owned());
    own_or_admin(&s, &who, &iam_id).await?;
    in_account(&s.iam, &iam_id, who.account()).await?;
    let created = s
        .iam
        .create_apikey(&iam_id, &req.name, req.description, who.iam_id(), None)
        .await?;
    let mut out = apikey_json(&created.key);
    out["apikey"] = Value::String(created.secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Deserialize)]
pub struct KeyQuery {
    iam_id: Option<String>,
}

pub async fn list_apikeys(
    State(s): State<ControlState>,
    who: Authenticated,
    Query(q): Query<KeyQuery>,
) -> R<Json<Value>> {
    let filter = match q.iam_id {
        Some(id) => {
            own_or_admin(&s, &who, &id).await?;
            Some(id)
        }
        None if admin(&s, &who).await.is_ok() => None,
        None => Some(who.iam_id().to_owned()),
    };
    let keys = s.iam.list_apikeys(who.account(), filter.as_deref()).await?;
    Ok(Json(
        json!({ "apikeys": keys.iter().map(apikey_json).collect::<Vec<_>>() }),
    ))
}

async fn owned_key(s: &ControlState, who: &Authenticated, id: &str) -> Result<ApiKey, ControlError> {
    let key = s.iam.apikey(id).await?;
    if key.account != who.account() {
        return Err(ControlError::NotFound("no such API key".into()));
    }
    own_or_admin(s, who, &key.iam_id).await?;
    Ok(key)
}

pub async fn delete_apikey(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<StatusCode> {
    owned_key(&s, &who, &id).await?;
    s.iam.delete_apikey(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn disable_apikey(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<StatusCode> {
    owned_key(&s, &who, &id).await?;
    s.iam.set_apikey_disabled(&id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable_apikey(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<StatusCode> {
    owned_key(&s, &who, &id).await?;
    s.iam.set_apikey_disabled(&id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct NewHmac {
    iam_id: String,
    instance_id: String,
}

pub async fn create_hmac(
    State(s): State<ControlState>,
    who: Authenticated,
    body: Bytes,
) -> R<(StatusCode, Json<Value>)> {
    admin(&s, &who).await?;
    let req: NewHmac = json_body(&body)?;
    in_account(&s.iam, &req.iam_id, who.account()).await?;
    let instance = s
        .iam
        .instance_by_ref(&req.instance_id)
        .await
        .map_err(|e| match e {
            coffer_iam::Error::NotFound => {
                ControlError::bad("invalid_body", format!("no instance {:?}", req.instance_id))
            }
            e => e.into(),
        })?;
    if instance.account != who.account() {
        return Err(ControlError::bad("invalid_body", format!("no instance {:?}", req.instance_id)).into());
    }
    let cred = s.iam.create_hmac(&req.iam_id, &instance.id, None).await?;
    let mut out = hmac_json(&cred);
    out["secret_access_key"] = Value::String(cred.secret_access_key.expose().to_owned());
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list_hmac(State(s): State<ControlState>, who: Authenticated) -> R<Json<Value>> {
    admin(&s, &who).await?;
    let all = s.iam.list_hmac(who.account()).await?;
    Ok(Json(
        json!({ "hmac_keys": all.iter().map(hmac_json).collect::<Vec<_>>() }),
    ))
}

pub async fn delete_hmac(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(ak): Path<String>,
) -> R<StatusCode> {
    admin(&s, &who).await?;
    let cred = s.iam.hmac(&ak).await?;
    if cred.account != who.account() {
        return Err(ControlError::NotFound("no such HMAC credential".into()).into());
    }
    s.iam.delete_hmac(&ak).await?;
    Ok(StatusCode::NO_CONTENT)
}
