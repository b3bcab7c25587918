//! Registrations: which service resources (buckets) use which key. Services write them;
//! people read them.

use coffer_iam::{Action, Crn, Principal};
use coffer_storage::{Batch, KeyRange};

use crate::model::{KeyState, Registration};
use crate::store::{Kms, PARKED_REGISTRATIONS, REGISTRATIONS};
use crate::{KmsError, Result, now};

/// What a service says about a registration.
#[derive(Debug, Clone, Default)]
pub struct RegistrationInput {
    pub prevent_key_deletion: Option<bool>,
    pub description: Option<String>,
    pub metadata: Option<String>,
    pub key_version: Option<String>,
}

pub(crate) fn reg_key(instance: &str, key_id: &str, crn: &str) -> String {
    format!("{instance}/{key_id}/{crn}")
}

/// `*` in the last segments of a CRN query matches anything with that prefix.
fn crn_matches(query: &str, crn: &str) -> bool {
    let (q, c): (Vec<&str>, Vec<&str>) = (query.split(':').collect(), crn.split(':').collect());
    q.len() == c.len()
        && q.iter().zip(&c).all(|(q, c)| match q.strip_suffix('*') {
            Some(prefix) => c.starts_with(prefix),
            None => q == c,
        })
}

impl Kms {
    pub(crate) async fn registrations_of(&self, instance: &str, key_id: &str) -> Result<Vec<Registration>> {
        self.registrations_in(REGISTRATIONS, instance, key_id).await
    }

    /// The registrations of a key held in `space` (live or parked).
    pub(crate) async fn registrations_in(
        &self,
        space: &'static str,
        instance: &str,
        key_id: &str,
    ) -> Result<Vec<Registration>> {
        let prefix = format!("{instance}/{key_id}/");
        self.meta()
            .scan(space, KeyRange::prefix(prefix.as_bytes()), usize::MAX)
            .await?
            .into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    }

    /// A service may only register its own resources.
    fn check_owner(caller: &Principal, crn: &str) -> Result<()> {
        let parsed: Crn = crn
            .parse()
            .map_err(|_| KmsError::field("INVALID_FIELD_ERR", "resourceCrn", "not a CRN"))?;
        match caller {
            Principal::Service {
                service, instance, ..
            } if parsed.service == service.name() && parsed.instance == *instance => Ok(()),
            Principal::Service { .. } => Err(KmsError::Forbidden {
                code: "RESOURCE_OWNER_ERR",
                message: "a service may only register its own resources".into(),
            }),
            Principal::Identity { .. } => Err(KmsError::Forbidden {
                code: "SERVICE_ONLY_ERR",
                message: "Only services may register resources".into(),
            }),
        }
    }

