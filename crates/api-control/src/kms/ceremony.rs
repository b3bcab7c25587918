//! coffer's instance management and custodian ceremony (`/kms/v1/...`), as the `coffer kms`
//! commands call them. Parts travel in request bodies to be combined in memory; the server
//! never writes them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use coffer_iam::ServiceKind;
use coffer_kms::parts::part_from_hex;
use coffer_kms::{InstanceInfo, KmsError};
use serde_json::{Value, json};

use super::wire::{KpError, body, str_field};
use crate::ControlState;
use crate::auth::Authenticated;

type R<T> = Result<T, KpError>;

fn info_json(i: &InstanceInfo) -> Value {
    json!({
        "id": i.instance.id,
        "name": i.instance.name,
        "crn": i.instance.crn().to_string(),
        "service": i.instance.service.name(),
        "region": i.instance.region,
        "provider": i.provider,
        "initialized": i.initialized,
        "sealed": i.sealed,
        "parts": i.parts,
        "parts_loaded": i.parts_loaded,
        "verification_pattern": i.verification_pattern,
        "rotation_pending": i.rotation_pending,
    })
}

pub async fn create(
    State(s): State<ControlState>,
    who: Authenticated,
    raw: Bytes,
) -> R<(StatusCode, Json<Value>)> {
    let v = body(&raw)?;
    let name = str_field(&v, "name").unwrap_or("key management");
    let service = match str_field(&v, "service").unwrap_or("hs-crypto") {
        "hs-crypto" => ServiceKind::HsCrypto,
        "kms" => ServiceKind::Kms,
        other => {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "service",
                format!("unknown service {other:?}"),
            )
            .into());
        }
    };
    let region = str_field(&v, "region").unwrap_or(&s.region).to_owned();
    let instance = s.kms.create_instance(&who.0, service, &region, name).await?;
    let info = s.kms.instance_info(&who.0, &instance.id).await?;
    Ok((StatusCode::CREATED, Json(info_json(&info))))
}

pub async fn list(State(s): State<ControlState>, who: Authenticated) -> R<Json<Value>> {
    let all = s.kms.list_instances(&who.0).await?;
    Ok(Json(
        json!({ "instances": all.iter().map(info_json).collect::<Vec<_>>() }),
    ))
}

pub async fn get(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<Json<Value>> {
    Ok(Json(info_json(&s.kms.instance_info(&who.0, &id).await?)))
}

pub async fn delete(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> R<StatusCode> {
    s.kms.delete_instance(&who.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"provider": "software", "parts": N, "verification_pattern": "..."}` or
/// `{"provider": "pkcs11"}`.
pub async fn init(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
    raw: Bytes,
) -> R<Json<Value>> {
    let v = body(&raw)?;
    match str_field(&v, "provider").unwrap_or("software") {
        "software" => {
            let parts = v
                .get("parts")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0);
            let vp = str_field(&v, "verification_pattern").ok_or_else(|| {
                KmsError::field(
                    "BAD_BODY_ERR",
                    "verification_pattern",
                    "the master key's verification pattern is required",
                )
            })?;
            s.kms.begin_software_init(&who.0, &id, parts, vp).await?;
        }
        "pkcs11" => {
            s.kms.init_pkcs11(&who.0, &id).await?;
        }
        other => {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "provider",
                format!("unknown provider {other:?}"),
            )
            .into());
        }
    }
    Ok(Json(info_json(&s.kms.instance_info(&who.0, &id).await?)))
}

/// `{"part": "<64 hex>", "new": false}`: one custodian part, of the current master key or of
/// the new one during a rotation.
pub async fn load_part(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
    raw: Bytes,
) -> R<Json<Value>> {
    let v = body(&raw)?;
    let part = part_from_hex(str_field(&v, "part").unwrap_or_default())?;
    let outcome = if v.get("new").and_then(Value::as_bool).unwrap_or(false) {
        s.kms.load_new_part(&who.0, &id, part).await?
    } else {
        s.kms.load_part(&who.0, &id, part).await?
    };
    Ok(Json(json!({
        "loaded": outcome.loaded,
        "needed": outcome.needed,
        "complete": outcome.complete,
        "verification_pattern": outcome.verification_pattern,
    })))
}

pub async fn rotate_master(
    State(s): State<ControlState>,
    who: Authenticated,
    Path(id): Path<String>,
    raw: Bytes,
) -> R<Json<Value>> {
    let v = body(&raw)?;
    let parts = v
        .get("parts")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let vp = str_field(&v, "verification_pattern").ok_or_else(|| {
        KmsError::field(
            "BAD_BODY_ERR",
            "verification_pattern",
            "the new master key's verification pattern is required",
        )
    })?;
    s.kms.begin_master_rotation(&who.0, &id, parts, vp).await?;
    Ok(Json(info_json(&s.kms.instance_info(&who.0, &id).await?)))
}
