//! The s3s service: authentication, access, addressing, and the operation table.

use coffer_iam::Iam;
use coffer_objects::Store;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::access::{Access, Auth};
use crate::front::S3Front;
use crate::host::Domains;
use crate::{buckets, listing, multipart, objects};

/// Settings of the S3 endpoint.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Base domains for virtual-host-style addressing.
    pub domains: Vec<String>,
}

/// The S3 service over `store`, authenticating with the HMAC credentials in `iam`.
pub fn build(store: Store, iam: Iam, config: &S3Config) -> S3Front {
    let store_for_access = store.clone();
    let mut b = S3ServiceBuilder::new(Coffer {
        store,
        iam: iam.clone(),
    });
    b.set_auth(Auth { iam: iam.clone() });
    b.set_access(Access {
        iam: iam.clone(),
        store: store_for_access,
    });
    b.set_host(Domains::new(config.domains.iter().cloned()));
    S3Front::new(b.build(), iam)
}

pub(crate) struct Coffer {
    pub store: Store,
    #[allow(dead_code)]
    pub iam: Iam,
}

type R<T> = S3Result<S3Response<T>>;

#[async_trait::async_trait]
impl S3 for Coffer {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> R<ListBucketsOutput> {
        buckets::list(self, req).await
    }
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> R<CreateBucketOutput> {
        buckets::create(self, req).await
    }
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> R<HeadBucketOutput> {
        buckets::head(self, req).await
    }
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> R<DeleteBucketOutput> {
        buckets::delete(self, req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> R<GetBucketLocationOutput> {
        buckets::location(self, req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> R<GetBucketVersioningOutput> {
        buckets::versioning(self, req).await
    }
    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> R<GetBucketAclOutput> {
        buckets::acl(self, req).await
    }
    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> R<GetObjectAclOutput> {
        objects::acl(self, req).await
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> R<PutObjectOutput> {
        objects::put(self, req).await
    }
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> R<GetObjectOutput> {
        objects::get(self, req).await
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> R<HeadObjectOutput> {
        objects::head(self, req).await
    }
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> R<DeleteObjectOutput> {
        objects::delete(self, req).await
    }
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> R<DeleteObjectsOutput> {
        objects::delete_many(self, req).await
    }
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> R<CopyObjectOutput> {
        objects::copy(self, req).await
    }
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> R<ListObjectsOutput> {
        listing::v1(self, req).await
    }
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> R<ListObjectsV2Output> {
        listing::v2(self, req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> R<ListObjectVersionsOutput> {
        listing::versions(self, req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> R<CreateMultipartUploadOutput> {
        multipart::create(self, req).await
    }
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> R<UploadPartOutput> {
        multipart::upload_part(self, req).await
    }
    async fn upload_part_copy(&self, req: S3Request<UploadPartCopyInput>) -> R<UploadPartCopyOutput> {
        multipart::upload_part_copy(self, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> R<CompleteMultipartUploadOutput> {
        multipart::complete(self, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> R<AbortMultipartUploadOutput> {
        multipart::abort(self, req).await
    }
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> R<ListPartsOutput> {
        multipart::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> R<ListMultipartUploadsOutput> {
        multipart::list_uploads(self, req).await
    }
}
