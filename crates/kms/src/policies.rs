//! Key policies (rotation, dual authorization) and instance policies (rotation,
//! dualAuthDelete, keyCreateImportAccess, allowedIP, allowedNetwork, metrics).

use coffer_iam::{Action, Principal};
use coffer_storage::{Batch, KeyRange};
use serde_json::Value;

use crate::model::{InstancePolicy, KeyRecord, PolicyMeta, RotationPolicy};
use crate::store::{INSTANCE_POLICIES, Kms};
use crate::{KmsError, Result, now};

/// A key policy change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPolicy {
    Rotation(RotationPolicy),
    DualAuthDelete { enabled: bool },
}

pub const INSTANCE_POLICY_TYPES: [&str; 6] = [
    "rotation",
    "dualAuthDelete",
    "keyCreateImportAccess",
    "allowedIP",
    "allowedNetwork",
    "metrics",
];

pub(crate) fn check_interval(months: u32) -> Result<()> {
    if (1..=12).contains(&months) {
        Ok(())
    } else {
        Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "interval_month",
            "interval_month is 1 to 12",
        ))
    }
}

fn meta_now(previous: Option<&PolicyMeta>, who: &str) -> PolicyMeta {
    let t = now();
    match previous {
        Some(p) => PolicyMeta {
            updated: t,
            updated_by: who.to_owned(),
            ..p.clone()
        },
        None => PolicyMeta {
            id: uuid::Uuid::new_v4().to_string(),
            created: t,
            created_by: who.to_owned(),
            updated: t,
            updated_by: who.to_owned(),
        },
    }
}

fn bool_attr(attrs: &Value, name: &str, default: bool) -> bool {
    attrs.get(name).and_then(Value::as_bool).unwrap_or(default)
}

