//! Every action coffer authorizes, with the roles that grant it: the one table the decision
//! function reads. Names follow IBM's action names where IBM has one.

use crate::model::ServiceKind;
use crate::role::Role::{self, *};

/// An action on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    // Object storage (IBM COS action names).
    CosListBuckets,
    CosCreateBucket,
    CosDeleteBucket,
    CosHeadBucket,
    CosReadBucketConfig,
    CosListObjects,
    CosListUploads,
    CosReadObject,
    CosHeadObject,
    CosWriteObject,
    CosDeleteObject,
    CosAbortUpload,
    CosListParts,
    // Key management (Key Protect action names).
    KmsList,
    KmsRead,
    KmsReadMetadata,
    KmsWrap,
    KmsUnwrap,
    KmsRewrap,
    KmsCreate,
    KmsImport,
    KmsRotate,
    KmsDisable,
    KmsEnable,
    KmsPatch,
    KmsDelete,
    KmsRestore,
    KmsPurge,
    KmsSetForDeletion,
    KmsReadPolicies,
    KmsWritePolicies,
    KmsReadInstancePolicies,
    KmsWriteInstancePolicies,
    KmsListRegistrations,
    KmsWriteRegistration,
    KmsEventAck,
    KmsSync,
    KmsImportToken,
    KmsManageKeyRings,
    KmsManageAliases,
    // Platform: instances and the ceremony.
    InstanceView,
    InstanceManage,
    // IAM itself.
    IamManageIdentities,
    IamManagePolicies,
    IamViewPolicies,
}

use Action::*;

const COS_OBJECT_READ: &[Role] = &[ObjectReader, ContentReader, Reader, Writer, Manager];
const COS_CONTENT_READ: &[Role] = &[ContentReader, Reader, Writer, Manager];
const COS_BUCKET_READ: &[Role] = &[Reader, Writer, Manager];
const COS_OBJECT_WRITE: &[Role] = &[ObjectWriter, Writer, Manager];
const COS_WRITE: &[Role] = &[Writer, Manager];
const KMS_READ: &[Role] = &[Reader, Writer, Manager];
const KMS_WRITE: &[Role] = &[Writer, Manager];
const KMS_MANAGE: &[Role] = &[Manager];
const PLATFORM_VIEW: &[Role] = &[Viewer, Operator, Editor, Administrator];
const PLATFORM_EDIT: &[Role] = &[Editor, Administrator];
const PLATFORM_ADMIN: &[Role] = &[Administrator];

impl Action {
    pub const ALL: [Action; 45] = [
        CosListBuckets,
        CosCreateBucket,
        CosDeleteBucket,
        CosHeadBucket,
        CosReadBucketConfig,
        CosListObjects,
        CosListUploads,
        CosReadObject,
        CosHeadObject,
        CosWriteObject,
        CosDeleteObject,
        CosAbortUpload,
        CosListParts,
        KmsList,
        KmsRead,
        KmsReadMetadata,
        KmsWrap,
        KmsUnwrap,
        KmsRewrap,
        KmsCreate,
        KmsImport,
        KmsRotate,
        KmsDisable,
        KmsEnable,
        KmsPatch,
        KmsDelete,
        KmsRestore,
        KmsPurge,
        KmsSetForDeletion,
        KmsReadPolicies,
        KmsWritePolicies,
        KmsReadInstancePolicies,
        KmsWriteInstancePolicies,
        KmsListRegistrations,
        KmsWriteRegistration,
        KmsEventAck,
        KmsSync,
        KmsImportToken,
        KmsManageKeyRings,
        KmsManageAliases,
        InstanceView,
        InstanceManage,
        IamManageIdentities,
        IamManagePolicies,
        IamViewPolicies,
    ];

