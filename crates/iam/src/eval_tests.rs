//! The decision function, role by role and action by action, against an expectation written
//! out independently of the table in `action.rs`.

use std::collections::HashSet;

use crate::action::Action::{self, *};
use crate::eval::{Decision, DenyReason, Principal, Resource, eval};
use crate::model::ServiceKind;
use crate::policy::{Attribute, Attributes, Policy, PolicyRole, PolicyType};
use crate::role::Role::{self, *};

const ACCOUNT: &str = "acct";

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    Attributes {
        attributes: pairs
            .iter()
            .map(|(n, v)| Attribute {
                name: (*n).into(),
                value: (*v).into(),
                operator: None,
            })
            .collect(),
    }
}

fn policy(kind: PolicyType, subject: &[(&str, &str)], roles: &[Role], resource: &[(&str, &str)]) -> Policy {
    Policy {
        id: "p".into(),
        kind,
        description: None,
        subjects: vec![attrs(subject)],
        roles: roles
            .iter()
            .map(|r| PolicyRole {
                role_id: r.role_id(),
                display_name: None,
                description: None,
            })
            .collect(),
        resources: vec![attrs(resource)],
        href: String::new(),
        created_at: String::new(),
        created_by_id: String::new(),
        last_modified_at: String::new(),
        last_modified_by_id: String::new(),
        state: "active".into(),
    }
}

fn alice() -> Principal {
    Principal::Identity {
        iam_id: "IBMid-ALICE".into(),
        account: ACCOUNT.into(),
    }
}

fn grant(role: Role, service: &str) -> Policy {
    policy(
        PolicyType::Access,
        &[("iam_id", "IBMid-ALICE")],
        &[role],
        &[
            ("accountId", ACCOUNT),
            ("serviceName", service),
            ("serviceInstance", "inst-1"),
        ],
    )
}

/// What each role may do, written out from IBM's role descriptions (COS) and the KMS issue.
fn expected(role: Role) -> HashSet<Action> {
    let cos_object_read = [CosReadObject, CosHeadObject];
    let cos_content = [CosListObjects, CosListUploads, CosListParts];
    let cos_bucket_read = [CosListBuckets, CosHeadBucket, CosReadBucketConfig];
    let cos_object_write = [CosWriteObject, CosAbortUpload];
    let cos_write = [CosCreateBucket, CosDeleteBucket, CosDeleteObject];
    let kms_read = [
        KmsList,
        KmsRead,
        KmsReadMetadata,
        KmsWrap,
        KmsUnwrap,
        KmsRewrap,
        KmsReadPolicies,
        KmsReadInstancePolicies,
        KmsListRegistrations,
    ];
    let kms_write = [
        KmsCreate,
        KmsImport,
        KmsRotate,
        KmsDisable,
        KmsEnable,
        KmsPatch,
        KmsSync,
        KmsImportToken,
        KmsManageAliases,
        KmsManageKeyRings,
    ];
    let kms_manage = [
        KmsDelete,
        KmsRestore,
        KmsSetForDeletion,
        KmsWritePolicies,
        KmsWriteInstancePolicies,
    ];
    let mut s: HashSet<Action> = HashSet::new();
    match role {
        ObjectReader => s.extend(cos_object_read),
        ObjectWriter => s.extend(cos_object_write),
        ContentReader => s.extend(cos_object_read.into_iter().chain(cos_content)),
        Reader => s.extend(
            cos_object_read
                .into_iter()
                .chain(cos_content)
                .chain(cos_bucket_read)
                .chain(kms_read),
        ),
        Writer | Manager => {
            s.extend(
                cos_object_read
                    .into_iter()
                    .chain(cos_content)
                    .chain(cos_bucket_read),
            );
            s.extend(cos_object_write.into_iter().chain(cos_write));
            s.extend(kms_read.into_iter().chain(kms_write));
            if role == Manager {
                s.extend(kms_manage);
            }
        }
        KeyPurge => {
            s.insert(KmsPurge);
        }
        Viewer | Operator => s.extend([InstanceView, IamViewPolicies]),
        Editor => s.extend([InstanceView, IamViewPolicies, InstanceManage]),
        Administrator => s.extend([
            InstanceView,
            IamViewPolicies,
            InstanceManage,
            IamManagePolicies,
            IamManageIdentities,
        ]),
    }
    s
}

fn service_of(action: Action) -> &'static str {
    match action.services() {
        Some([svc, ..]) => svc.name(),
        _ => "iam-identity",
    }
}

#[test]
fn every_role_against_every_action() {
    for role in Role::ALL {
        let allowed = expected(role);
        for action in Action::ALL {
            let service = service_of(action);
            let resource = Resource::instance(ACCOUNT, service, "inst-1");
            let decision = eval(&alice(), action, &resource, &[grant(role, service)]);
            let want = allowed.contains(&action);
            assert_eq!(
                decision.is_allowed(),
                want,
                "{role:?} on {action:?}: {decision:?}"
            );
        }
    }
}

