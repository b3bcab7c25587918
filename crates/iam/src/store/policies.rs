//! Policies: validated on the way in, indexed by subject for the decision function.

use std::sync::Arc;

use coffer_storage::{Batch, KeyRange};

use super::{Iam, POLICIES, POLICIES_BY_SUBJECT, new_uuid};
use crate::action::Action;
use crate::eval::{Decision, Principal, Resource, eval};
use crate::model::ServiceKind;
use crate::policy::{Attributes, Policy, PolicyInput, PolicyRole, PolicyType, RESOURCE_ATTRIBUTES};
use crate::role::Role;
use crate::{Error, Result};

/// Services a policy may name besides the instance kinds: IAM's own.
const ACCOUNT_SERVICES: [&str; 2] = ["iam-identity", "iam-access-management"];

fn subject_key(p: &Policy) -> Option<String> {
    let s = p.subject()?;
    match p.kind {
        PolicyType::Access => s.get("iam_id").map(|id| format!("id:{id}/{}", p.id)),
        PolicyType::Authorization => s.get("serviceName").map(|svc| format!("svc:{svc}/{}", p.id)),
    }
}

fn rfc3339_now() -> String {
    // Seconds precision, as IBM answers.
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn known_service(name: &str) -> bool {
    ServiceKind::from_name(name).is_some() || ACCOUNT_SERVICES.contains(&name)
}

fn check_operators(attrs: &Attributes) -> Result<()> {
    for a in &attrs.attributes {
        match a.operator.as_deref() {
            None | Some("stringEquals") | Some("stringMatch") => {}
            Some(op) => {
                return Err(Error::invalid(format!(
                    "unsupported operator {op:?} on attribute {}",
                    a.name
                )));
            }
        }
        if a.value.is_empty() {
            return Err(Error::invalid(format!("attribute {} has an empty value", a.name)));
        }
    }
    Ok(())
}

impl Iam {
    /// Validates and stores a policy created by `created_by` in `account`. Its `href` is
    /// relative; the API makes it absolute.
    pub async fn create_policy(&self, input: PolicyInput, account: &str, created_by: &str) -> Result<Policy> {
        let (subject, resource) = match (input.subjects.as_slice(), input.resources.as_slice()) {
            ([s], [r]) => (s, r),
            _ => {
                return Err(Error::invalid(
                    "a policy has exactly one subject and one resource",
                ));
            }
        };
        if input.roles.is_empty() {
            return Err(Error::invalid("a policy grants at least one role"));
        }
        check_operators(subject)?;
        check_operators(resource)?;
        self.check_resource(resource, account).await?;
        match input.kind {
            PolicyType::Access => self.check_access_subject(subject, account).await?,
            PolicyType::Authorization => {
                self.check_authorization_subject(subject, resource, account)
                    .await?
            }
        }
        let service = resource.get("serviceName");
        let roles = check_roles(&input.roles, input.kind, service)?;

        let id = new_uuid();
        let stamp = rfc3339_now();
        let policy = Policy {
            href: format!("/v1/policies/{id}"),
            id,
            kind: input.kind,
            description: input.description,
            subjects: input.subjects,
            roles,
            resources: input.resources,
            created_at: stamp.clone(),
            created_by_id: created_by.to_owned(),
            last_modified_at: stamp,
            last_modified_by_id: created_by.to_owned(),
            state: "active".into(),
        };
        let index =
            subject_key(&policy).ok_or_else(|| Error::invalid("the subject names no identity or service"))?;
        let mut b = Batch::new();
        Self::insert(&mut b, POLICIES, &policy.id, &policy)?;
        b.put(POLICIES_BY_SUBJECT, index, Vec::new());
        let done = self.commit_new(b).await;
        self.policies.changed();
        done?;
        Ok(policy)
    }

    async fn check_resource(&self, r: &Attributes, account: &str) -> Result<()> {
        if let Some(unknown) = r
            .attributes
            .iter()
            .find(|a| !RESOURCE_ATTRIBUTES.contains(&a.name.as_str()))
        {
            return Err(Error::invalid(format!(
                "unsupported resource attribute {:?}",
                unknown.name
            )));
        }
        match r.get("accountId") {
            Some(a) if a == account => {}
            Some(_) => return Err(Error::invalid("the resource's accountId is not your account")),
            None => return Err(Error::invalid("the resource must name its accountId")),
        }
        let service = r.get("serviceName");
        if let Some(s) = service
            && !known_service(s)
        {
            return Err(Error::invalid(format!("unknown service {s:?}")));
        }
        if let Some(inst) = r.get("serviceInstance") {
            let Some(s) = service else {
                return Err(Error::invalid("a serviceInstance needs its serviceName"));
            };
            self.check_instance(inst, s, account).await?;
        }
        if let Some(t) = r.get("resourceType") {
            let ok = matches!(
                (service, t),
                (Some("cloud-object-storage"), "bucket") | (Some("kms" | "hs-crypto"), "key")
            );
            if !ok || r.get("serviceInstance").is_none() || r.get("resource").is_none() {
                return Err(Error::invalid(
                    "resourceType is bucket (object storage) or key (key management), with a serviceInstance and a resource",
                ));
            }
        } else if r.get("resource").is_some() {
            return Err(Error::invalid("a resource needs its resourceType"));
        }
        Ok(())
    }

    async fn check_instance(&self, id: &str, service: &str, account: &str) -> Result<()> {
        match self.instance(id).await {
            Ok(i) if i.account == account && i.service.name() == service => Ok(()),
            Ok(_) | Err(Error::NotFound) => Err(Error::invalid(format!(
                "no {service} instance {id:?} exists in this account"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn check_access_subject(&self, s: &Attributes, account: &str) -> Result<()> {
        let [attr] = s.attributes.as_slice() else {
            return Err(Error::invalid(
                "an access policy's subject is one iam_id attribute",
            ));
        };
        if attr.name != "iam_id" {
            return Err(Error::invalid(format!(
                "unsupported subject attribute {:?}",
                attr.name
            )));
        }
        match self.identity_account(&attr.value).await {
            Ok(a) if a == account => Ok(()),
            Ok(_) | Err(Error::NotFound) => Err(Error::invalid(format!(
                "no identity {:?} in this account",
                attr.value
            ))),
            Err(e) => Err(e),
        }
    }

    async fn check_authorization_subject(&self, s: &Attributes, r: &Attributes, account: &str) -> Result<()> {
        if let Some(a) = s
            .attributes
            .iter()
            .find(|a| !["accountId", "serviceName", "serviceInstance"].contains(&a.name.as_str()))
        {
            return Err(Error::invalid(format!(
                "unsupported subject attribute {:?}",
                a.name
            )));
        }
        if s.get("accountId") != Some(account) {
            return Err(Error::invalid("the subject must name your accountId"));
        }
        let source = s
            .get("serviceName")
            .ok_or_else(|| Error::invalid("the subject must name a serviceName"))?;
        if ServiceKind::from_name(source).is_none() {
            return Err(Error::invalid(format!("unknown source service {source:?}")));
        }
        if let Some(inst) = s.get("serviceInstance") {
            self.check_instance(inst, source, account).await?;
        }
        if r.get("serviceName").is_none() {
            return Err(Error::invalid(
                "an authorization policy's resource must name a serviceName",
            ));
        }
        Ok(())
    }

    pub async fn policy(&self, id: &str) -> Result<Policy> {
        self.load(POLICIES, id).await
    }

    /// Policies of an account, optionally of one type or naming one identity.
    pub async fn list_policies(
        &self,
        account: &str,
        kind: Option<PolicyType>,
        iam_id: Option<&str>,
    ) -> Result<Vec<Policy>> {
        let all: Vec<Policy> = self.load_all(POLICIES, "").await?;
        Ok(all
            .into_iter()
            .filter(|p| p.resource().and_then(|r| r.get("accountId")) == Some(account))
            .filter(|p| kind.is_none_or(|k| p.kind == k))
            .filter(|p| iam_id.is_none_or(|i| p.subject().and_then(|s| s.get("iam_id")) == Some(i)))
            .collect())
    }

    pub(crate) fn delete_policy_ops(b: &mut Batch, p: &Policy) {
        b.delete(POLICIES, p.id.as_str());
        if let Some(k) = subject_key(p) {
            b.delete(POLICIES_BY_SUBJECT, k);
        }
    }

    pub async fn delete_policy(&self, id: &str) -> Result<()> {
        let p = self.policy(id).await?;
        let mut b = Batch::new();
        Self::delete_policy_ops(&mut b, &p);
        let done = self.meta.commit(b).await;
        self.policies.changed();
        done?;
        Ok(())
    }

    async fn policies_by_index(&self, prefix: &str) -> Result<Arc<[Policy]>> {
        let epoch = match self.policies.get(prefix) {
            Ok(hit) => return Ok(hit),
            Err(epoch) => epoch,
        };
        let read: Arc<[Policy]> = self.read_policies_by_index(prefix).await?.into();
        self.policies.put(epoch, prefix, read.clone());
        Ok(read)
    }

    async fn read_policies_by_index(&self, prefix: &str) -> Result<Vec<Policy>> {
        let keys = self
            .meta
            .scan(
                POLICIES_BY_SUBJECT,
                KeyRange::prefix(prefix.as_bytes()),
                usize::MAX,
            )
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for (k, _) in keys {
            let id = String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned();
            match self.policy(&id).await {
                Ok(p) => out.push(p),
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The policies naming `iam_id`, read from the store (for changing them).
    pub(crate) async fn policies_naming(&self, iam_id: &str) -> Result<Vec<Policy>> {
        self.read_policies_by_index(&format!("id:{iam_id}/")).await
    }

    /// The policies whose subject is this principal (the input of [`eval`]).
    pub async fn policies_for(&self, principal: &Principal) -> Result<Arc<[Policy]>> {
        match principal {
            Principal::Identity { iam_id, .. } => self.policies_by_index(&format!("id:{iam_id}/")).await,
            Principal::Service { service, .. } => {
                self.policies_by_index(&format!("svc:{}/", service.name())).await
            }
        }
    }

    /// Looks up the principal's policies and decides.
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Result<Decision> {
        let policies = self.policies_for(principal).await?;
        Ok(eval(principal, action, resource, &policies))
    }
}

fn check_roles(roles: &[PolicyRole], kind: PolicyType, service: Option<&str>) -> Result<Vec<PolicyRole>> {
    roles
        .iter()
        .map(|r| {
            let role = Role::from_role_id(&r.role_id)
                .ok_or_else(|| Error::invalid(format!("unknown role {:?}", r.role_id)))?;
            if kind == PolicyType::Authorization && role.is_platform() {
                return Err(Error::invalid(
                    "an authorization policy grants service roles only",
                ));
            }
            if let Some(only) = role.only_for() {
                let fits = service
                    .and_then(ServiceKind::from_name)
                    .is_some_and(|s| only.contains(&s));
                if !fits {
                    return Err(Error::invalid(format!(
                        "the role {} does not exist for this service",
                        role.name()
                    )));
                }
            }
            Ok(PolicyRole {
                role_id: r.role_id.clone(),
                display_name: Some(role.name().to_owned()),
                description: Some(role.description().to_owned()),
            })
        })
        .collect()
}
