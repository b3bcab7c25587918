//! Policies in IBM's v1 wire shape, validated into a form the decision function reads.
//!
//! An access policy gives a subject (`iam_id`: a user or a service ID) roles on resources; an
//! authorization policy gives a source service (optionally one instance) roles on a target
//! service (optionally one instance). Resource attributes: `accountId`, `serviceName`,
//! `serviceInstance`, `resourceType`, `resource`; an absent attribute matches anything.

use serde::{Deserialize, Serialize};

use crate::role::Role;

/// One `{name, value, operator?}` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRole {
    pub role_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyType {
    Access,
    Authorization,
}

/// What a client sends to create a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInput {
    #[serde(rename = "type")]
    pub kind: PolicyType,
    pub subjects: Vec<Attributes>,
    pub roles: Vec<PolicyRole>,
    pub resources: Vec<Attributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A stored policy, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PolicyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub subjects: Vec<Attributes>,
    pub roles: Vec<PolicyRole>,
    pub resources: Vec<Attributes>,
    pub href: String,
    pub created_at: String,
    pub created_by_id: String,
    pub last_modified_at: String,
    pub last_modified_by_id: String,
    pub state: String,
}

impl Attributes {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

impl Policy {
    pub fn subject(&self) -> Option<&Attributes> {
        self.subjects.first()
    }

    pub fn resource(&self) -> Option<&Attributes> {
        self.resources.first()
    }

    /// The roles this policy grants (unknown role ids grant nothing).
    pub fn granted_roles(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles.iter().filter_map(|r| Role::from_role_id(&r.role_id))
    }
}

/// The resource attributes a policy may constrain.
pub const RESOURCE_ATTRIBUTES: [&str; 5] = [
    "accountId",
    "serviceName",
    "serviceInstance",
    "resourceType",
    "resource",
];

/// Whether `value` matches an attribute: exact, or a glob (`*`, `?`) with `stringMatch`.
pub fn attribute_matches(attr: &Attribute, value: &str) -> bool {
    match attr.operator.as_deref() {
        Some("stringMatch") => glob(attr.value.as_bytes(), value.as_bytes()),
        _ => attr.value == value,
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| text.get(i..).is_some_and(|t| glob(rest, t))),
        Some((b'?', rest)) => text.split_first().is_some_and(|(_, t)| glob(rest, t)),
        Some((c, rest)) => text.split_first().is_some_and(|(t0, t)| t0 == c && glob(rest, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let a = |v: &str| Attribute {
            name: "resource".into(),
            value: v.into(),
            operator: Some("stringMatch".into()),
        };
        assert!(attribute_matches(&a("logs-*"), "logs-2026"));
        assert!(!attribute_matches(&a("logs-*"), "data"));
        assert!(attribute_matches(&a("*"), ""));
        assert!(attribute_matches(&a("a?c"), "abc"));
        let exact = Attribute {
            name: "resource".into(),
            value: "logs-*".into(),
            operator: None,
        };
        assert!(!attribute_matches(&exact, "logs-2026"));
    }
}
