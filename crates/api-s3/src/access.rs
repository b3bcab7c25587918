//! Authentication (HMAC secrets for SigV4; bearer tokens are checked by `S3Front`) and
//! authorization: every operation maps to one IAM action, decided by `coffer_iam::eval`.

use coffer_iam::{Action, Decision, Iam, Principal, Resource};
use coffer_objects::{BucketInfo, Store};
use http::HeaderMap;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::CopySource;
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::error::{access_denied, internal};

/// Who is calling. Put into the request's extensions by [`Access`] for SigV4, or by
/// `S3Front` for an IAM bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The object-storage instance of the HMAC credential that signed the request: such a
    /// request reaches that instance's buckets only.
    pub hmac_instance: Option<String>,
}

impl Caller {
    pub fn account(&self) -> &str {
        self.principal.account()
    }
}

/// What [`Access`] resolved and authorized, for the operation to use.
#[derive(Debug, Clone, Default)]
pub struct Authorized {
    /// The bucket of the request, if it exists.
    pub bucket: Option<BucketInfo>,
    /// The bucket of a copy source, if any.
    pub source: Option<BucketInfo>,
    /// The instance named for ListBuckets and CreateBucket.
    pub instance: Option<String>,
}

/// The action each S3 operation needs: the one table of the S3 plane.
pub fn action_for(operation: &str) -> Action {
    match operation {
        "ListBuckets" => Action::CosListBuckets,
        "CreateBucket" => Action::CosCreateBucket,
        "DeleteBucket" => Action::CosDeleteBucket,
        "HeadBucket" => Action::CosHeadBucket,
        "GetBucketLocation" | "GetBucketVersioning" | "GetBucketAcl" => Action::CosReadBucketConfig,
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" => Action::CosListObjects,
        "ListMultipartUploads" => Action::CosListUploads,
        "GetObject" | "GetObjectAcl" => Action::CosReadObject,
        "HeadObject" => Action::CosHeadObject,
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => Action::CosWriteObject,
        "DeleteObject" | "DeleteObjects" => Action::CosDeleteObject,
        "AbortMultipartUpload" => Action::CosAbortUpload,
        "ListParts" => Action::CosListParts,
        // Operations coffer does not implement answer NotImplemented, to writers only.
        _ => Action::CosCreateBucket,
    }
}

pub struct Auth {
    pub iam: Iam,
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.iam.hmac(access_key).await {
            Ok(cred) => Ok(SecretKey::from(cred.secret_access_key.expose())),
            Err(coffer_iam::Error::NotFound) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(internal(&e)),
        }
    }
}

/// The caller whose HMAC credential signed a request.
pub async fn caller_for_hmac(iam: &Iam, access_key: &str) -> S3Result<Caller> {
    let hmac = iam.hmac(access_key).await.map_err(|e| internal(&e))?;
    Ok(Caller {
        principal: Principal::Identity {
            iam_id: hmac.iam_id.clone(),
            account: hmac.account.clone(),
        },
        hmac_instance: Some(hmac.instance_id.clone()),
    })
}

pub struct Access {
    pub iam: Iam,
    pub store: Store,
}