#[test]
fn default_deny_and_scoping() {
    let r = Resource::instance(ACCOUNT, "cloud-object-storage", "inst-1").within("bucket", "b1");
    assert_eq!(
        eval(&alice(), CosReadObject, &r, &[]),
        Decision::Deny(DenyReason::NoPolicy)
    );

    // A policy on another instance does not apply.
    let other = policy(
        PolicyType::Access,
        &[("iam_id", "IBMid-ALICE")],
        &[Manager],
        &[
            ("accountId", ACCOUNT),
            ("serviceName", "cloud-object-storage"),
            ("serviceInstance", "inst-2"),
        ],
    );
    assert_eq!(
        eval(&alice(), CosReadObject, &r, &[other]),
        Decision::Deny(DenyReason::NoPolicy)
    );

    // A bucket-scoped policy applies to that bucket only, and not to instance-wide actions.
    let bucket = policy(
        PolicyType::Access,
        &[("iam_id", "IBMid-ALICE")],
        &[Reader],
        &[
            ("accountId", ACCOUNT),
            ("serviceName", "cloud-object-storage"),
            ("serviceInstance", "inst-1"),
            ("resourceType", "bucket"),
            ("resource", "b1"),
        ],
    );
    assert!(eval(&alice(), CosReadObject, &r, std::slice::from_ref(&bucket)).is_allowed());
    let b2 = Resource::instance(ACCOUNT, "cloud-object-storage", "inst-1").within("bucket", "b2");
    assert!(!eval(&alice(), CosReadObject, &b2, std::slice::from_ref(&bucket)).is_allowed());
    let inst = Resource::instance(ACCOUNT, "cloud-object-storage", "inst-1");
    assert!(!eval(&alice(), CosListBuckets, &inst, std::slice::from_ref(&bucket)).is_allowed());
    assert_eq!(
        eval(&alice(), CosWriteObject, &r, &[bucket]),
        Decision::Deny(DenyReason::RoleLacksAction)
    );

    // An account-wide policy covers every service and instance of the account, not others.
    let everything = policy(
        PolicyType::Access,
        &[("iam_id", "IBMid-ALICE")],
        &[Manager],
        &[("accountId", ACCOUNT)],
    );
    assert!(eval(&alice(), CosDeleteBucket, &r, std::slice::from_ref(&everything)).is_allowed());
    let foreign = Resource::instance("other", "cloud-object-storage", "inst-1");
    assert_eq!(
        eval(&alice(), CosReadObject, &foreign, &[everything]),
        Decision::Deny(DenyReason::OtherAccount)
    );

    // Someone else's policy grants alice nothing.
    let bob = policy(
        PolicyType::Access,
        &[("iam_id", "IBMid-BOB")],
        &[Manager],
        &[("accountId", ACCOUNT)],
    );
    assert_eq!(
        eval(&alice(), CosReadObject, &r, &[bob]),
        Decision::Deny(DenyReason::NoPolicy)
    );
}

#[test]
fn services_act_through_authorization_policies_only() {
    let cos = Principal::Service {
        service: ServiceKind::ObjectStorage,
        instance: "cos-1".into(),
        account: ACCOUNT.into(),
    };
    let key = Resource::instance(ACCOUNT, "kms", "kms-1");
    let authorize = |role: Role| {
        policy(
            PolicyType::Authorization,
            &[
                ("accountId", ACCOUNT),
                ("serviceName", "cloud-object-storage"),
                ("serviceInstance", "cos-1"),
            ],
            &[role],
            &[
                ("accountId", ACCOUNT),
                ("serviceName", "kms"),
                ("serviceInstance", "kms-1"),
            ],
        )
    };
    let auth = authorize(Reader);
    // Service roles are cumulative: Writer and Manager include what Reader may do.
    for role in [Reader, Writer, Manager] {
        let p = authorize(role);
        for action in [
            KmsWrap,
            KmsUnwrap,
            KmsRewrap,
            KmsReadMetadata,
            KmsWriteRegistration,
            KmsEventAck,
        ] {
            assert!(
                eval(&cos, action, &key, std::slice::from_ref(&p)).is_allowed(),
                "{role:?} {action:?}"
            );
        }
    }
    for action in [
        KmsCreate,
        KmsDelete,
        KmsList,
        KmsRotate,
        KmsPurge,
        KmsWritePolicies,
    ] {
        assert_eq!(
            eval(&cos, action, &key, std::slice::from_ref(&auth)),
            Decision::Deny(DenyReason::NotForServices)
        );
    }
    // Another COS instance, or another KMS instance, is not covered.
    let cos2 = Principal::Service {
        service: ServiceKind::ObjectStorage,
        instance: "cos-2".into(),
        account: ACCOUNT.into(),
    };
    assert!(!eval(&cos2, KmsWrap, &key, std::slice::from_ref(&auth)).is_allowed());
    let kms2 = Resource::instance(ACCOUNT, "kms", "kms-2");
    assert!(!eval(&cos, KmsWrap, &kms2, std::slice::from_ref(&auth)).is_allowed());
    // An access policy does not authorize a service, and people cannot write registrations.
    let access = grant(Manager, "kms");
    assert!(
        !eval(
            &cos,
            KmsWrap,
            &Resource::instance(ACCOUNT, "kms", "inst-1"),
            std::slice::from_ref(&access)
        )
        .is_allowed()
    );
    let r = Resource::instance(ACCOUNT, "kms", "inst-1");
    assert_eq!(
        eval(&alice(), KmsWriteRegistration, &r, &[access]),
        Decision::Deny(DenyReason::ServiceOnly)
    );
    // Without any role on the instance, the answer is the plain "no access".
    assert_eq!(
        eval(&alice(), KmsWriteRegistration, &r, &[]),
        Decision::Deny(DenyReason::NoPolicy)
    );
}
