//! IAM roles: platform roles (managing instances and access) and service roles (using them).

use serde::{Deserialize, Serialize};

use crate::model::ServiceKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    // Platform roles.
    Viewer,
    Operator,
    Editor,
    Administrator,
    // Service roles.
    Reader,
    Writer,
    Manager,
    ContentReader,
    ObjectReader,
    ObjectWriter,
    KeyPurge,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Viewer,
        Role::Operator,
        Role::Editor,
        Role::Administrator,
        Role::Reader,
        Role::Writer,
        Role::Manager,
        Role::ContentReader,
        Role::ObjectReader,
        Role::ObjectWriter,
        Role::KeyPurge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Operator => "Operator",
            Role::Editor => "Editor",
            Role::Administrator => "Administrator",
            Role::Reader => "Reader",
            Role::Writer => "Writer",
            Role::Manager => "Manager",
            Role::ContentReader => "ContentReader",
            Role::ObjectReader => "ObjectReader",
            Role::ObjectWriter => "ObjectWriter",
            Role::KeyPurge => "KeyPurge",
        }
    }

    pub fn is_platform(self) -> bool {
        matches!(
            self,
            Role::Viewer | Role::Operator | Role::Editor | Role::Administrator
        )
    }

    /// The service a service-specific role belongs to (`None` for roles every service has).
    pub fn only_for(self) -> Option<&'static [ServiceKind]> {
        match self {
            Role::ContentReader | Role::ObjectReader | Role::ObjectWriter => {
                Some(&[ServiceKind::ObjectStorage])
            }
            Role::KeyPurge => Some(&[ServiceKind::Kms, ServiceKind::HsCrypto]),
            _ => None,
        }
    }

    /// The CRN IBM uses as `role_id`.
    pub fn role_id(self) -> String {
        match (self.is_platform(), self.only_for()) {
            (true, _) => format!("crn:v1:bluemix:public:iam::::role:{}", self.name()),
            (false, Some([svc, ..])) => format!(
                "crn:v1:bluemix:public:{}::::serviceRole:{}",
                svc.name(),
                self.name()
            ),
            (false, _) => format!("crn:v1:bluemix:public:iam::::serviceRole:{}", self.name()),
        }
    }

    /// Parses a `role_id`: `crn:v1:bluemix:public:<iam|service>::::<role|serviceRole>:<Name>`.
    pub fn from_role_id(id: &str) -> Option<Role> {
        let parts: Vec<&str> = id.split(':').collect();
        let [crn, v1, _, _, _, "", "", "", kind, name] = parts.as_slice() else {
            return None;
        };
        if *crn != "crn" || *v1 != "v1" {
            return None;
        }
        let role = Role::ALL.into_iter().find(|r| r.name() == *name)?;
        let kind_ok = if role.is_platform() {
            *kind == "role"
        } else {
            *kind == "serviceRole"
        };
        kind_ok.then_some(role)
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Viewer => "View service instances, but not modify them",
            Role::Operator => "Perform platform actions required to configure and operate service instances",
            Role::Editor => {
                "Perform all platform actions except for managing the account and assigning access policies"
            }
            Role::Administrator => {
                "Perform all platform actions, including assigning access policies to others"
            }
            Role::Reader => "Perform read-only actions within a service",
            Role::Writer => "Read actions plus create and update within a service",
            Role::Manager => "Writer actions plus privileged actions such as deleting and setting policies",
            Role::ContentReader => "Download and list objects, read object metadata",
            Role::ObjectReader => "Download objects and read object metadata, without listing",
            Role::ObjectWriter => "Upload and overwrite objects, including multipart uploads",
            Role::KeyPurge => "Purge deleted keys",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_ids_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::from_role_id(&r.role_id()), Some(r), "{}", r.role_id());
        }
        assert_eq!(
            Role::from_role_id("crn:v1:bluemix:public:iam::::serviceRole:Reader"),
            Some(Role::Reader)
        );
        assert_eq!(
            Role::from_role_id("crn:v1:bluemix:public:iam::::role:Reader"),
            None
        );
        assert_eq!(
            Role::from_role_id("crn:v1:bluemix:public:iam::::serviceRole:Owner"),
            None
        );
        assert_eq!(Role::from_role_id("Reader"), None);
    }
}
