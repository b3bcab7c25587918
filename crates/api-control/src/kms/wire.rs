//! The Key Protect wire format: envelopes, media types, tolerant request bodies, errors.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coffer_kms::KmsError;
use serde_json::{Map, Value, json};

pub const KEY: &str = "application/vnd.ibm.kms.key+json";
pub const KEY_ACTION: &str = "application/vnd.ibm.kms.key_action+json";
pub const POLICY: &str = "application/vnd.ibm.kms.policy+json";
pub const REGISTRATION: &str = "application/vnd.ibm.kms.registration+json";
pub const KEY_RING: &str = "application/vnd.ibm.kms.key_ring+json";
pub const ALIAS: &str = "application/vnd.ibm.kms.alias+json";
pub const ERROR: &str = "application/vnd.ibm.kms.error+json";
pub const JSON: &str = "application/json";

/// `{"metadata": {...}, "resources": [...]}`.
pub fn envelope(collection_type: &str, resources: Vec<Value>, total: Option<usize>) -> Value {
    let mut metadata = json!({ "collectionType": collection_type, "collectionTotal": resources.len() });
    if let Some(t) = total {
        metadata["totalCount"] = json!(t);
    }
    json!({ "metadata": metadata, "resources": resources })
}

/// A JSON response with a given status and media type.
pub fn respond(status: StatusCode, media_type: &'static str, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    resp
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Lowercases every object key, recursively: Key Protect matches JSON keys without regard
/// to case (kp-go sends `Tags` and `KeyRingID`).
fn lower_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lower_keys(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// A request body, whatever its Content-Type: empty and `null` are `Null`; keys lowercased.
pub fn body(bytes: &Bytes) -> Result<Value, KmsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| KmsError::invalid("BAD_BODY_ERR", format!("the body is not valid JSON: {e}")))?;
    Ok(lower_keys(v))
}

/// The single resource of an enveloped request body (or the body itself when it is flat).
pub fn resource(v: &Value) -> Result<Value, KmsError> {
    let Some(resources) = v.get("resources") else {
        return Ok(v.clone());
    };
    let list = resources
        .as_array()
        .ok_or_else(|| KmsError::invalid("BAD_BODY_ERR", "resources is an array"))?;
    if let Some(total) = v
        .get("metadata")
        .and_then(|m| m.get("collectiontotal"))
        .and_then(Value::as_u64)
        && usize::try_from(total).ok() != Some(list.len())
    {
        return Err(KmsError::invalid(
            "COLLECTION_TOTAL_MISMATCH_ERR",
            "collectionTotal does not match the number of resources",
        ));
    }
    match list.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(KmsError::invalid(
            "NUM_COLLECTION_RESOURCE_ERR",
            "the request must hold exactly one resource",
        )),
    }
}

pub fn prefer_minimal(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("return=minimal"))
}

/// Key Protect's error envelope (spec §4.12).
pub struct KpError(pub KmsError);

impl From<KmsError> for KpError {
    fn from(e: KmsError) -> Self {
        Self(e)
    }
}

fn phrase(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

impl IntoResponse for KpError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.wire();
        // A sealed instance is an operational state with its own message, not an internal fault.
        let message = if status >= 500 && !matches!(self.0, KmsError::Sealed) {
            tracing::error!(error = %self.0, "key management internal error");
            "internal error".to_owned()
        } else {
            self.0.to_string()
        };
        let mut reason = json!({
            "code": code,
            "message": message,
            "status": status,
            "moreInfo": "https://cloud.ibm.com/apidocs/key-protect",
        });
        if let Some(field) = self.0.target_field() {
            reason["target"] = json!({ "type": "field", "name": field });
        }
        let body = envelope(
            ERROR,
            vec![json!({
                "errorMsg": format!("{}: {message}: Please see `reasons` for more details ({code})", phrase(status)),
                "reasons": [reason],
            })],
            None,
        );
        respond(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            JSON,
            &body,
        )
    }
}

pub fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

pub fn base64_field(v: &Value, name: &'static str) -> Result<Option<Vec<u8>>, KmsError> {
    use base64::Engine as _;
    match str_field(v, &name.to_ascii_lowercase()) {
        None => Ok(None),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(Some)
            .map_err(|_| KmsError::field("INVALID_FIELD_ERR", name, format!("{name} is not valid base64"))),
    }
}

pub fn rfc3339(unix: i64) -> String {
    crate::time_rfc3339(unix)
}

pub fn parse_rfc3339(s: &str, field: &'static str) -> Result<i64, KmsError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            KmsError::field(
                "INVALID_FIELD_ERR",
                field,
                format!("{field} is not an RFC 3339 date"),
            )
        })
}
