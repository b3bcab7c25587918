//! Bucket operations.

use coffer_objects::Owner as BucketOwner;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::access::{authorized, bucket, caller};
use crate::convert::timestamp;
use crate::error::OrS3;
use crate::service::Coffer;

type R<T> = S3Result<S3Response<T>>;

pub fn owner(caller_account: &str) -> Owner {
    Owner {
        display_name: Some(caller_account.to_owned()),
        id: Some(caller_account.to_owned()),
    }
}

/// The owner of everything in an instance, with FULL_CONTROL: what S3 answers for ACLs.
pub fn full_control(account: &str) -> (Option<Grants>, Option<Owner>) {
    let grantee = Grantee {
        display_name: Some(account.to_owned()),
        email_address: None,
        id: Some(account.to_owned()),
        type_: Type::from_static(Type::CANONICAL_USER),
        uri: None,
    };
    let grant = Grant {
        grantee: Some(grantee),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (Some(vec![grant]), Some(owner(account)))
}

pub async fn list(s3: &Coffer, req: S3Request<ListBucketsInput>) -> R<ListBucketsOutput> {
    let caller = caller(&req)?;
    let instance = authorized(&req)?.instance.clone().unwrap_or_default();
    let buckets = s3.store.list_buckets(&instance).await.or_s3()?;
    let prefix = req.input.prefix.as_deref().unwrap_or("");
    let buckets = buckets
        .iter()
        .filter(|b| b.name().starts_with(prefix))
        .map(|b| Bucket {
            bucket_region: None,
            creation_date: Some(timestamp(b.created_ms())),
            name: Some(b.name().to_owned()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        continuation_token: None,
        owner: Some(owner(caller.account())),
        prefix: req.input.prefix.clone(),
    }))
}

pub async fn create(s3: &Coffer, req: S3Request<CreateBucketInput>) -> R<CreateBucketOutput> {
    let account_id = caller(&req)?.account().to_owned();
    let instance_id = authorized(&req)?.instance.clone().unwrap_or_default();
    let constraint = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|c| c.as_str());
    let owner = BucketOwner {
        account_id,
        instance_id,
    };
    let root_key = root_key_request(&req.headers)?;
    let bucket = s3
        .store
        .create_bucket(&owner, &req.input.bucket, constraint, root_key.as_deref())
        .await
        .or_s3()?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", bucket.name())),
    }))
}

pub async fn head(s3: &Coffer, req: S3Request<HeadBucketInput>) -> R<HeadBucketOutput> {
    let bucket = bucket(&req)?;
    let mut resp = S3Response::new(HeadBucketOutput {
        bucket_region: Some(s3.store.region().to_owned()),
        ..Default::default()
    });
    if let Ok(v) = bucket.location().parse() {
        resp.headers.insert("ibm-bucket-location", v);
    }
    key_protect_headers(&bucket, &mut resp.headers);
    Ok(resp)
}

/// The root key asked for by `ibm-sse-kp-customer-root-key-crn` (with
/// `ibm-sse-kp-encryption-algorithm`, `AES256` with or without quotes, or absent).
fn root_key_request(headers: &http::HeaderMap) -> S3Result<Option<String>> {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().map(str::trim));
    if let Some(alg) = header("ibm-sse-kp-encryption-algorithm") {
        let alg = alg.map_err(|_| s3_error!(InvalidArgument, "invalid ibm-sse-kp-encryption-algorithm"))?;
        if alg.trim_matches('"') != "AES256" {
            return Err(s3_error!(
                InvalidArgument,
                "ibm-sse-kp-encryption-algorithm must be AES256"
            ));
        }
    }
    match header("ibm-sse-kp-customer-root-key-crn") {
        None => Ok(None),
        Some(Ok(crn)) if !crn.is_empty() => Ok(Some(crn.to_owned())),
        Some(_) => Err(crate::error::to_s3(coffer_objects::Error::KeyCrnNotFound)),
    }
}

/// `ibm-sse-kp-enabled: true` (lowercase, as ibm_botocore parses it) and the root key CRN
/// under both names the SDKs read; plain buckets send none of them.
pub fn key_protect_headers(bucket: &coffer_objects::BucketInfo, headers: &mut http::HeaderMap) {
    if let Some(crn) = bucket.root_key_crn()
        && let Ok(v) = http::HeaderValue::from_str(crn)
    {
        headers.insert("ibm-sse-kp-enabled", http::HeaderValue::from_static("true"));
        headers.insert("ibm-sse-kp-crk-id", v.clone());
        headers.insert("ibm-sse-kp-customer-root-key-crn", v);
    }
}

pub async fn delete(s3: &Coffer, req: S3Request<DeleteBucketInput>) -> R<DeleteBucketOutput> {
    let bucket = bucket(&req)?;
    s3.store.delete_bucket(&bucket).await.or_s3()?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn location(_s3: &Coffer, req: S3Request<GetBucketLocationInput>) -> R<GetBucketLocationOutput> {
    let bucket = bucket(&req)?;
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: Some(BucketLocationConstraint::from(bucket.location().to_owned())),
    }))
}

pub async fn versioning(
    _s3: &Coffer,
    req: S3Request<GetBucketVersioningInput>,
) -> R<GetBucketVersioningOutput> {
    bucket(&req)?;
    // Never versioned: S3 answers an empty configuration.
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}

pub async fn acl(_s3: &Coffer, req: S3Request<GetBucketAclInput>) -> R<GetBucketAclOutput> {
    let bucket = bucket(&req)?;
    let (grants, owner) = full_control(bucket.account_id());
    Ok(S3Response::new(GetBucketAclOutput { grants, owner }))
}
