//! Instance-level Key Protect APIs: instance policies, import tokens, key rings,
//! registrations, event acknowledgements, KMIP adapters.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coffer_kms::{INSTANCE_POLICY_TYPES, KmsError, RegistrationInput};
use serde_json::{Value, json};

use super::wire::{
    self, KEY_RING, KpError, POLICY, REGISTRATION, body, envelope, resource, respond, str_field,
};
use super::{Kp, json as render};
use crate::ControlState;

type R = Result<Response, KpError>;

pub async fn get_policies(
    State(s): State<ControlState>,
    kp: Kp,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let all = s.kms.instance_policies(&kp.principal, &kp.instance).await?;
    let wanted = q.get("policy");
    let list = all
        .iter()
        .filter(|p| wanted.is_none_or(|w| *w == p.policy_type))
        .map(render::instance_policy)
        .collect();
    Ok(respond(StatusCode::OK, wire::JSON, &envelope(POLICY, list, None)))
}

pub async fn put_policy(
    State(s): State<ControlState>,
    kp: Kp,
    Query(q): Query<HashMap<String, String>>,
    raw: Bytes,
) -> R {
    let v = resource(&body(&raw)?)?;
    let kind = str_field(&v, "policy_type")
        .or(q.get("policy").map(String::as_str))
        .unwrap_or_default()
        .to_owned();
    let Some(kind) = INSTANCE_POLICY_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&kind))
    else {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "policy_type",
            format!("unknown instance policy {kind:?}"),
        )
        .into());
    };
    if q.get("policy").is_some_and(|p| !p.eq_ignore_ascii_case(kind)) {
        return Err(KmsError::invalid(
            "BODY_QUERY_PARAM_MISMATCH_ERR",
            "the policy query parameter and the body disagree",
        )
        .into());
    }
    let data = v.get("policy_data").cloned().unwrap_or(Value::Null);
    let enabled = data.get("enabled").and_then(Value::as_bool).unwrap_or(false);
    let attributes = data.get("attributes").cloned().unwrap_or(Value::Null);
    s.kms
        .set_instance_policy(&kp.principal, &kp.instance, kind, enabled, attributes)
        .await?;
    Ok(wire::no_content())
}

pub async fn allowed_ip_port(State(s): State<ControlState>, kp: Kp) -> R {
    s.kms.instance_policies(&kp.principal, &kp.instance).await?;
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(
            "application/vnd.ibm.kms.allowed_ip_metadata+json",
            Vec::new(),
            None,
        ),
    ))
}

fn token_json(t: &coffer_kms::ImportToken, with_payload: bool) -> Value {
    let mut v = json!({
        "creationDate": wire::rfc3339(t.created),
        "expirationDate": wire::rfc3339(t.expires),
        "expiration": t.expires - t.created,
        "maxAllowedRetrievals": t.max_retrievals,
        "remainingRetrievals": t.remaining,
    });
    if with_payload {
        v["payload"] = json!(B64.encode(&t.public_pem));
        v["nonce"] = json!(t.nonce);
    }
    v
}

pub async fn create_import_token(State(s): State<ControlState>, kp: Kp, raw: Bytes) -> R {
    let v = body(&raw)?;
    let expiration = v.get("expiration").and_then(Value::as_i64);
    let max = v
        .get("maxallowedretrievals")
        .and_then(Value::as_u64)
        .map(|m| u32::try_from(m).unwrap_or(u32::MAX));
    let token = s
        .kms
        .create_import_token(&kp.principal, &kp.instance, expiration, max)
        .await?;
    Ok(respond(StatusCode::OK, wire::JSON, &token_json(&token, false)))
}

pub async fn get_import_token(State(s): State<ControlState>, kp: Kp) -> R {
    let token = s.kms.retrieve_import_token(&kp.principal, &kp.instance).await?;
    Ok(respond(StatusCode::OK, wire::JSON, &token_json(&token, true)))
}

pub async fn list_key_rings(
    State(s): State<ControlState>,
    kp: Kp,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let rings = s.kms.list_key_rings(&kp.principal, &kp.instance).await?;
    let total = rings.len();
    let list = rings.iter().map(render::key_ring).collect();
    let with_total = q.get("totalCount").is_some_and(|t| t == "true");
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY_RING, list, with_total.then_some(total)),
    ))
}

pub async fn create_key_ring(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>) -> R {
    let ring = s.kms.create_key_ring(&kp.principal, &kp.instance, &id).await?;
    Ok(respond(
        StatusCode::CREATED,
        wire::JSON,
        &envelope(KEY_RING, vec![render::key_ring(&ring)], None),
    ))
}

