//! Keys: create, list, count, get, metadata, patch, delete, purge, restore, versions,
//! policies, aliases, events.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coffer_kms::{DeleteOptions, KeyListQuery, KeyPolicy, KeyState, KmsError, NewKey, RotationPolicy};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::wire::{
    self, KEY, KpError, POLICY, base64_field, body, envelope, prefer_minimal, resource, respond, str_field,
};
use super::{Kp, json as render};
use crate::ControlState;

type R = Result<Response, KpError>;

/// The fields of a key to create or import, from a (lowercased) resource.
pub(super) fn new_key(v: &Value, key_ring: Option<String>) -> Result<NewKey, KmsError> {
    let strings = |name: &str| -> Vec<String> {
        v.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let expiration = match str_field(v, "expirationdate") {
        Some(s) => Some(wire::parse_rfc3339(s, "expirationDate")?),
        None => None,
    };
    Ok(NewKey {
        name: str_field(v, "name").unwrap_or_default().to_owned(),
        description: str_field(v, "description").map(str::to_owned),
        // Key Protect's default is a standard key.
        extractable: v.get("extractable").and_then(Value::as_bool).unwrap_or(true),
        payload: base64_field(v, "payload")?.map(Zeroizing::new),
        encrypted_nonce: base64_field(v, "encryptedNonce")?,
        iv: base64_field(v, "iv")?,
        encryption_algorithm: str_field(v, "encryptionalgorithm").map(str::to_owned),
        aliases: strings("aliases"),
        tags: strings("tags"),
        expiration,
        key_ring,
        rotation: None,
        dual_auth: None,
    })
}

fn rotation_of(v: &Value) -> Result<Option<RotationPolicy>, KmsError> {
    let Some(r) = v.get("rotation") else {
        return Ok(None);
    };
    let enabled = r.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    let months = r.get("interval_month").and_then(Value::as_u64).unwrap_or(1);
    Ok(Some(RotationPolicy {
        enabled,
        interval_month: u32::try_from(months).unwrap_or(0),
    }))
}

async fn created(s: &ControlState, kp: &Kp, headers: &HeaderMap, new: NewKey) -> R {
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s.kms.create_key(&kp.principal, &kp.instance, new).await?;
    let mut key = render::key(&record, &instance, s.kms.timing(), None);
    if prefer_minimal(headers) {
        key = json!({ "type": KEY, "id": record.id, "crn": key["crn"] });
    }
    Ok(respond(StatusCode::CREATED, KEY, &envelope(KEY, vec![key], None)))
}

pub async fn create(State(s): State<ControlState>, kp: Kp, headers: HeaderMap, raw: Bytes) -> R {
    let v = resource(&body(&raw)?)?;
    let new = new_key(&v, kp.key_ring.clone())?;
    created(&s, &kp, &headers, new).await
}

pub async fn create_with_policies(
    State(s): State<ControlState>,
    kp: Kp,
    headers: HeaderMap,
    raw: Bytes,
) -> R {
    let v = resource(&body(&raw)?)?;
    let mut new = new_key(&v, kp.key_ring.clone())?;
    new.rotation = rotation_of(&v)?;
    new.dual_auth = v
        .get("dualauthdelete")
        .and_then(|d| d.get("enabled"))
        .and_then(Value::as_bool);
    created(&s, &kp, &headers, new).await
}

fn list_query(
    q: &HashMap<String, String>,
    key_ring: Option<String>,
) -> Result<(KeyListQuery, bool), KmsError> {
    let num = |name: &str, default: usize| -> Result<usize, KmsError> {
        match q.get(name).map(String::as_str).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|_| KmsError::invalid("INVALID_QUERY_PARAM_ERR", format!("{name} is a number"))),
        }
    };
    let limit = num("limit", 200)?;
    if !(1..=5000).contains(&limit) {
        return Err(KmsError::invalid("INVALID_QUERY_PARAM_ERR", "limit is 1 to 5000"));
    }
    // The Python SDK always sends `state=`; empty means not given.
    let states = match q.get("state").map(String::as_str).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.split(',')
                .map(|x| {
                    x.trim()
                        .parse::<u8>()
                        .ok()
                        .and_then(|n| KeyState::try_from(n).ok())
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    KmsError::invalid("INVALID_QUERY_PARAM_ERR", "state is a list of 0, 1, 2, 3 and 5")
                })?,
        ),
    };
    let extractable = match q.get("extractable").map(String::as_str).filter(|s| !s.is_empty()) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(KmsError::invalid(
                "INVALID_QUERY_PARAM_ERR",
                "extractable is true or false",
            ));
        }
    };
    let total = q.get("totalCount").is_some_and(|v| v == "true");
    let search = q.get("search").filter(|s| !s.is_empty()).cloned();
    Ok((
        KeyListQuery {
            limit,
            offset: num("offset", 0)?,
            states,
            extractable,
            search,
            key_ring,
        },
        total,
    ))
}

