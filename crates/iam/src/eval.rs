//! The decision function: `(principal, action, resource, policies) → allow | deny(reason)`.
//!
//! Pure and total: no I/O, default deny. The caller supplies the policies that name the
//! principal (see `Iam::policies_for`).

use std::fmt;

use crate::action::Action;
use crate::model::ServiceKind;
use crate::policy::{Attributes, Policy, PolicyType, attribute_matches};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A person, or a service ID, authenticated by a token or an HMAC credential.
    Identity { iam_id: String, account: String },
    /// A service instance acting for itself (object storage using a root key).
    Service {
        service: ServiceKind,
        instance: String,
        account: String,
    },
}

impl Principal {
    pub fn account(&self) -> &str {
        match self {
            Principal::Identity { account, .. } | Principal::Service { account, .. } => account,
        }
    }

    pub fn iam_id(&self) -> Option<&str> {
        match self {
            Principal::Identity { iam_id, .. } => Some(iam_id),
            Principal::Service { .. } => None,
        }
    }
}

/// What is acted on. `None` fields are account-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub account: String,
    pub service: Option<String>,
    pub instance: Option<String>,
    pub resource_type: Option<String>,
    pub resource: Option<String>,
}

impl Resource {
    pub fn instance(account: &str, service: &str, instance: &str) -> Self {
        Self {
            account: account.into(),
            service: Some(service.into()),
            instance: Some(instance.into()),
            ..Self::default()
        }
    }

    pub fn within(mut self, resource_type: &str, resource: &str) -> Self {
        self.resource_type = Some(resource_type.into());
        self.resource = Some(resource.into());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No policy gives the principal any role on the resource.
    NoPolicy,
    /// Policies exist on the resource, but none of their roles grants the action.
    RoleLacksAction,
    /// The action is reserved to services acting through authorization policies.
    ServiceOnly,
    /// Services may only use keys and manage their registrations.
    NotForServices,
    /// The resource belongs to another account.
    OtherAccount,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::NoPolicy => "no policy grants access to this resource",
            DenyReason::RoleLacksAction => "the granted roles do not allow this action",
            DenyReason::ServiceOnly => "only services may perform this action",
            DenyReason::NotForServices => "services may not perform this action",
            DenyReason::OtherAccount => "the resource belongs to another account",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Decides whether `principal` may perform `action` on `resource` under `policies`.
pub fn eval(principal: &Principal, action: Action, resource: &Resource, policies: &[Policy]) -> Decision {
    if principal.account() != resource.account {
        return Decision::Deny(DenyReason::OtherAccount);
    }
    let applicable: Vec<&Policy> = match principal {
        Principal::Identity { iam_id, .. } => policies
            .iter()
            .filter(|p| p.kind == PolicyType::Access)
            .filter(|p| p.subject().and_then(|s| s.get("iam_id")) == Some(iam_id.as_str()))
            .collect(),
        Principal::Service {
            service,
            instance,
            account,
        } => {
            if !action.for_services() {
                return Decision::Deny(DenyReason::NotForServices);
            }
            policies
                .iter()
                .filter(|p| p.kind == PolicyType::Authorization)
                .filter(|p| {
                    p.subject()
                        .is_some_and(|s| source_matches(s, *service, instance, account))
                })
                .collect()
        }
    };
    let on_resource: Vec<&&Policy> = applicable
        .iter()
        .filter(|p| p.resource().is_some_and(|r| resource_matches(r, resource)))
        .collect();
    if on_resource.is_empty() {
        return Decision::Deny(DenyReason::NoPolicy);
    }
    // Someone with no access learns nothing, not even that the action is for services only.
    if action.service_only() && matches!(principal, Principal::Identity { .. }) {
        return Decision::Deny(DenyReason::ServiceOnly);
    }
    let granted = action.granted_by();
    if on_resource
        .iter()
        .any(|p| p.granted_roles().any(|r| granted.contains(&r)))
    {
        Decision::Allow
    } else {
        Decision::Deny(DenyReason::RoleLacksAction)
    }
}

fn source_matches(subject: &Attributes, service: ServiceKind, instance: &str, account: &str) -> bool {
    subject.attributes.iter().all(|a| match a.name.as_str() {
        "accountId" => attribute_matches(a, account),
        "serviceName" => attribute_matches(a, service.name()),
        "serviceInstance" => attribute_matches(a, instance),
        _ => false,
    }) && subject.get("serviceName").is_some()
}

fn resource_matches(attrs: &Attributes, r: &Resource) -> bool {
    attrs.attributes.iter().all(|a| {
        let value = match a.name.as_str() {
            "accountId" => Some(r.account.as_str()),
            "serviceName" => r.service.as_deref(),
            "serviceInstance" => r.instance.as_deref(),
            "resourceType" => r.resource_type.as_deref(),
            "resource" => r.resource.as_deref(),
            // An attribute coffer does not know cannot be satisfied.
            _ => None,
        };
        // A policy narrower than the resource (say, one bucket, for an instance-wide action)
        // does not apply to it.
        value.is_some_and(|v| attribute_matches(a, v))
    })
}