    /// The roles that grant this action.
    pub fn granted_by(self) -> &'static [Role] {
        match self {
            CosReadObject | CosHeadObject => COS_OBJECT_READ,
            CosListObjects | CosListUploads | CosListParts => COS_CONTENT_READ,
            CosListBuckets | CosHeadBucket | CosReadBucketConfig => COS_BUCKET_READ,
            CosWriteObject | CosAbortUpload => COS_OBJECT_WRITE,
            CosCreateBucket | CosDeleteBucket | CosDeleteObject => COS_WRITE,
            KmsList
            | KmsRead
            | KmsReadMetadata
            | KmsWrap
            | KmsUnwrap
            | KmsRewrap
            | KmsReadPolicies
            | KmsReadInstancePolicies
            | KmsListRegistrations => KMS_READ,
            KmsCreate | KmsImport | KmsRotate | KmsDisable | KmsEnable | KmsPatch | KmsSync
            | KmsImportToken | KmsManageAliases | KmsManageKeyRings => KMS_WRITE,
            KmsDelete | KmsRestore | KmsSetForDeletion | KmsWritePolicies | KmsWriteInstancePolicies => {
                KMS_MANAGE
            }
            KmsPurge => &[KeyPurge],
            // Registrations and acknowledgements are written by services, never by people; a
            // service authorized with any KMS role (they are cumulative) may write them.
            KmsWriteRegistration | KmsEventAck => KMS_READ,
            InstanceView => PLATFORM_VIEW,
            InstanceManage => PLATFORM_EDIT,
            IamManageIdentities | IamManagePolicies => PLATFORM_ADMIN,
            IamViewPolicies => PLATFORM_VIEW,
        }
    }

    /// Whether a service acting for itself (through an authorization policy) may do this.
    /// A service may use a key and manage its own registrations, and nothing else.
    pub fn for_services(self) -> bool {
        matches!(
            self,
            KmsWrap | KmsUnwrap | KmsRewrap | KmsReadMetadata | KmsWriteRegistration | KmsEventAck
        )
    }

    /// Whether only services (never users) may do this.
    pub fn service_only(self) -> bool {
        matches!(self, KmsWriteRegistration | KmsEventAck)
    }

    /// The services whose resources this action applies to (`None`: account management).
    pub fn services(self) -> Option<&'static [ServiceKind]> {
        let name = self.name();
        if name.starts_with("cloud-object-storage.") {
            Some(&[ServiceKind::ObjectStorage])
        } else if name.starts_with("kms.") {
            Some(&[ServiceKind::Kms, ServiceKind::HsCrypto])
        } else {
            None
        }
    }

    /// The action's name, as activity events and error messages show it.
    pub fn name(self) -> &'static str {
        match self {
            CosListBuckets => "cloud-object-storage.account.get_account_buckets",
            CosCreateBucket => "cloud-object-storage.bucket.put_bucket",
            CosDeleteBucket => "cloud-object-storage.bucket.delete_bucket",
            CosHeadBucket => "cloud-object-storage.bucket.head",
            CosReadBucketConfig => "cloud-object-storage.bucket.get_location",
            CosListObjects => "cloud-object-storage.bucket.get",
            CosListUploads => "cloud-object-storage.bucket.get_uploads",
            CosReadObject => "cloud-object-storage.object.get",
            CosHeadObject => "cloud-object-storage.object.head",
            CosWriteObject => "cloud-object-storage.object.put",
            CosDeleteObject => "cloud-object-storage.object.delete",
            CosAbortUpload => "cloud-object-storage.object.delete_upload",
            CosListParts => "cloud-object-storage.object.get_uploads",
            KmsList => "kms.secrets.list",
            KmsRead => "kms.secrets.read",
            KmsReadMetadata => "kms.secrets.readmetadata",
            KmsWrap => "kms.secrets.wrap",
            KmsUnwrap => "kms.secrets.unwrap",
            KmsRewrap => "kms.secrets.rewrap",
            KmsCreate => "kms.secrets.create",
            KmsImport => "kms.secrets.import",
            KmsRotate => "kms.secrets.rotate",
            KmsDisable => "kms.secrets.disable",
            KmsEnable => "kms.secrets.enable",
            KmsPatch => "kms.secrets.patch",
            KmsDelete => "kms.secrets.delete",
            KmsRestore => "kms.secrets.restore",
            KmsPurge => "kms.secrets.purge",
            KmsSetForDeletion => "kms.secrets.setkeyfordeletion",
            KmsReadPolicies => "kms.policies.read",
            KmsWritePolicies => "kms.policies.write",
            KmsReadInstancePolicies => "kms.instancepolicies.read",
            KmsWriteInstancePolicies => "kms.instancepolicies.write",
            KmsListRegistrations => "kms.registrations.list",
            KmsWriteRegistration => "kms.registrations.write",
            KmsEventAck => "kms.secrets.eventack",
            KmsSync => "kms.secrets.sync",
            KmsImportToken => "kms.importtoken.create",
            KmsManageKeyRings => "kms.keyrings.create",
            KmsManageAliases => "kms.secrets.createalias",
            InstanceView => "resource-controller.instance.retrieve",
            InstanceManage => "resource-controller.instance.create",
            IamManageIdentities => "iam-identity.apikey.create",
            IamManagePolicies => "iam.policy.create",
            IamViewPolicies => "iam.policy.read",
        }
    }
}
