//! Lifecycle events: rotate, disable, enable, delete and restore reach every service with a
//! registration on the key, in process and before the KMS call returns, so that a service can
//! stop (or resume) using a key at once. Services acknowledge with `event_ack`; events not yet
//! acknowledged stay visible and are delivered again by `sync`.
//!
//! Delivery crosses no process today; the records live in the metadata store so that a later
//! transport (PostgreSQL LISTEN/NOTIFY) can deliver them on every node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use coffer_iam::{Crn, Principal, ServiceKind};
use coffer_storage::{Batch, KeyRange};
use serde::{Deserialize, Serialize};

use crate::model::{KeyRecord, KeyState};
use crate::store::{EVENTS, Kms, lock};
use crate::{KmsError, Result, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Rotate,
    Disable,
    Enable,
    Delete,
    Restore,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rotate => "rotate",
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::Delete => "delete",
            Self::Restore => "restore",
        }
    }
}

/// What a service learns of a key change (spec §4.11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    pub id: String,
    pub kind: EventKind,
    pub instance: String,
    pub key_id: String,
    pub key_crn: String,
    pub key_state: KeyState,
    /// The key's newest version when the event happened.
    pub key_version: String,
    pub timestamp: i64,
    /// The registered resources the event concerns.
    pub resources: Vec<String>,
}

/// An acknowledgement by a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckState {
    pub adopter_key_state: String,
    pub rewrapped_key_version: Option<String>,
    pub timestamp: i64,
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    pub event: KeyEvent,
    pub ack: Option<AckState>,
}

/// A service that hears of key changes.
#[async_trait]
pub trait EventSubscriber: Send + Sync {
    /// Called for each event on a key the service registered resources on.
    async fn on_event(&self, event: &KeyEvent);
}

#[derive(Default)]
pub(crate) struct Subscribers(Mutex<HashMap<String, Arc<dyn EventSubscriber>>>);

impl Kms {
    /// Subscribes a service to events on keys its resources are registered on.
    pub fn subscribe(&self, service: ServiceKind, subscriber: Arc<dyn EventSubscriber>) {
        lock(&self.inner.subscribers.0).insert(service.name().to_owned(), subscriber);
    }

    fn key_crn(&self, record: &KeyRecord, service: ServiceKind, account: &str, region: &str) -> String {
        coffer_iam::Crn::instance(service.name(), region, account, &record.instance)
            .child("key", &record.id)
            .to_string()
    }

    /// Records an event for the key's registered resources and delivers it.
    pub(crate) async fn emit(&self, kind: EventKind, record: &KeyRecord) -> Result<()> {
        let registrations = self.registrations_of(&record.instance, &record.id).await?;
        if registrations.is_empty() {
            return Ok(());
        }
        let instance = self.iam().instance(&record.instance).await?;
        let event = KeyEvent {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            instance: record.instance.clone(),
            key_id: record.id.clone(),
            key_crn: self.key_crn(record, instance.service, &instance.account, &instance.region),
            key_state: record.state,
            key_version: record.current_version().map(|v| v.id.clone()).unwrap_or_default(),
            timestamp: now(),
            resources: registrations.iter().map(|r| r.resource_crn.clone()).collect(),
        };
        let mut b = Batch::new();
        b.put(
            EVENTS,
            event_key(&record.instance, &event),
            serde_json::to_vec(&EventRecord {
                event: event.clone(),
                ack: None,
            })?,
        );
        self.meta().commit(b).await?;
        self.deliver(&event).await;
        Ok(())
    }

    /// Hands an event to the subscriber of each service it concerns.
    async fn deliver(&self, event: &KeyEvent) {
        let services: std::collections::BTreeSet<String> = event
            .resources
            .iter()
            .filter_map(|c| c.parse::<Crn>().ok().map(|c| c.service))
            .collect();
        for service in services {
            let subscriber = lock(&self.inner.subscribers.0).get(&service).cloned();
            match subscriber {
                Some(s) => s.on_event(event).await,
                None => {
                    tracing::warn!(service, event = %event.id, "no subscriber for a key event; it waits for sync")
                }
            }
        }
    }

    /// A service acknowledges an event: it adopted the key's new state.
    pub async fn event_ack(
        &self,
        caller: &Principal,
        instance_id: &str,
        event_id: &str,
        adopter_key_state: &str,
        rewrapped_key_version: Option<String>,
    ) -> Result<()> {
        let instance = self.kms_instance(instance_id).await?;
        // Only services acknowledge; a user hears so before learning whether the event exists.
        self.authorize(caller, coffer_iam::Action::KmsEventAck, &instance, None)
            .await?;
        let prefix = format!("{instance_id}/");
        let entries = self
            .meta()
            .scan(EVENTS, KeyRange::prefix(prefix.as_bytes()), usize::MAX)
            .await?;
        let (k, raw, mut rec) = entries
            .into_iter()
            .find_map(|(k, v)| {
                let rec: EventRecord = serde_json::from_slice(&v).ok()?;
                (rec.event.id == event_id).then_some((k, v, rec))
            })
            .ok_or_else(|| KmsError::not_found("EVENT_NOT_FOUND_ERR", "no such event"))?;
        self.authorize(
            caller,
            coffer_iam::Action::KmsEventAck,
            &instance,
            Some(&rec.event.key_id),
        )
        .await?;
        if adopter_key_state == "DEK_ENABLED"
            && rec.event.kind == EventKind::Rotate
            && rewrapped_key_version.is_none()
        {
            return Err(KmsError::field(
                "BAD_BODY_ERR",
                "keyStateData",
                "keyStateData is required for DEK_ENABLED",
            ));
        }
        rec.ack = Some(AckState {
            adopter_key_state: adopter_key_state.to_owned(),
            rewrapped_key_version,
            timestamp: now(),
            by: crate::registrations::caller_name(caller),
        });
        let mut b = Batch::new();
        b.expect_value(EVENTS, k.clone(), raw)
            .put(EVENTS, k, serde_json::to_vec(&rec)?);
        self.meta().commit(b).await?;
        Ok(())
    }

    /// The key's events, oldest first, with their acknowledgements.
    pub async fn key_events(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
    ) -> Result<Vec<(KeyEvent, Option<AckState>)>> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(
            caller,
            coffer_iam::Action::KmsReadMetadata,
            &instance,
            Some(&record.id),
        )
        .await?;
        Ok(self
            .events_of(instance_id, &record.id)
            .await?
            .into_iter()
            .map(|r| (r.event, r.ack))
            .collect())
    }

    async fn events_of(&self, instance_id: &str, key_id: &str) -> Result<Vec<EventRecord>> {
        let prefix = format!("{instance_id}/{key_id}/");
        let mut out: Vec<EventRecord> = self
            .meta()
            .scan(EVENTS, KeyRange::prefix(prefix.as_bytes()), usize::MAX)
            .await?
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v))
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|r| r.event.timestamp);
        Ok(out)
    }

    /// Delivers the key's unacknowledged events again; returns how many.
    pub(crate) async fn redeliver(&self, instance_id: &str, key_id: &str) -> Result<usize> {
        let pending: Vec<EventRecord> = self
            .events_of(instance_id, key_id)
            .await?
            .into_iter()
            .filter(|r| r.ack.is_none())
            .collect();
        for r in &pending {
            self.deliver(&r.event).await;
        }
        Ok(pending.len())
    }
}

fn event_key(instance: &str, e: &KeyEvent) -> String {
    format!("{instance}/{}/{:020}-{}", e.key_id, e.timestamp, e.id)
}
