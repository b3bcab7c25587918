//! The activity log: events in IBM Activity Tracker's CADF shape, kept in the metadata store
//! in time order for a publisher to read.

use coffer_kms::KeyEvent;
use coffer_storage::{Batch, KeyRange, MetaStore};
use serde_json::{Value, json};

use crate::encryption::bucket_crn;
use crate::records::{ACTIVITY, BucketRecord};
use crate::{Result, now_ms};

/// A key change as it reached a bucket.
pub(crate) struct KeyStateChange<'a> {
    pub event: &'a KeyEvent,
    pub bucket: &'a BucketRecord,
    pub adopter_key_state: &'a str,
    pub adopter_key_version: Option<&'a str>,
    pub ok: bool,
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

async fn record(meta: &dyn MetaStore, event: Value) -> Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let mut event = event;
    event["id"] = json!(id);
    let mut b = Batch::new();
    b.put(
        ACTIVITY,
        format!("{:020}-{id}", now_ms()),
        serde_json::to_vec(&event)?,
    );
    meta.commit(b).await?;
    Ok(())
}

/// `cloud-object-storage.bucket-key-state.update` (spec §6.3).
pub(crate) async fn record_key_state(meta: &dyn MetaStore, c: &KeyStateChange<'_>) -> Result<()> {
    let requested = match c.event.kind {
        coffer_kms::EventKind::Disable | coffer_kms::EventKind::Delete => "disabled",
        _ => "enabled",
    };
    let event = json!({
        "eventTime": rfc3339_ms(now_ms()),
        "action": "cloud-object-storage.bucket-key-state.update",
        "outcome": if c.ok { "success" } else { "failure" },
        "reason": { "reasonCode": if c.ok { 200 } else { 500 } },
        "severity": if c.event.kind == coffer_kms::EventKind::Delete { "critical" } else { "warning" },
        "message": format!("Cloud Object Storage: update bucket-key-state {} ({})", c.bucket.name, c.event.kind.name()),
        "initiator": { "id": "kms", "name": c.event.key_crn, "typeURI": "service/security/kms", "credential": { "type": "service" } },
        "target": { "id": bucket_crn(c.bucket), "name": c.bucket.name, "typeURI": "cloud-object-storage/bucket" },
        "observer": { "name": "ActivityTracker" },
        "requestData": {
            "eventType": c.event.kind.name(),
            "requestedKeyState": requested,
            "requestKeyVersion": c.event.key_version,
            "bucketLocation": c.bucket.location,
            "rootKeyCrn": c.bucket.root_key.as_ref().map(|r| r.crn.clone()),
        },
        "responseData": {
            "eventID": c.event.id,
            "adopterKeyState": c.adopter_key_state,
            "adopterKeyVersion": c.adopter_key_version,
        },
        "dataEvent": false,
        "saveServiceCopy": true,
    });
    record(meta, event).await
}

/// The most recent activity events, newest last.
pub async fn recent(meta: &dyn MetaStore, limit: usize) -> Result<Vec<Value>> {
    let all = meta.scan(ACTIVITY, KeyRange::prefix(b""), usize::MAX).await?;
    let skip = all.len().saturating_sub(limit);
    all.into_iter()
        .skip(skip)
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}
