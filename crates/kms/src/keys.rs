//! Keys: create (generated or imported), look up, list, move between key rings, aliases, rings.

use coffer_iam::{Action, Principal};
use coffer_storage::{Batch, KeyRange};

use crate::model::{DualAuth, KeyRecord, KeyRing, KeyState, PolicyMeta, RotationPolicy};
use crate::store::{ALIASES, KEY_RINGS, KEYS, Kms, key_key};
use crate::{KmsError, Result, now};

/// A key to create. `payload` is the material to import (already decrypted from an import
/// token's RSA-OAEP by the caller of [`Kms::create_key`] if `secure` is set).
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub extractable: bool,
    pub payload: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Secure import: the payload is RSA-OAEP ciphertext to the instance's import token.
    pub encrypted_nonce: Option<Vec<u8>>,
    pub iv: Option<Vec<u8>>,
    pub encryption_algorithm: Option<String>,
    pub aliases: Vec<String>,
    pub tags: Vec<String>,
    pub expiration: Option<i64>,
    pub key_ring: Option<String>,
    pub rotation: Option<RotationPolicy>,
    pub dual_auth: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyListQuery {
    pub limit: usize,
    pub offset: usize,
    /// States to include; default: everything but destroyed.
    pub states: Option<Vec<KeyState>>,
    pub extractable: Option<bool>,
    /// Substring of the name or an alias.
    pub search: Option<String>,
    pub key_ring: Option<String>,
}

pub struct KeyPage {
    pub keys: Vec<KeyRecord>,
    /// Keys matching the query before limit and offset.
    pub total: usize,
}

const RESERVED_ALIASES: [&str; 16] = [
    "allowed_ip",
    "key",
    "keys",
    "metadata",
    "policy",
    "policies",
    "registration",
    "registrations",
    "ring",
    "rings",
    "rotate",
    "wrap",
    "unwrap",
    "rewrap",
    "version",
    "versions",
];

pub(crate) fn check_alias(alias: &str) -> Result<()> {
    let ok = (2..=90).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && uuid::Uuid::parse_str(alias).is_err()
        && !RESERVED_ALIASES.contains(&alias.to_ascii_lowercase().as_str());
    if ok {
        Ok(())
    } else {
        Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "aliases",
            format!(
                "alias {alias:?}: 2 to 90 letters, digits, '-' or '_', not a UUID and not a reserved word"
            ),
        ))
    }
}

fn validate(new: &NewKey) -> Result<()> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 90 {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "name",
            "a key name is 1 to 90 characters",
        ));
    }
    if new.description.as_ref().is_some_and(|d| d.len() > 240) {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "description",
            "a description is at most 240 characters",
        ));
    }
    if new.aliases.len() > 5 {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "aliases",
            "a key has at most 5 aliases",
        ));
    }
    for a in &new.aliases {
        check_alias(a)?;
    }
    if new.tags.len() > 30 || new.tags.iter().any(|t| t.is_empty() || t.len() > 30) {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "tags",
            "at most 30 tags of 1 to 30 characters",
        ));
    }
    if new.expiration.is_some_and(|e| e <= now()) {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "expirationDate",
            "the expiration date must be in the future",
        ));
    }
    if let Some(r) = &new.rotation {
        crate::policies::check_interval(r.interval_month)?;
    }
    Ok(())
}

