//! The key lifecycle: rotate, disable, enable, delete (crypto-shredding), restore, purge,
//! dual-authorization deletion, sync, and rotation on schedule. Each change that services
//! care about is delivered to them before the call returns (see `events`).

use coffer_iam::{Action, Principal};
use coffer_storage::{Batch, KeyRange};
use zeroize::Zeroizing;

use crate::events::EventKind;
use crate::keys::NewKey;
use crate::model::{Deletion, KeyRecord, KeyState, Version};
use crate::store::{ALIASES, KEYS, Kms, PARKED_REGISTRATIONS, REGISTRATIONS, key_key};
use crate::{KmsError, Result, now};

/// Options of a delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete even with registrations (except those preventing deletion).
    pub force: bool,
}

fn state_error(action: &str, state: KeyState) -> KmsError {
    match state {
        KeyState::Destroyed => KmsError::Deleted,
        s => KmsError::invalid_state(format!(
            "{action} is not allowed for a key in state {}",
            u8::from(s)
        )),
    }
}

impl Kms {
    async fn checked(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        action: Action,
    ) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, action, &instance, Some(&record.id))
            .await?;
        Ok((*record).clone())
    }

    /// Adds a version. Generated keys rotate without a payload; imported keys need one.
    pub async fn rotate_key(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        payload: Option<NewKey>,
    ) -> Result<KeyRecord> {
        let record = self.checked(caller, instance_id, id, Action::KmsRotate).await?;
        if !record.is_root() {
            return Err(KmsError::invalid(
                "KEY_ROOT_REQ_ERR",
                "only root keys can be rotated",
            ));
        }
        let t = now();
        if !matches!(
            record.effective_state(t),
            KeyState::Active | KeyState::Deactivated
        ) {
            return Err(state_error("rotate", record.effective_state(t)));
        }
        // Only a rotation starts the hour: a new key may be rotated at once (IBM's own tests do).
        if record
            .last_rotated
            .is_some_and(|r| r + self.timing().rotate_min_interval_secs > t)
        {
            return Err(KmsError::conflict(
                "KEY_ROTATION_NOT_PERMITTED",
                "This root key was rotated within the last hour: wait before rotating it again",
            ));
        }
        let material = self.rotation_material(instance_id, &record, payload).await?;
        self.add_version(instance_id, &record.id, &material).await
    }

    async fn rotation_material(
        &self,
        instance_id: &str,
        record: &KeyRecord,
        payload: Option<NewKey>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        match (record.imported, payload) {
            (true, None) => Err(KmsError::field(
                "KEY_PAYLOAD_REQ_ERR",
                "payload",
                "an imported root key needs a new payload to rotate",
            )),
            (false, Some(_)) => Err(KmsError::field(
                "BAD_BODY_ERR",
                "payload",
                "a generated root key rotates without a payload",
            )),
            (false, None) => Ok(Zeroizing::new(coffer_crypto::random_bytes(32))),
            (true, Some(mut p)) => {
                let raw = p.payload.take().ok_or_else(|| {
                    KmsError::field("KEY_PAYLOAD_REQ_ERR", "payload", "a payload is required")
                })?;
                let material = if p.encrypted_nonce.is_some() || p.iv.is_some() {
                    self.secure_import(instance_id, &raw, &p).await?
                } else {
                    raw
                };
                if ![16, 24, 32].contains(&material.len()) {
                    return Err(KmsError::field(
                        "INVALID_FIELD_ERR",
                        "payload",
                        "a root key's payload is 16, 24 or 32 bytes",
                    ));
                }
                Ok(material)
            }
        }
    }

    async fn add_version(&self, instance_id: &str, key_id: &str, material: &[u8]) -> Result<KeyRecord> {
        let version = self.seal_version(instance_id, key_id, material).await?;
        let updated = self
            .update_key(instance_id, key_id, |r, _| {
                r.versions.push(version.clone());
                r.last_rotated = Some(now());
                Ok(())
            })
            .await?;
        self.emit(EventKind::Rotate, &updated).await?;
        Ok(updated)
    }

    /// Rotates every root key whose rotation policy is due; returns how many rotated.
    pub async fn rotate_due(&self) -> Result<usize> {
        let t = now();
        let mut rotated = 0;
        for (_, raw) in self.meta().scan(KEYS, KeyRange::prefix(b""), usize::MAX).await? {
            let r: KeyRecord = serde_json::from_slice(&raw)?;
            let Some(policy) = r
                .rotation
                .as_ref()
                .filter(|p| p.enabled && !r.imported && r.is_root())
            else {
                continue;
            };
            let due = r.last_rotated.unwrap_or(r.created)
                + i64::from(policy.interval_month) * self.timing().month_secs;
            if due > t || !matches!(r.effective_state(t), KeyState::Active) {
                continue;
            }
            match self.master(&r.instance).await {
                Ok(_) => {
                    let material = Zeroizing::new(coffer_crypto::random_bytes(32));
                    self.add_version(&r.instance, &r.id, &material).await?;
                    rotated += 1;
                }
                Err(_) => tracing::debug!(key = %r.id, "rotation due, but the instance is sealed"),
            }
        }
        Ok(rotated)
    }

    pub async fn key_versions(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
    ) -> Result<Vec<Version>> {
        let record = self
            .checked(caller, instance_id, id, Action::KmsReadMetadata)
            .await?;
        Ok(record.versions.iter().rev().cloned().collect())
    }

    /// Suspends a key: wrap and unwrap are refused until it is enabled.
    pub async fn disable_key(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<KeyRecord> {
        let record = self.checked(caller, instance_id, id, Action::KmsDisable).await?;
        if !record.is_root() {
            return Err(KmsError::invalid(
                "KEY_ROOT_REQ_ERR",
                "only root keys can be disabled",
            ));
        }
        let updated = self
            .update_key(instance_id, &record.id, |r, _| {
                let state = r.effective_state(now());
                if state != KeyState::Active {
                    return Err(state_error("disable", state));
                }
                r.state = KeyState::Suspended;
                r.state_changed = now();
                Ok(())
            })
            .await?;
        self.emit(EventKind::Disable, &updated).await?;
        Ok(updated)
    }

    pub async fn enable_key(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<KeyRecord> {
        let record = self.checked(caller, instance_id, id, Action::KmsEnable).await?;
        let delay = self.timing().state_change_delay_secs;
        let updated = self
            .update_key(instance_id, &record.id, |r, _| {
                if r.state != KeyState::Suspended {
                    return Err(state_error("enable", r.state));
                }
                if r.state_changed + delay > now() {
                    return Err(KmsError::conflict(
                        "REQ_TOO_EARLY_ERR",
                        format!("a key can be enabled {delay} seconds after it was disabled"),
                    ));
                }
                r.state = KeyState::Active;
                r.state_changed = now();
                Ok(())
            })
            .await?;
        self.emit(EventKind::Enable, &updated).await?;
        Ok(updated)
    }

    /// Deletes a key: from now on nothing it protects can be used (crypto-shredding), until it
    /// is restored within the restore window.
    pub async fn delete_key(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        opts: DeleteOptions,
    ) -> Result<KeyRecord> {
        let record = self.checked(caller, instance_id, id, Action::KmsDelete).await?;
        if record.state == KeyState::Destroyed {
            return Err(KmsError::Deleted);
        }
        if let Principal::Service { .. } = caller {
            return Err(KmsError::Forbidden {
                code: "RESOURCE_OWNER_ERR",
                message: "a service may not delete a customer's key".into(),
            });
        }
        let who = caller.iam_id().unwrap_or_default().to_owned();
        let t = now();
        if record.dual_auth.enabled {
            let authorized_by_other = record.dual_auth.set_by.as_ref().is_some_and(|s| *s != who)
                && record.dual_auth.set_until.is_some_and(|u| u > t);
            if !authorized_by_other {
                return Err(KmsError::conflict(
                    "AUTHORIZATIONS_NOT_MET",
                    "this key needs dual authorization: another user must first set it for deletion",
                ));
            }
        }
        let registrations = self.registrations_of(instance_id, &record.id).await?;
        if registrations.iter().any(|r| r.prevent_key_deletion) {
            return Err(KmsError::conflict(
                "PREV_KEY_DEL_ERR",
                "a registration prevents the deletion of this key",
            ));
        }
        if !registrations.is_empty() && !opts.force {
            return Err(KmsError::conflict(
                "PROTECTED_RESOURCE_ERR",
                "the key has registered resources: delete them first, or use force",
            ));
        }
        let updated = self
            .update_key(instance_id, &record.id, |r, b| {
                if r.state == KeyState::Destroyed {
                    return Err(KmsError::Deleted);
                }
                r.state = KeyState::Destroyed;
                r.state_changed = t;
                r.deleted = Some(Deletion {
                    at: t,
                    by: who.clone(),
                });
                r.dual_auth.set_by = None;
                r.dual_auth.set_until = None;
                for a in &r.aliases {
                    b.delete(ALIASES, format!("{instance_id}/{a}"));
                }
                Ok(())
            })
            .await?;
        // Subscribers hear of the deletion before the registrations go (a forced delete). They
        // are parked, not dropped: a restore must reach the same resources again (spec §4.11).
        self.emit(EventKind::Delete, &updated).await?;
        if opts.force && !registrations.is_empty() {
            let mut b = Batch::new();
            for reg in &registrations {
                let k = crate::registrations::reg_key(instance_id, &record.id, &reg.resource_crn);
                b.put(PARKED_REGISTRATIONS, k.clone(), serde_json::to_vec(reg)?)
                    .delete(REGISTRATIONS, k);
            }
            self.meta().commit(b).await?;
        }
        Ok(updated)
    }

    /// Brings back a deleted key within the restore window. An imported key needs its payload.
    pub async fn restore_key(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        payload: Option<NewKey>,
    ) -> Result<KeyRecord> {
        let record = self.checked(caller, instance_id, id, Action::KmsRestore).await?;
        let t = now();
        let deleted = match (&record.state, &record.deleted) {
            (KeyState::Destroyed, Some(d)) => d.clone(),
            (s, _) => {
                return Err(KmsError::invalid_state(format!(
                    "only a deleted key can be restored (state {})",
                    u8::from(*s)
                )));
            }
        };
        if deleted.at + self.timing().restore_window_secs < t {
            return Err(KmsError::invalid(
                "KEY_RESTORE_EXPIRED",
                "the restore window of this key has passed",
            ));
        }
        if deleted.at + self.timing().state_change_delay_secs > t {
            return Err(KmsError::conflict(
                "REQ_TOO_EARLY_ERR",
                format!(
                    "a key can be restored {} seconds after it was deleted",
                    self.timing().state_change_delay_secs
                ),
            ));
        }
        if record.imported {
            // The payload must be the key's material: its current version must open with it.
            let mut p = payload.ok_or_else(|| {
                KmsError::field(
                    "KEY_PAYLOAD_REQ_ERR",
                    "payload",
                    "restoring an imported key needs its payload",
                )
            })?;
            let raw = p
                .payload
                .take()
                .ok_or_else(|| KmsError::field("KEY_PAYLOAD_REQ_ERR", "payload", "a payload is required"))?;
            let material = if p.encrypted_nonce.is_some() {
                self.secure_import(instance_id, &raw, &p).await?
            } else {
                raw
            };
            let current = record
                .current_version()
                .ok_or_else(|| KmsError::Corrupt("no version".into()))?;
            let stored = self.open_version(instance_id, &record.id, current).await?;
            if stored.as_slice() != material.as_slice() {
                return Err(KmsError::field(
                    "INVALID_FIELD_ERR",
                    "payload",
                    "the payload is not this key's material",
                ));
            }
        }
        let parked = self
            .registrations_in(PARKED_REGISTRATIONS, instance_id, &record.id)
            .await?;
        let updated = self
            .update_key(instance_id, &record.id, |r, b| {
                if r.state != KeyState::Destroyed {
                    return Err(KmsError::invalid_state("the key is not deleted"));
                }
                for reg in &parked {
                    let k = crate::registrations::reg_key(instance_id, &r.id, &reg.resource_crn);
                    b.put(REGISTRATIONS, k.clone(), serde_json::to_vec(reg)?)
                        .delete(PARKED_REGISTRATIONS, k);
                }
                r.state = KeyState::Active;
                r.state_changed = now();
                r.deleted = None;
                for a in &r.aliases {
                    let k = format!("{instance_id}/{a}");
                    b.expect_absent(ALIASES, k.clone())
                        .put(ALIASES, k, serde_json::to_vec(&r.id)?);
                }
                Ok(())
            })
            .await?;
        self.emit(EventKind::Restore, &updated).await?;
        Ok(updated)
    }

    /// Removes a deleted key for good, at least the purge delay after its deletion.
    pub async fn purge_key(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<KeyRecord> {
        let record = self.checked(caller, instance_id, id, Action::KmsPurge).await?;
        let deleted = match (&record.state, &record.deleted) {
            (KeyState::Destroyed, Some(d)) => d.clone(),
            _ => return Err(KmsError::invalid_state("only a deleted key can be purged")),
        };
        if deleted.at + self.timing().purge_delay_secs > now() {
            return Err(KmsError::conflict(
                "REQ_TOO_EARLY_ERR",
                format!(
                    "a key can be purged {} seconds after it was deleted",
                    self.timing().purge_delay_secs
                ),
            ));
        }
        let mut b = Batch::new();
        b.delete(KEYS, key_key(instance_id, &record.id));
        for space in [REGISTRATIONS, PARKED_REGISTRATIONS] {
            for reg in self.registrations_in(space, instance_id, &record.id).await? {
                b.delete(
                    space,
                    crate::registrations::reg_key(instance_id, &record.id, &reg.resource_crn),
                );
            }
        }
        self.meta().commit(b).await?;
        self.forget(&record);
        Ok(record)
    }

    /// The first of the two authorizations of a dual-authorization delete.
    pub async fn set_key_for_deletion(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        set: bool,
    ) -> Result<KeyRecord> {
        let record = self
            .checked(caller, instance_id, id, Action::KmsSetForDeletion)
            .await?;
        if !record.dual_auth.enabled {
            return Err(KmsError::conflict(
                "NOT_DUAL_AUTH_ERR",
                "the key has no dual authorization policy",
            ));
        }
        if record.state == KeyState::Destroyed {
            return Err(KmsError::Deleted);
        }
        let who = caller.iam_id().unwrap_or_default().to_owned();
        let window = self.timing().dual_auth_window_secs;
        self.update_key(instance_id, &record.id, |r, _| {
            if set {
                r.dual_auth.set_by = Some(who.clone());
                r.dual_auth.set_until = Some(now() + window);
            } else {
                r.dual_auth.set_by = None;
                r.dual_auth.set_until = None;
            }
            Ok(())
        })
        .await
    }

    /// Re-delivers the key's unacknowledged events to their services (at most once per
    /// sync interval).
    pub async fn sync_key(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<usize> {
        let record = self.checked(caller, instance_id, id, Action::KmsSync).await?;
        let interval = self.timing().sync_min_interval_secs;
        if record.last_synced.is_some_and(|s| s + interval > now()) {
            return Err(KmsError::conflict(
                "REQ_TOO_EARLY_ERR",
                format!("a key can be synced once every {interval} seconds"),
            ));
        }
        self.update_key(instance_id, &record.id, |r, _| {
            r.last_synced = Some(now());
            Ok(())
        })
        .await?;
        self.redeliver(instance_id, &record.id).await
    }
}
