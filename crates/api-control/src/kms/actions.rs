//! Key actions: wrap, unwrap, rewrap, rotate, disable, enable, setKeyForDeletion,
//! unsetKeyForDeletion, sync, restore — at `/actions/{action}` and in the deprecated
//! `POST /keys/{id}?action=` form.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coffer_kms::KmsError;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Kp;
use super::keys::new_key;
use super::wire::{self, KEY_ACTION, KpError, base64_field, body, respond, str_field};
use crate::ControlState;

type R = Result<Response, KpError>;

/// The AAD strings of a wrap-family body.
fn aad(v: &Value) -> Result<Vec<String>, KmsError> {
    match v.get("aad") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| KmsError::field("INVALID_FIELD_ERR", "aad", "aad is a list of strings"))
            })
            .collect(),
        Some(_) => Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "aad",
            "aad is a list of strings",
        )),
    }
}

fn ciphertext(v: &Value) -> Result<&str, KmsError> {
    str_field(v, "ciphertext")
        .ok_or_else(|| KmsError::field("BAD_BODY_ERR", "ciphertext", "ciphertext is required"))
}

pub async fn action(
    State(s): State<ControlState>,
    kp: Kp,
    Path((id, action)): Path<(String, String)>,
    raw: Bytes,
) -> R {
    run(&s, &kp, &id, &action, &raw).await
}

pub async fn deprecated_action(
    State(s): State<ControlState>,
    kp: Kp,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    raw: Bytes,
) -> R {
    let action = q
        .get("action")
        .ok_or_else(|| KmsError::invalid("BAD_BODY_ERR", "the action query parameter is required"))?;
    if action == "restore" {
        return super::keys::restore(State(s), kp, Path(id), raw).await;
    }
    run(&s, &kp, &id, action, &raw).await
}

async fn run(s: &ControlState, kp: &Kp, id: &str, action: &str, raw: &Bytes) -> R {
    let v = body(raw)?;
    // Wrap-family bodies are flat; a null body is an empty one.
    let v = if v.is_null() { json!({}) } else { v };
    let (kms, who, inst) = (&s.kms, &kp.principal, kp.instance.as_str());
    match action {
        "wrap" => {
            let plaintext = base64_field(&v, "plaintext")?.map(Zeroizing::new);
            let w = kms.wrap(who, inst, id, plaintext, &aad(&v)?).await?;
            let mut out = json!({ "ciphertext": w.ciphertext, "keyVersion": { "id": w.key_version } });
            if let Some(p) = w.plaintext {
                out["plaintext"] = json!(B64.encode(&*p));
            }
            Ok(respond(StatusCode::OK, KEY_ACTION, &out))
        }
        "unwrap" => {
            let u = kms.unwrap(who, inst, id, ciphertext(&v)?, &aad(&v)?).await?;
            let mut out =
                json!({ "plaintext": B64.encode(&*u.plaintext), "keyVersion": { "id": u.key_version } });
            if let Some((ct, version)) = u.rewrapped {
                out["ciphertext"] = json!(ct);
                out["rewrappedKeyVersion"] = json!({ "id": version });
            }
            Ok(respond(StatusCode::OK, KEY_ACTION, &out))
        }
        "rewrap" => {
            let w = kms.rewrap(who, inst, id, ciphertext(&v)?, &aad(&v)?).await?;
            // keyVersion names the version the input was wrapped with (the SDK's RewrapKeyResponseBody).
            let from = w.previous_version.as_deref().unwrap_or(&w.key_version);
            let out = json!({ "ciphertext": w.ciphertext, "keyVersion": { "id": from }, "rewrappedKeyVersion": { "id": w.key_version } });
            Ok(respond(StatusCode::OK, KEY_ACTION, &out))
        }
        "rotate" => {
            let payload = if v.get("payload").is_some() {
                Some(new_key(&v, None)?)
            } else {
                None
            };
            kms.rotate_key(who, inst, id, payload).await?;
            Ok(wire::no_content())
        }
        "disable" => kms
            .disable_key(who, inst, id)
            .await
            .map(|_| wire::no_content())
            .map_err(Into::into),
        "enable" => kms
            .enable_key(who, inst, id)
            .await
            .map(|_| wire::no_content())
            .map_err(Into::into),
        "setKeyForDeletion" => kms
            .set_key_for_deletion(who, inst, id, true)
            .await
            .map(|_| wire::no_content())
            .map_err(Into::into),
        "unsetKeyForDeletion" => kms
            .set_key_for_deletion(who, inst, id, false)
            .await
            .map(|_| wire::no_content())
            .map_err(Into::into),
        "sync" => kms
            .sync_key(who, inst, id)
            .await
            .map(|_| wire::no_content())
            .map_err(Into::into),
        other => Err(KmsError::invalid("BAD_BODY_ERR", format!("unknown action {other:?}")).into()),
    }
}