pub async fn delete_key_ring(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let force = q.get("force").is_some_and(|f| f == "true");
    s.kms
        .delete_key_ring(&kp.principal, &kp.instance, &id, force)
        .await?;
    Ok(wire::no_content())
}

async fn registrations(s: &ControlState, kp: &Kp, key: Option<&str>, q: &HashMap<String, String>) -> R {
    let query = q.get("urlEncodedResourceCRNQuery").map(|c| {
        c.replace("%3A", ":")
            .replace("%3a", ":")
            .replace("%2F", "/")
            .replace("%2f", "/")
    });
    let prevent = q.get("preventKeyDeletion").map(|p| p == "true");
    let list = s
        .kms
        .list_registrations(&kp.principal, &kp.instance, key, query.as_deref(), prevent)
        .await?;
    let total = list.len();
    let offset = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(200);
    let mut out = Vec::new();
    for r in list.iter().skip(offset).take(limit) {
        let key = s
            .kms
            .key_metadata(&kp.principal, &kp.instance, &r.key_id)
            .await
            .ok();
        out.push(render::registration(r, key.as_ref()));
    }
    let with_total = q.get("totalCount").is_some_and(|t| t == "true");
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(REGISTRATION, out, with_total.then_some(total)),
    ))
}

pub async fn key_registrations(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    registrations(&s, &kp, Some(&id), &q).await
}

pub async fn all_registrations(
    State(s): State<ControlState>,
    kp: Kp,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    registrations(&s, &kp, None, &q).await
}

fn registration_input(raw: &Bytes) -> Result<RegistrationInput, KmsError> {
    let v = body(raw)?;
    let v = if v.is_null() { json!({}) } else { resource(&v)? };
    Ok(RegistrationInput {
        prevent_key_deletion: v.get("preventkeydeletion").and_then(Value::as_bool),
        description: str_field(&v, "description").map(str::to_owned),
        metadata: str_field(&v, "registrationmetadata").map(str::to_owned),
        key_version: str_field(&v, "keyversionid").map(str::to_owned),
    })
}

async fn write_registration(
    s: &ControlState,
    kp: &Kp,
    id: &str,
    crn: &str,
    raw: &Bytes,
    replace: bool,
    status: StatusCode,
) -> R {
    let input = registration_input(raw)?;
    let reg = s
        .kms
        .put_registration(&kp.principal, &kp.instance, id, crn, input, replace)
        .await?;
    Ok(respond(
        status,
        wire::JSON,
        &envelope(REGISTRATION, vec![render::registration(&reg, None)], None),
    ))
}

pub async fn create_registration(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, crn)): Path<(String, String)>,
    raw: Bytes,
) -> R {
    write_registration(&s, &kp, &id, &crn, &raw, false, StatusCode::CREATED).await
}

pub async fn replace_registration(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, crn)): Path<(String, String)>,
    raw: Bytes,
) -> R {
    write_registration(&s, &kp, &id, &crn, &raw, true, StatusCode::OK).await
}

pub async fn update_registration(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, crn)): Path<(String, String)>,
    raw: Bytes,
) -> R {
    let input = registration_input(&raw)?;
    let reg = s
        .kms
        .patch_registration(&kp.principal, &kp.instance, &id, &crn, input)
        .await?;
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(REGISTRATION, vec![render::registration(&reg, None)], None),
    ))
}

pub async fn delete_registration(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, crn)): Path<(String, String)>,
) -> R {
    s.kms
        .delete_registration(&kp.principal, &kp.instance, &id, &crn)
        .await?;
    Ok(wire::no_content())
}

pub async fn event_ack(State(s): State<ControlState>, kp: Kp, raw: Bytes) -> R {
    let v = resource(&body(&raw)?)?;
    let event = str_field(&v, "eventid")
        .ok_or_else(|| KmsError::field("BAD_BODY_ERR", "eventId", "eventId is required"))?;
    let state = str_field(&v, "adopterkeystate")
        .ok_or_else(|| KmsError::field("BAD_BODY_ERR", "adopterKeyState", "adopterKeyState is required"))?;
    let rewrapped = v
        .get("keystatedata")
        .and_then(|d| str_field(d, "rewrappedkeyversion"))
        .map(str::to_owned);
    s.kms
        .event_ack(&kp.principal, &kp.instance, event, state, rewrapped)
        .await?;
    Ok(wire::no_content())
}

pub async fn kmip_adapters(kp: Kp) -> R {
    let _ = kp;
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope("application/vnd.ibm.kms.kmip_adapter+json", Vec::new(), None),
    ))
}
