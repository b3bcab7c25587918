//! Keystore records rendered as Key Protect JSON (spec §4.4, §4.9, §4.10).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_iam::Instance;
use coffer_kms::{InstancePolicy, KeyRecord, KeyRing, KeyState, PolicyMeta, Registration, Timing};
use serde_json::{Value, json};

use super::wire::{KEY, POLICY, rfc3339};

pub fn key_crn(instance: &Instance, key_id: &str) -> String {
    instance.crn().child("key", key_id).to_string()
}

/// A key as Key Protect shows it; `payload` only for a standard key's GET.
pub fn key(r: &KeyRecord, instance: &Instance, timing: &Timing, payload: Option<&[u8]>) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let state = r.effective_state(now);
    let mut v = json!({
        "type": KEY,
        "id": r.id,
        "name": r.name,
        "aliases": r.aliases,
        "description": r.description,
        "tags": r.tags,
        "state": u8::from(state),
        "extractable": r.extractable,
        "crn": key_crn(instance, &r.id),
        "imported": r.imported,
        "keyRingID": r.key_ring,
        "creationDate": rfc3339(r.created),
        "createdBy": r.created_by,
        "lastUpdateDate": rfc3339(r.updated),
        "algorithmType": "AES",
        "algorithmMetadata": { "bitLength": "256", "mode": "CBC_PAD" },
        "algorithmBitSize": 256,
        "algorithmMode": "CBC_PAD",
        "deleted": state == KeyState::Destroyed,
        "dualAuthDelete": {
            "enabled": r.dual_auth.enabled,
            "keySetForDeletion": r.dual_auth.set_by.is_some(),
        },
    });
    if r.description.is_none() {
        v.as_object_mut().map(|m| m.remove("description"));
    }
    if let Some(e) = r.expiration {
        v["expirationDate"] = json!(rfc3339(e));
    }
    if let Some(t) = r.last_rotated {
        v["lastRotateDate"] = json!(rfc3339(t));
    }
    if let Some(ver) = r.current_version() {
        v["keyVersion"] = json!({ "id": ver.id, "creationDate": rfc3339(ver.created) });
    }
    if let Some(until) = r.dual_auth.set_until {
        v["dualAuthDelete"]["authExpiration"] = json!(rfc3339(until));
    }
    if let Some(p) = &r.rotation {
        v["rotation"] = json!({ "enabled": p.enabled, "interval_month": p.interval_month });
    }
    if state != KeyState::Active {
        v["nonactiveStateReason"] = json!(match state {
            KeyState::Deactivated => 2,
            KeyState::Destroyed => 3,
            _ => 1,
        });
    }
    if let Some(d) = &r.deleted {
        v["deletionDate"] = json!(rfc3339(d.at));
        v["deletedBy"] = json!(d.by);
        v["restoreExpirationDate"] = json!(rfc3339(d.at + timing.restore_window_secs));
        v["restoreAllowed"] = json!(d.at + timing.restore_window_secs > now);
        v["purgeAllowedFrom"] = json!(rfc3339(d.at + timing.purge_delay_secs));
        v["purgeAllowed"] = json!(d.at + timing.purge_delay_secs <= now);
        v["purgeScheduledOn"] = json!(rfc3339(d.at + 90 * 24 * 3600));
    }
    if let Some(p) = payload {
        v["payload"] = json!(B64.encode(p));
    }
    v
}

fn policy_meta(v: &mut Value, m: &PolicyMeta, crn: &str) {
    v["id"] = json!(m.id);
    v["crn"] = json!(crn);
    v["creationDate"] = json!(rfc3339(m.created));
    v["createdBy"] = json!(m.created_by);
    v["lastUpdateDate"] = json!(rfc3339(m.updated));
    v["updatedBy"] = json!(m.updated_by);
}

/// A key's policies: the rotation and dual-authorization resources that exist.
pub fn key_policies(r: &KeyRecord, instance: &Instance, only: Option<&str>) -> Vec<Value> {
    let crn = key_crn(instance, &r.id);
    let mut out = Vec::new();
    if let (Some(p), Some(m)) = (&r.rotation, &r.rotation_meta)
        && only.is_none_or(|o| o == "rotation")
    {
        let mut v = json!({ "type": POLICY, "rotation": { "enabled": p.enabled, "interval_month": p.interval_month } });
        policy_meta(&mut v, m, &crn);
        out.push(v);
    }
    if let Some(m) = &r.dual_auth_meta
        && only.is_none_or(|o| o == "dualAuthDelete")
    {
        let mut v = json!({ "type": POLICY, "dualAuthDelete": { "enabled": r.dual_auth.enabled } });
        policy_meta(&mut v, m, &crn);
        out.push(v);
    }
    out
}

pub fn instance_policy(p: &InstancePolicy) -> Value {
    json!({
        "policy_type": p.policy_type,
        "policy_data": { "enabled": p.enabled, "attributes": p.attributes },
        "creationDate": rfc3339(p.meta.created),
        "createdBy": p.meta.created_by,
        "updatedBy": p.meta.updated_by,
        "lastUpdated": rfc3339(p.meta.updated),
    })
}

pub fn registration(r: &Registration, key: Option<&KeyRecord>) -> Value {
    let version_created = key
        .and_then(|k| k.versions.iter().find(|v| v.id == r.key_version))
        .map(|v| rfc3339(v.created));
    let mut v = json!({
        "keyId": r.key_id,
        "resourceCrn": r.resource_crn,
        "createdBy": r.created_by,
        "creationDate": rfc3339(r.created),
        "updatedBy": r.updated_by,
        "lastUpdated": rfc3339(r.updated),
        "preventKeyDeletion": r.prevent_key_deletion,
        "keyVersion": { "id": r.key_version, "creationDate": version_created },
    });
    if let Some(d) = &r.description {
        v["description"] = json!(d);
    }
    if let Some(k) = key {
        v["keyName"] = json!(k.name);
    }
    v
}

pub fn key_ring(r: &KeyRing) -> Value {
    json!({ "id": r.id, "creationDate": rfc3339(r.created), "createdBy": r.created_by })
}