impl Access {
    async fn allow(&self, caller: &Caller, action: Action, resource: &Resource) -> S3Result<()> {
        match self
            .iam
            .authorize(&caller.principal, action, resource)
            .await
            .map_err(|e| internal(&e))?
        {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                tracing::debug!(action = action.name(), %reason, "denied");
                Err(access_denied())
            }
        }
    }

    /// The bucket if it exists and the caller may perform `action` in it.
    async fn bucket(&self, caller: &Caller, name: &str, action: Action) -> S3Result<Option<BucketInfo>> {
        let bucket = match self.store.bucket(name).await {
            Ok(b) => b,
            // The operation answers NoSuchBucket.
            Err(coffer_objects::Error::NoSuchBucket) => return Ok(None),
            Err(e) => return Err(crate::error::to_s3(e)),
        };
        if caller
            .hmac_instance
            .as_deref()
            .is_some_and(|i| i != bucket.instance_id())
        {
            return Err(access_denied());
        }
        let resource = Resource::instance(bucket.account_id(), "cloud-object-storage", bucket.instance_id())
            .within("bucket", bucket.name());
        self.allow(caller, action, &resource).await?;
        Ok(Some(bucket))
    }

    /// The instance a ListBuckets or CreateBucket acts in: `ibm-service-instance-id`, or the
    /// HMAC credential's instance. A bearer token must name it.
    async fn instance(&self, caller: &Caller, headers: &HeaderMap) -> S3Result<String> {
        let named = headers
            .get("ibm-service-instance-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        let id = match (named, &caller.hmac_instance) {
            (Some(r), _) => match self.iam.instance_by_ref(r).await {
                Ok(i) if i.service == coffer_iam::ServiceKind::ObjectStorage => i.id,
                Ok(_) | Err(coffer_iam::Error::NotFound) => return Err(access_denied()),
                Err(e) => return Err(internal(&e)),
            },
            (None, Some(hmac)) => hmac.clone(),
            (None, None) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The ibm-service-instance-id header is required with a bearer token"
                ));
            }
        };
        if caller.hmac_instance.as_ref().is_some_and(|h| *h != id) {
            return Err(access_denied());
        }
        Ok(id)
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = match cx.credentials() {
            Some(cred) => caller_for_hmac(&self.iam, &cred.access_key).await?,
            None => cx
                .extensions_mut()
                .get::<Caller>()
                .cloned()
                .ok_or_else(access_denied)?,
        };
        let op = cx.s3_op().name().to_owned();
        let action = action_for(&op);
        let mut authorized = Authorized::default();
        let bucket_name = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        match bucket_name {
            Some(name) if op != "CreateBucket" => {
                authorized.bucket = self.bucket(&caller, &name, action).await?;
            }
            _ => {
                let instance = self.instance(&caller, cx.headers()).await?;
                let mut resource = Resource::instance(caller.account(), "cloud-object-storage", &instance);
                if let Some(name) = bucket_name {
                    resource = resource.within("bucket", &name);
                }
                self.allow(&caller, action, &resource).await?;
                authorized.instance = Some(instance);
            }
        }
        if matches!(op.as_str(), "CopyObject" | "UploadPartCopy")
            && let Some(src) = copy_source_bucket(cx.headers())
        {
            authorized.source = self.bucket(&caller, &src, Action::CosReadObject).await?;
        }
        cx.extensions_mut().insert(caller);
        cx.extensions_mut().insert(authorized);
        Ok(())
    }
}

fn copy_source_bucket(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    match CopySource::parse(raw).ok()? {
        CopySource::Bucket { bucket, .. } => Some(bucket.into()),
        _ => None,
    }
}

/// The caller of a request that passed [`Access`].
pub fn caller<T>(req: &s3s::S3Request<T>) -> S3Result<&Caller> {
    req.extensions.get::<Caller>().ok_or_else(access_denied)
}

/// The request's bucket, authorized; `NoSuchBucket` if it does not exist.
pub fn bucket<T>(req: &s3s::S3Request<T>) -> S3Result<BucketInfo> {
    authorized(req)?
        .bucket
        .clone()
        .ok_or_else(|| crate::error::to_s3(coffer_objects::Error::NoSuchBucket))
}

/// The bucket of a copy source, authorized for reading.
pub fn source_bucket<T>(req: &s3s::S3Request<T>) -> S3Result<BucketInfo> {
    authorized(req)?
        .source
        .clone()
        .ok_or_else(|| crate::error::to_s3(coffer_objects::Error::NoSuchBucket))
}

/// What [`Access`] authorized for a request.
pub fn authorized<T>(req: &s3s::S3Request<T>) -> S3Result<&Authorized> {
    req.extensions.get::<Authorized>().ok_or_else(access_denied)
}
