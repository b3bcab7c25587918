//! Bucket operations.

use coffer_objects::Owner as BucketOwner;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

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
    let bucket = s3
        .store
        .create_bucket(&owner, &req.input.bucket, constraint)
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
    Ok(resp)
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