    /// Creates (or, with `replace`, replaces) a registration of `crn` on a key.
    pub async fn put_registration(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        crn: &str,
        input: RegistrationInput,
        replace: bool,
    ) -> Result<Registration> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsWriteRegistration, &instance, Some(&record.id))
            .await?;
        Self::check_owner(caller, crn)?;
        if !record.is_root() {
            return Err(KmsError::unprocessable(
                "KEY_ROOT_REQ_REG_ERR",
                "only root keys take registrations",
            ));
        }
        if record.effective_state(now()) != KeyState::Active {
            return Err(KmsError::unprocessable(
                "KEY_INVALID_STATE_ERR",
                "registrations need an active key",
            ));
        }
        let k = reg_key(instance_id, &record.id, crn);
        let existing = self.load::<Registration>(REGISTRATIONS, &k).await?;
        if existing.is_some() && !replace {
            return Err(KmsError::conflict(
                "REGISTRATION_EXISTS_ERR",
                "the resource is already registered on this key",
            ));
        }
        let position = |v: &str| record.versions.iter().position(|x| x.id == v);
        let version = match &input.key_version {
            Some(v) => {
                let new_pos = position(v)
                    .ok_or_else(|| KmsError::unprocessable("KEY_VERSION_INVALID", "no such key version"))?;
                if existing
                    .as_ref()
                    .and_then(|(e, _)| position(&e.key_version))
                    .is_some_and(|old| new_pos < old)
                {
                    return Err(KmsError::unprocessable(
                        "KEY_VERSION_INVALID",
                        "a registration cannot go back to an older key version",
                    ));
                }
                v.clone()
            }
            None => record.current_version().map(|v| v.id.clone()).unwrap_or_default(),
        };
        let who = caller_name(caller);
        let t = now();
        let reg = Registration {
            key_id: record.id.clone(),
            instance: instance_id.to_owned(),
            resource_crn: crn.to_owned(),
            prevent_key_deletion: input.prevent_key_deletion.unwrap_or(false),
            description: input.description,
            metadata: input.metadata,
            key_version: version,
            created: existing.as_ref().map_or(t, |(e, _)| e.created),
            created_by: existing
                .as_ref()
                .map_or_else(|| who.clone(), |(e, _)| e.created_by.clone()),
            updated: t,
            updated_by: who,
        };
        let mut b = Batch::new();
        b.expect(REGISTRATIONS, k.clone(), existing.map(|(_, raw)| raw))
            .put(REGISTRATIONS, k, serde_json::to_vec(&reg)?);
        self.meta().commit(b).await.map_err(|e| match e {
            coffer_storage::Error::Conflict => {
                KmsError::conflict("REGISTRATION_EXISTS_ERR", "the registration changed meanwhile")
            }
            e => e.into(),
        })?;
        Ok(reg)
    }

    /// Updates some fields of an existing registration.
    pub async fn patch_registration(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        crn: &str,
        input: RegistrationInput,
    ) -> Result<Registration> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        // Who may write comes before whether the registration exists: users learn nothing.
        self.authorize(caller, Action::KmsWriteRegistration, &instance, Some(&record.id))
            .await?;
        let (existing, _) = self
            .load::<Registration>(REGISTRATIONS, &reg_key(instance_id, &record.id, crn))
            .await?
            .ok_or_else(|| KmsError::not_found("REGISTRATION_NOT_FOUND_ERR", "no such registration"))?;
        let merged = RegistrationInput {
            prevent_key_deletion: input.prevent_key_deletion.or(Some(existing.prevent_key_deletion)),
            description: input.description.or(existing.description),
            metadata: input.metadata.or(existing.metadata),
            key_version: input.key_version.or(Some(existing.key_version)),
        };
        self.put_registration(caller, instance_id, id, crn, merged, true)
            .await
    }

    pub async fn delete_registration(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        crn: &str,
    ) -> Result<()> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsWriteRegistration, &instance, Some(&record.id))
            .await?;
        Self::check_owner(caller, crn)?;
        let k = reg_key(instance_id, &record.id, crn);
        // A registration parked by a forced key delete goes too: a resource deleted meanwhile
        // must not come back with a restore.
        let live = self.load::<Registration>(REGISTRATIONS, &k).await?.is_some();
        let parked = self
            .load::<Registration>(PARKED_REGISTRATIONS, &k)
            .await?
            .is_some();
        if !live && !parked {
            return Err(KmsError::not_found(
                "REGISTRATION_NOT_FOUND_ERR",
                "no such registration",
            ));
        }
        let mut b = Batch::new();
        b.delete(REGISTRATIONS, k.clone()).delete(PARKED_REGISTRATIONS, k);
        self.meta().commit(b).await?;
        Ok(())
    }

    /// Registrations of one key, or of every key of the instance, optionally matching a CRN
    /// query with `*` wildcards and a `preventKeyDeletion` value.
    pub async fn list_registrations(
        &self,
        caller: &Principal,
        instance_id: &str,
        key: Option<&str>,
        crn_query: Option<&str>,
        prevent: Option<bool>,
    ) -> Result<Vec<Registration>> {
        let instance = self.kms_instance(instance_id).await?;
        let key_id = match key {
            Some(k) => Some(self.key(instance_id, k).await?.0.id.clone()),
            None => None,
        };
        self.authorize(caller, Action::KmsListRegistrations, &instance, key_id.as_deref())
            .await?;
        let prefix = match &key_id {
            Some(k) => format!("{instance_id}/{k}/"),
            None => format!("{instance_id}/"),
        };
        let all: Vec<Registration> = self
            .meta()
            .scan(REGISTRATIONS, KeyRange::prefix(prefix.as_bytes()), usize::MAX)
            .await?
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v))
            .collect::<Result<_, _>>()?;
        Ok(all
            .into_iter()
            .filter(|r| crn_query.is_none_or(|q| crn_matches(q, &r.resource_crn)))
            .filter(|r| prevent.is_none_or(|p| p == r.prevent_key_deletion))
            .collect())
    }
}

pub(crate) fn caller_name(caller: &Principal) -> String {
    match caller {
        Principal::Identity { iam_id, .. } => iam_id.clone(),
        Principal::Service {
            service, instance, ..
        } => format!("{}:{instance}", service.name()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crn_wildcards() {
        let crn = "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:inst:bucket:logs";
        assert!(super::crn_matches(
            "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:inst:*:*",
            crn
        ));
        assert!(super::crn_matches(
            "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:inst:bucket:lo*",
            crn
        ));
        assert!(!super::crn_matches(
            "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:other:*:*",
            crn
        ));
        assert!(!super::crn_matches("crn:v1:*", crn));
    }
}