impl Kms {
    pub async fn set_key_policy(
        &self,
        caller: &Principal,
        instance_id: &str,
        id: &str,
        policy: KeyPolicy,
    ) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsWritePolicies, &instance, Some(&record.id))
            .await?;
        if record.state == crate::KeyState::Destroyed {
            return Err(KmsError::Deleted);
        }
        let who = caller.iam_id().unwrap_or_default().to_owned();
        match &policy {
            KeyPolicy::Rotation(r) => {
                if !record.is_root() {
                    return Err(KmsError::invalid(
                        "KEY_ROOT_REQ_ERR",
                        "rotation policies are for root keys",
                    ));
                }
                check_interval(r.interval_month)?;
            }
            KeyPolicy::DualAuthDelete { .. } => {}
        }
        self.update_key(instance_id, &record.id, |r, _| {
            match &policy {
                KeyPolicy::Rotation(p) => {
                    r.rotation_meta = Some(meta_now(r.rotation_meta.as_ref(), &who));
                    r.rotation = Some(p.clone());
                }
                KeyPolicy::DualAuthDelete { enabled } => {
                    r.dual_auth_meta = Some(meta_now(r.dual_auth_meta.as_ref(), &who));
                    r.dual_auth.enabled = *enabled;
                    if !enabled {
                        r.dual_auth.set_by = None;
                        r.dual_auth.set_until = None;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn key_policies(&self, caller: &Principal, instance_id: &str, id: &str) -> Result<KeyRecord> {
        let instance = self.kms_instance(instance_id).await?;
        let (record, _) = self.key(instance_id, id).await?;
        self.authorize(caller, Action::KmsReadPolicies, &instance, Some(&record.id))
            .await?;
        Ok((*record).clone())
    }

    /// Sets one instance policy (it applies to keys created afterwards).
    pub async fn set_instance_policy(
        &self,
        caller: &Principal,
        instance_id: &str,
        policy_type: &str,
        enabled: bool,
        attributes: Value,
    ) -> Result<InstancePolicy> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsWriteInstancePolicies, &instance, None)
            .await?;
        let attributes = validate_instance_policy(policy_type, enabled, attributes)?;
        let k = format!("{instance_id}/{policy_type}");
        let previous = self.load::<InstancePolicy>(INSTANCE_POLICIES, &k).await?;
        let who = caller.iam_id().unwrap_or_default();
        let policy = InstancePolicy {
            policy_type: policy_type.to_owned(),
            enabled,
            attributes,
            meta: meta_now(previous.as_ref().map(|(p, _)| &p.meta), who),
        };
        let mut b = Batch::new();
        b.expect(INSTANCE_POLICIES, k.clone(), previous.map(|(_, raw)| raw))
            .put(INSTANCE_POLICIES, k, serde_json::to_vec(&policy)?);
        self.meta().commit(b).await?;
        Ok(policy)
    }

    pub async fn instance_policies(
        &self,
        caller: &Principal,
        instance_id: &str,
    ) -> Result<Vec<InstancePolicy>> {
        let instance = self.kms_instance(instance_id).await?;
        self.authorize(caller, Action::KmsReadInstancePolicies, &instance, None)
            .await?;
        self.instance_policies_raw(instance_id).await
    }

    async fn instance_policies_raw(&self, instance_id: &str) -> Result<Vec<InstancePolicy>> {
        self.meta()
            .scan(
                INSTANCE_POLICIES,
                KeyRange::prefix(format!("{instance_id}/").as_bytes()),
                usize::MAX,
            )
            .await?
            .into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    }

    async fn instance_policy(&self, instance_id: &str, policy_type: &str) -> Result<Option<InstancePolicy>> {
        Ok(self
            .load::<InstancePolicy>(INSTANCE_POLICIES, &format!("{instance_id}/{policy_type}"))
            .await?
            .map(|(p, _)| p))
    }

    /// The rotation policy and dual authorization new keys get from their instance.
    pub(crate) async fn instance_defaults(
        &self,
        instance_id: &str,
    ) -> Result<(Option<RotationPolicy>, bool)> {
        let rotation = self
            .instance_policy(instance_id, "rotation")
            .await?
            .filter(|p| p.enabled)
            .map(|p| RotationPolicy {
                enabled: true,
                interval_month: p
                    .attributes
                    .get("interval_month")
                    .and_then(Value::as_u64)
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(1),
            });
        let dual = self
            .instance_policy(instance_id, "dualAuthDelete")
            .await?
            .is_some_and(|p| p.enabled);
        Ok((rotation, dual))
    }

    /// Enforces `keyCreateImportAccess`.
    pub(crate) async fn check_create_import_access(
        &self,
        instance_id: &str,
        root: bool,
        imported: bool,
        with_token: bool,
    ) -> Result<()> {
        let Some(p) = self
            .instance_policy(instance_id, "keyCreateImportAccess")
            .await?
            .filter(|p| p.enabled)
        else {
            return Ok(());
        };
        let a = &p.attributes;
        let allowed = match (root, imported) {
            (true, false) => bool_attr(a, "create_root_key", true),
            (false, false) => bool_attr(a, "create_standard_key", true),
            (true, true) => bool_attr(a, "import_root_key", true),
            (false, true) => bool_attr(a, "import_standard_key", true),
        };
        if !allowed || (imported && bool_attr(a, "enforce_token", false) && !with_token) {
            return Err(KmsError::conflict(
                "KEY_CREATE_IMPORT_ACCESS_ERR",
                "the instance's keyCreateImportAccess policy does not allow this",
            ));
        }
        Ok(())
    }

    /// The CIDRs an `allowedIP` policy restricts the instance to, if one is enabled.
    pub async fn allowed_ips(&self, instance_id: &str) -> Result<Option<Vec<String>>> {
        Ok(self
            .instance_policy(instance_id, "allowedIP")
            .await?
            .filter(|p| p.enabled)
            .map(|p| {
                p.attributes
                    .get("allowed_ip")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            }))
    }
}

fn validate_instance_policy(policy_type: &str, enabled: bool, attributes: Value) -> Result<Value> {
    let attrs = if attributes.is_null() {
        Value::Object(Default::default())
    } else {
        attributes
    };
    if !attrs.is_object() {
        return Err(KmsError::field(
            "INVALID_FIELD_ERR",
            "attributes",
            "attributes is an object",
        ));
    }
    match policy_type {
        "rotation" => {
            if enabled {
                let m = attrs.get("interval_month").and_then(Value::as_u64).unwrap_or(1);
                check_interval(u32::try_from(m).unwrap_or(0))?;
            }
        }
        "allowedIP" => {
            let list = attrs.get("allowed_ip").and_then(Value::as_array);
            let valid = list.is_some_and(|l| {
                l.iter().all(|v| {
                    v.as_str()
                        .is_some_and(|s| crate::policies::parse_cidr(s).is_some())
                })
            });
            if enabled && !valid {
                return Err(KmsError::field(
                    "INVALID_FIELD_ERR",
                    "allowed_ip",
                    "allowed_ip is a list of CIDRs",
                ));
            }
        }
        "allowedNetwork" => {
            let n = attrs
                .get("allowed_network")
                .and_then(Value::as_str)
                .unwrap_or("public-and-private");
            if !["public-and-private", "private-only"].contains(&n) {
                return Err(KmsError::field(
                    "INVALID_FIELD_ERR",
                    "allowed_network",
                    "public-and-private or private-only",
                ));
            }
        }
        "dualAuthDelete" | "keyCreateImportAccess" | "metrics" => {}
        other => {
            return Err(KmsError::field(
                "INVALID_FIELD_ERR",
                "policy",
                format!("unknown instance policy {other:?}"),
            ));
        }
    }
    Ok(attrs)
}

/// Parses `a.b.c.d/n` (or a bare address) into (address, prefix length).
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse().ok()?),
        None => (s, if s.contains(':') { 128 } else { 32 }),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// Whether `ip` lies in any of `cidrs`.
pub fn ip_allowed(ip: std::net::IpAddr, cidrs: &[String]) -> bool {
    cidrs
        .iter()
        .filter_map(|c| parse_cidr(c))
        .any(|(net, len)| match (net, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len))
                };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let list = vec!["10.0.0.0/8".to_owned(), "127.0.0.1".to_owned()];
        assert!(ip_allowed("10.1.2.3".parse().unwrap(), &list));
        assert!(ip_allowed("127.0.0.1".parse().unwrap(), &list));
        assert!(!ip_allowed("127.0.0.2".parse().unwrap(), &list));
        assert!(parse_cidr("300.0.0.1/8").is_none());
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }
}