pub async fn list(State(s): State<ControlState>, kp: Kp, Query(q): Query<HashMap<String, String>>) -> R {
    let (query, with_total) = list_query(&q, kp.key_ring.clone())?;
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let page = s.kms.list_keys(&kp.principal, &kp.instance, &query).await?;
    let keys = page
        .keys
        .iter()
        .map(|k| render::key(k, &instance, s.kms.timing(), None))
        .collect();
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY, keys, with_total.then_some(page.total)),
    ))
}

pub async fn total(State(s): State<ControlState>, kp: Kp, Query(q): Query<HashMap<String, String>>) -> R {
    let (mut query, _) = list_query(&q, kp.key_ring.clone())?;
    query.limit = usize::MAX;
    let page = s.kms.list_keys(&kp.principal, &kp.instance, &query).await?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert("key-total", HeaderValue::from(page.total));
    Ok(resp)
}

pub async fn get(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>) -> R {
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let (record, payload) = s.kms.get_key(&kp.principal, &kp.instance, &id).await?;
    let key = render::key(
        &record,
        &instance,
        s.kms.timing(),
        payload.as_deref().map(Vec::as_slice),
    );
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY, vec![key], None),
    ))
}

pub async fn metadata(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>) -> R {
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s.kms.key_metadata(&kp.principal, &kp.instance, &id).await?;
    let key = render::key(&record, &instance, s.kms.timing(), None);
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY, vec![key], None),
    ))
}

pub async fn patch(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>, raw: Bytes) -> R {
    let v = resource(&body(&raw)?)?;
    let ring = str_field(&v, "keyringid")
        .ok_or_else(|| KmsError::field("BAD_BODY_ERR", "keyRingID", "keyRingID is required"))?;
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s
        .kms
        .patch_key_ring(&kp.principal, &kp.instance, &id, ring)
        .await?;
    let key = render::key(&record, &instance, s.kms.timing(), None);
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY, vec![key], None),
    ))
}

pub async fn delete(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let force = q.get("force").is_some_and(|f| f == "true");
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s
        .kms
        .delete_key(&kp.principal, &kp.instance, &id, DeleteOptions { force })
        .await?;
    if prefer_minimal(&headers) {
        return Ok(wire::no_content());
    }
    let key = render::key(&record, &instance, s.kms.timing(), None);
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY, vec![key], None),
    ))
}

pub async fn purge(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>, headers: HeaderMap) -> R {
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s.kms.purge_key(&kp.principal, &kp.instance, &id).await?;
    if prefer_minimal(&headers) {
        return Ok(wire::no_content());
    }
    let key = render::key(&record, &instance, s.kms.timing(), None);
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(KEY, vec![key], None),
    ))
}

pub async fn restore(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>, raw: Bytes) -> R {
    let v = body(&raw)?;
    let payload = if v.is_null() {
        None
    } else {
        Some(new_key(&resource(&v)?, None)?).filter(|k| k.payload.is_some())
    };
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s
        .kms
        .restore_key(&kp.principal, &kp.instance, &id, payload)
        .await?;
    let key = render::key(&record, &instance, s.kms.timing(), None);
    Ok(respond(StatusCode::CREATED, KEY, &envelope(KEY, vec![key], None)))
}