impl Kms {
    /// Creates a generated or imported key.
    pub async fn create_key(
        &self,
        caller: &Principal,
        instance_id: &str,
        mut new: NewKey,
    ) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let imported = new.payload.is_some();
        self.authorize(
            caller,
            if imported {
                Action::KmsImport
            } else {
                Action::KmsCreate
            },
            &instance,
            None,
        )
        .await?;
        self.master(instance_id).await?;
        validate(&new)?;
        self.check_create_import_access(
            instance_id,
            !new.extractable,
            imported,
            new.encrypted_nonce.is_some(),
        )
        .await?;
        let ring = new.key_ring.clone().unwrap_or_else(|| "default".into());
        if ring != "default"
            && self
                .load::<KeyRing>(KEY_RINGS, &format!("{instance_id}/{ring}"))
                .await?
                .is_none()
        {
            return Err(KmsError::not_found(
                "KEY_RING_NOT_FOUND_ERR",
                format!("key ring {ring:?} does not exist"),
            ));
        }
        let material = match new.payload.take() {
            None => zeroize::Zeroizing::new(coffer_crypto::random_bytes(32)),
            Some(p) if new.encrypted_nonce.is_some() || new.iv.is_some() => {
                self.secure_import(instance_id, &p, &new).await?
            }
            Some(p) => p,
        };
        let len_ok = if new.extractable {
            (1..=7500).contains(&material.len())
        } else {
            [16, 24, 32].contains(&material.len())
        };
        if !len_ok {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "payload",
                "a root key's payload is 16, 24 or 32 bytes",
            ));
        }

        let id = uuid::Uuid::new_v4().to_string();
        let version = self.seal_version(instance_id, &id, &material).await?;
        let t = now();
        let (rotation, dual) = self.instance_defaults(instance_id).await?;
        let who = caller.iam_id().unwrap_or_default().to_owned();
        let meta = |kind: &str| PolicyMeta {
            id: uuid::Uuid::new_v4().to_string(),
            created: t,
            created_by: format!("{who} ({kind})"),
            updated: t,
            updated_by: who.clone(),
        };
        let rotation = if new.extractable {
            None
        } else {
            new.rotation.clone().or(rotation)
        };
        let dual_enabled = new.dual_auth.unwrap_or(dual);
        let record = KeyRecord {
            id: id.clone(),
            instance: instance_id.to_owned(),
            name: new.name.trim().to_owned(),
            description: new.description.clone(),
            aliases: new.aliases.clone(),
            tags: new.tags.clone(),
            key_ring: ring,
            extractable: new.extractable,
            imported,
            state: KeyState::Active,
            created: t,
            created_by: who.clone(),
            updated: t,
            state_changed: t,
            last_rotated: None,
            expiration: new.expiration,
            deleted: None,
            versions: vec![version],
            dual_auth: DualAuth {
                enabled: dual_enabled,
                set_by: None,
                set_until: None,
            },
            dual_auth_meta: dual_enabled.then(|| meta("dualAuthDelete")),
            rotation_meta: rotation.as_ref().map(|_| meta("rotation")),
            rotation,
            last_synced: None,
        };
        let mut b = Batch::new();
        b.expect_absent(KEYS, key_key(instance_id, &id)).put(
            KEYS,
            key_key(instance_id, &id),
            serde_json::to_vec(&record)?,
        );
        for a in &record.aliases {
            let k = format!("{instance_id}/{a}");
            b.expect_absent(ALIASES, k.clone())
                .put(ALIASES, k, serde_json::to_vec(&id)?);
        }
        self.meta().commit(b).await.map_err(|e| match e {
            coffer_storage::Error::Conflict => {
                KmsError::conflict("ALIAS_EXISTS_ERR", "an alias is already used by another key")
            }
            e => e.into(),
        })?;
        Ok(record)
    }

    /// A key with its metadata (and, for a standard key, its payload).
    pub async fn get_key(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
    ) -> Result<(KeyRecord, Option<zeroize::Zeroizing<Vec<u8>>>)> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsRead, &instance, Some(&record.id))
            .await?;
        let payload = match (record.extractable, record.state, record.current_version()) {
            (true, KeyState::Active | KeyState::Suspended | KeyState::Deactivated, Some(v)) => {
                Some(self.open_version(instance_id, &record.id, v).await?)
            }
            _ => None,
        };
        Ok(((*record).clone(), payload))
    }

    pub async fn key_metadata(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsReadMetadata, &instance, Some(&record.id))
            .await?;
        Ok((*record).clone())
    }

    /// The state of a key, for a service that uses it (`KmsReadMetadata`); purged keys are
    /// not found.
    pub async fn key_state(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<KeyState> {
        let instance = self.kms_instance(instance_id).await?;
        let record = self.key_cached(instance_id, id).await?;
        self.authorize(caller, Action::KmsReadMetadata, &instance, Some(&record.id))
            .await?;
        Ok(record.effective_state(now()))
    }

    pub async fn list_keys(
        &self,
        caller: &Principal,
        instance_id: &str,
        q: &KeyListQuery,
    ) -> Result<KeyPage> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsList, &instance, None).await?;
        // Like every KMS call, listing needs an initialized instance (spec §5); a sealed one
        // may still list, as metadata needs no master key.
        if !self
            .instance_record(instance_id)
            .await?
            .is_some_and(|r| r.initialized)
        {
            return Err(KmsError::NotInitialized);
        }
        let t = now();
        let default_states = [
            KeyState::PreActivation,
            KeyState::Active,
            KeyState::Suspended,
            KeyState::Deactivated,
        ];
        let states: Vec<KeyState> = q.states.clone().unwrap_or_else(|| default_states.to_vec());
        let entries = self
            .meta()
            .scan(
                KEYS,
                KeyRange::prefix(format!("{instance_id}/").as_bytes()),
                usize::MAX,
            )
            .await?;
        let mut keys: Vec<KeyRecord> = Vec::new();
        for (_, raw) in entries {
            let r: KeyRecord = serde_json::from_slice(&raw)?;
            let search_ok = q.search.as_ref().is_none_or(|s| {
                let s = s.to_lowercase();
                r.name.to_lowercase().contains(&s) || r.aliases.iter().any(|a| a.to_lowercase().contains(&s))
            });
            if states.contains(&r.effective_state(t))
                && q.extractable.is_none_or(|e| e == r.extractable)
                && q.key_ring.as_ref().is_none_or(|ring| *ring == r.key_ring)
                && search_ok
            {
                keys.push(r);
            }
        }
        keys.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let total = keys.len();
        let keys = keys.into_iter().skip(q.offset).take(q.limit).collect();
        Ok(KeyPage { keys, total })
    }

    /// Moves a key to another key ring (the only mutable attribute).
    pub async fn patch_key_ring(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        ring: &str,
    ) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsPatch, &instance, Some(&record.id))
            .await?;
        if record.state == KeyState::Destroyed {
            return Err(KmsError::Deleted);
        }
        if ring != "default"
            && self
                .load::<KeyRing>(KEY_RINGS, &format!("{instance_id}/{ring}"))
                .await?
                .is_none()
        {
            return Err(KmsError::not_found(
                "KEY_RING_NOT_FOUND_ERR",
                format!("key ring {ring:?} does not exist"),
            ));
        }
        let ring = ring.to_owned();
        self.update_key(instance_id, &record.id, |r, _| {
            r.key_ring = ring.clone();
            Ok(())
        })
        .await
    }

    pub async fn create_alias(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        alias: &str,
    ) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsManageAliases, &instance, Some(&record.id))
            .await?;
        check_alias(alias)?;
        if record.aliases.iter().any(|a| a == alias) {
            return Ok((*record).clone());
        }
        if record.aliases.len() >= 5 {
            return Err(KmsError::conflict(
                "KEY_ALIAS_QUOTA_ERR",
                "a key has at most 5 aliases",
            ));
        }
        let (alias_s, key_id) = (alias.to_owned(), record.id.clone());
        self.update_key(instance_id, &record.id, |r, b| {
            let k = format!("{instance_id}/{alias_s}");
            b.expect_absent(ALIASES, k.clone())
                .put(ALIASES, k, serde_json::to_vec(&key_id)?);
            r.aliases.push(alias_s.clone());
            Ok(())
        })
        .await
        .map_err(|e| match e {
            KmsError::Storage(coffer_storage::Error::Conflict) => {
                KmsError::conflict("ALIAS_EXISTS_ERR", "the alias is taken")
            }
            e => e,
        })
    }

    pub async fn delete_alias(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        alias: &str,
    ) -> Result<()> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsManageAliases, &instance, Some(&record.id))
            .await?;
        if !record.aliases.iter().any(|a| a == alias) {
            return Err(KmsError::not_found(
                "ALIAS_NOT_FOUND_ERR",
                format!("the key has no alias {alias:?}"),
            ));
        }
        let alias_s = alias.to_owned();
        self.update_key(instance_id, &record.id, |r, b| {
            b.delete(ALIASES, format!("{instance_id}/{alias_s}"));
            r.aliases.retain(|a| *a != alias_s);
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn list_key_rings(&self, caller: &Principal, instance_id: &str) -> Result<Vec<KeyRing>> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsList, &instance, None).await?;
        let mut rings = vec![KeyRing {
            id: "default".into(),
            created: instance.created,
            created_by: String::new(),
        }];
        for (_, raw) in self
            .meta()
            .scan(
                KEY_RINGS,
                KeyRange::prefix(format!("{instance_id}/").as_bytes()),
                usize::MAX,
            )
            .await?
        {
            rings.push(serde_json::from_slice(&raw)?);
        }
        Ok(rings)
    }

    pub async fn create_key_ring(
        &self,
        caller: &Principal,
        instance_id: &str,
        ring: &str,
    ) -> Result<KeyRing> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsManageKeyRings, &instance, None)
            .await?;
        let ok =
            (2..=100).contains(&ring.len()) && ring.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok || ring == "default" {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "key_ring_id",
                "a key ring id is 2 to 100 letters, digits or '-'",
            ));
        }
        let record = KeyRing {
            id: ring.to_owned(),
            created: now(),
            created_by: caller.iam_id().unwrap_or_default().to_owned(),
        };
        let mut b = Batch::new();
        let k = format!("{instance_id}/{ring}");
        b.expect_absent(KEY_RINGS, k.clone())
            .put(KEY_RINGS, k, serde_json::to_vec(&record)?);
        self.meta().commit(b).await.map_err(|e| match e {
            coffer_storage::Error::Conflict => {
                KmsError::conflict("KEY_RING_EXISTS_ERR", "the key ring exists")
            }
            e => e.into(),
        })?;
        Ok(record)
    }

    /// Deletes an empty key ring; with `force`, its keys move to `default` first... only
    /// destroyed keys may remain otherwise.
    pub async fn delete_key_ring(
        &self,
        caller: &Principal,
        instance_id: &str,
        ring: &str,
        force: bool,
    ) -> Result<()> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsManageKeyRings, &instance, None)
            .await?;
        let k = format!("{instance_id}/{ring}");
        if self.load::<KeyRing>(KEY_RINGS, &k).await?.is_none() {
            return Err(KmsError::not_found(
                "KEY_RING_NOT_FOUND_ERR",
                format!("key ring {ring:?} does not exist"),
            ));
        }
        let entries = self
            .meta()
            .scan(
                KEYS,
                KeyRange::prefix(format!("{instance_id}/").as_bytes()),
                usize::MAX,
            )
            .await?;
        for (_, raw) in entries {
            let r: KeyRecord = serde_json::from_slice(&raw)?;
            if r.key_ring == ring && (r.state != KeyState::Destroyed || !force) {
                return Err(KmsError::conflict(
                    "KEY_RING_NOT_EMPTY_ERR",
                    "the key ring still holds keys",
                ));
            }
        }
        let mut b = Batch::new();
        b.delete(KEY_RINGS, k);
        self.meta().commit(b).await?;
        Ok(())
    }
}