pub async fn versions(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let versions = s.kms.key_versions(&kp.principal, &kp.instance, &id).await?;
    let total = versions.len();
    let offset = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(200);
    let list = versions
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| json!({ "id": v.id, "creationDate": wire::rfc3339(v.created) }))
        .collect();
    let with_total = q.get("totalCount").is_some_and(|t| t == "true");
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope(
            "application/vnd.ibm.kms.key_version+json",
            list,
            with_total.then_some(total),
        ),
    ))
}

/// The key's lifecycle events and their acknowledgements (coffer's view of pending events).
pub async fn events(State(s): State<ControlState>, kp: Kp, Path(id): Path<String>) -> R {
    let events = s.kms.key_events(&kp.principal, &kp.instance, &id).await?;
    let list = events
        .into_iter()
        .map(|(e, ack)| {
            json!({
                "eventId": e.id, "eventType": e.kind.name(), "timestamp": wire::rfc3339(e.timestamp),
                "keyVersion": e.key_version, "resources": e.resources,
                "acknowledged": ack.is_some(),
                "adopterKeyState": ack.as_ref().map(|a| a.adopter_key_state.clone()),
            })
        })
        .collect();
    Ok(respond(
        StatusCode::OK,
        wire::JSON,
        &envelope("application/vnd.ibm.kms.event+json", list, None),
    ))
}

pub async fn get_policies(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> R {
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s.kms.key_policies(&kp.principal, &kp.instance, &id).await?;
    let list = render::key_policies(&record, &instance, q.get("policy").map(String::as_str));
    Ok(respond(StatusCode::OK, wire::JSON, &envelope(POLICY, list, None)))
}

pub async fn put_policy(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    raw: Bytes,
) -> R {
    let v = resource(&body(&raw)?)?;
    let wanted = q.get("policy").map(String::as_str);
    let policy = if let Some(r) = v
        .get("rotation")
        .filter(|_| wanted.is_none_or(|w| w == "rotation"))
    {
        let months = r.get("interval_month").and_then(Value::as_i64).unwrap_or(0);
        KeyPolicy::Rotation(RotationPolicy {
            enabled: r.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            interval_month: u32::try_from(months).unwrap_or(0),
        })
    } else if let Some(d) = v
        .get("dualauthdelete")
        .filter(|_| wanted.is_none_or(|w| w == "dualAuthDelete"))
    {
        KeyPolicy::DualAuthDelete {
            enabled: d.get("enabled").and_then(Value::as_bool).unwrap_or(false),
        }
    } else {
        return Err(KmsError::invalid(
            "BAD_BODY_ERR",
            "the policy resource needs rotation or dualAuthDelete",
        )
        .into());
    };
    let instance = s.kms.kms_instance(&kp.instance).await?;
    let record = s
        .kms
        .set_key_policy(&kp.principal, &kp.instance, &id, policy.clone())
        .await?;
    let only = match policy {
        KeyPolicy::Rotation(_) => "rotation",
        KeyPolicy::DualAuthDelete { .. } => "dualAuthDelete",
    };
    let list = render::key_policies(&record, &instance, Some(only));
    Ok(respond(StatusCode::OK, wire::JSON, &envelope(POLICY, list, None)))
}

pub async fn create_alias(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, alias)): Path<(String, String)>,
) -> R {
    let record = s
        .kms
        .create_alias(&kp.principal, &kp.instance, &id, &alias)
        .await?;
    let item = json!({ "keyId": record.id, "alias": alias, "createdBy": record.created_by, "creationDate": wire::rfc3339(record.updated) });
    Ok(respond(
        StatusCode::CREATED,
        wire::JSON,
        &envelope(wire::ALIAS, vec![item], None),
    ))
}

pub async fn delete_alias(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, alias)): Path<(String, String)>,
) -> R {
    s.kms
        .delete_alias(&kp.principal, &kp.instance, &id, &alias)
        .await?;
    Ok(wire::no_content())
}
