//! Object operations: put, get, head, delete (one or many), copy, ACL.

use coffer_objects::limits::MAX_PUT_SIZE;
use coffer_objects::{CopySource as Source, ObjectInfo, Preconditions, StageOptions, WriteCondition};
use http::StatusCode;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use sync_wrapper::SyncStream;

use crate::access::{bucket, source_bucket};
use crate::buckets::full_control;
use crate::convert::{self, AttrFields, SentChecksums};
use crate::error::{OrS3, not_implemented, to_s3};
use crate::service::Coffer;

type R<T> = S3Result<S3Response<T>>;

/// Per-object server-side encryption is the bucket's business (spec §3.6): a per-object KMS key
/// is refused, SSE-C is not offered, and `AES256` is what an encrypted bucket does anyway.
fn check_sse(
    sse: Option<&ServerSideEncryption>,
    sse_c: Option<&SSECustomerAlgorithm>,
    encrypted: bool,
) -> S3Result<()> {
    if sse_c.is_some() {
        return Err(not_implemented(
            "Server-side encryption with customer-provided keys",
        ));
    }
    match sse.map(ServerSideEncryption::as_str) {
        None => Ok(()),
        Some("AES256") if encrypted => Ok(()),
        Some("aws:kms") | Some("aws:kms:dsse") => Err(s3_error!(
            InvalidArgument,
            "Per-object KMS keys are not supported: a bucket is encrypted with the root key chosen when it was created"
        )),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "This bucket has no root key; create the bucket with ibm-sse-kp-customer-root-key-crn to encrypt it"
        )),
    }
}

pub fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> WriteCondition {
    match (if_match, if_none_match) {
        (Some(m), _) => match m.as_etag() {
            Some(e) => WriteCondition::IfMatch(e.value().to_owned()),
            None => WriteCondition::None,
        },
        (None, Some(n)) if n.is_any() => WriteCondition::IfAbsent,
        _ => WriteCondition::None,
    }
}

pub async fn put(s3: &Coffer, mut req: S3Request<PutObjectInput>) -> R<PutObjectOutput> {
    let bucket = bucket(&req)?;
    let input = &mut req.input;
    check_sse(
        input.server_side_encryption.as_ref(),
        input.sse_customer_algorithm.as_ref(),
        bucket.root_key_crn().is_some(),
    )?;
    let attrs = convert::attrs(AttrFields {
        content_type: input.content_type.as_ref(),
        content_encoding: input.content_encoding.as_ref(),
        content_disposition: input.content_disposition.as_ref(),
        content_language: input.content_language.as_ref(),
        cache_control: input.cache_control.as_ref(),
        expires: input.expires.as_ref(),
        storage_class: input.storage_class.as_ref(),
        metadata: input.metadata.as_ref(),
    });
    attrs.validate().or_s3()?;
    let mut sent = SentChecksums {
        crc32: input.checksum_crc32.as_ref(),
        crc32c: input.checksum_crc32c.as_ref(),
        crc64nvme: input.checksum_crc64nvme.as_ref(),
        sha1: input.checksum_sha1.as_ref(),
        sha256: input.checksum_sha256.as_ref(),
    }
    .values();
    let mut algorithms: Vec<_> = sent.iter().map(|(a, _)| *a).collect();
    algorithms.extend(
        input
            .checksum_algorithm
            .as_ref()
            .and_then(convert::checksum_algorithm),
    );
    algorithms.extend(convert::trailer_algorithms(&req.headers));
    let opts = StageOptions {
        checksums: algorithms.clone(),
        expected_len: input.content_length.and_then(|n| u64::try_from(n).ok()),
        max_len: MAX_PUT_SIZE,
        inline: true,
    };
    let staged = match input.body.take() {
        Some(body) => s3.store.stage(&bucket, body, opts).await,
        None => s3.store.stage(&bucket, futures::stream::empty(), opts).await,
    }
    .or_s3()?;
    sent.extend(convert::trailer_values(req.trailing_headers.as_ref()));
    staged.verify(input.content_md5.as_deref(), &sent).or_s3()?;
    let cond = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref());
    let info = s3
        .store
        .put_object(&bucket, &input.key, staged, attrs, &cond)
        .await
        .or_s3()?;
    let sums = convert::checksum_fields(&info.checksums);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(convert::etag(&info.etag)),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: sums.checksum_type,
        ..Default::default()
    }))
}

fn part_number(n: Option<PartNumber>) -> S3Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Part number must be an integer between 1 and 10000, inclusive"
                )
            }),
    }
}

/// The checksums to return: only when asked, and only for whole objects.
fn wanted_checksums(info: &ObjectInfo, mode: Option<&ChecksumMode>, whole: bool) -> convert::ChecksumFields {
    if whole && mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED) {
        convert::checksum_fields(&info.checksums)
    } else {
        convert::ChecksumFields::default()
    }
}

pub async fn get(s3: &Coffer, req: S3Request<GetObjectInput>) -> R<GetObjectOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    if input.sse_customer_algorithm.is_some() {
        return Err(not_implemented(
            "Server-side encryption with customer-provided keys",
        ));
    }
    let pre = convert::preconditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    );
    let range = input.range.as_ref().map(convert::range);
    let part = part_number(input.part_number)?;
    let body = s3
        .store
        .get_object(&bucket, &input.key, &pre, range, part)
        .await
        .or_s3()?;
    let info = &body.info;
    let len = body.range.end - body.range.start;
    let sums = wanted_checksums(info, input.checksum_mode.as_ref(), !body.partial);
    let output = GetObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
        content_range: body
            .partial
            .then(|| convert::content_range(&body.range, info.size)),
        e_tag: Some(convert::etag(&info.etag)),
        last_modified: Some(convert::timestamp(info.modified_ms)),
        content_type: info.attrs.content_type.clone(),
        content_encoding: info.attrs.content_encoding.clone(),
        content_disposition: info.attrs.content_disposition.clone(),
        content_language: info.attrs.content_language.clone(),
        cache_control: info.attrs.cache_control.clone(),
        expires: convert::expires(&info.attrs),
        metadata: convert::metadata(&info.attrs),
        storage_class: convert::storage_class(&info.attrs),
        parts_count: info.parts_count.and_then(|n| i32::try_from(n).ok()),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: sums.checksum_type,
        body: Some(StreamingBlob::wrap(SyncStream::new(body.stream))),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub async fn head(s3: &Coffer, req: S3Request<HeadObjectInput>) -> R<HeadObjectOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let info = s3.store.head_object(&bucket, &input.key).await.or_s3()?;
    let pre = convert::preconditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    );
    pre.check(&info).or_s3()?;
    let selected = match (part_number(input.part_number)?, input.range.as_ref()) {
        (Some(n), _) => Some(
            info.part_range(n)
                .ok_or(coffer_objects::Error::InvalidPartNumber)
                .or_s3()?,
        ),
        (None, Some(r)) => Some(convert::range(r).resolve(info.size).or_s3()?),
        (None, None) => None,
    };
    let len = selected.as_ref().map_or(info.size, |r| r.end - r.start);
    let sums = wanted_checksums(&info, input.checksum_mode.as_ref(), selected.is_none());
    let output = HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
        content_range: selected.as_ref().map(|r| convert::content_range(r, info.size)),
        e_tag: Some(convert::etag(&info.etag)),
        last_modified: Some(convert::timestamp(info.modified_ms)),
        content_type: info.attrs.content_type.clone(),
        content_encoding: info.attrs.content_encoding.clone(),
        content_disposition: info.attrs.content_disposition.clone(),
        content_language: info.attrs.content_language.clone(),
        cache_control: info.attrs.cache_control.clone(),
        expires: convert::expires(&info.attrs),
        metadata: convert::metadata(&info.attrs),
        storage_class: convert::storage_class(&info.attrs),
        parts_count: info.parts_count.and_then(|n| i32::try_from(n).ok()),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: sums.checksum_type,
        ..Default::default()
    };
    let mut resp = S3Response::new(output);
    if selected.is_some() {
        resp.status = Some(StatusCode::PARTIAL_CONTENT);
    }
    Ok(resp)
}

pub async fn delete(s3: &Coffer, req: S3Request<DeleteObjectInput>) -> R<DeleteObjectOutput> {
    let bucket = bucket(&req)?;
    s3.store.delete_object(&bucket, &req.input.key).await.or_s3()?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// The most keys one DeleteObjects request may name.
const MAX_DELETE_KEYS: usize = 1000;

pub async fn delete_many(s3: &Coffer, req: S3Request<DeleteObjectsInput>) -> R<DeleteObjectsOutput> {
    let bucket = bucket(&req)?;
    let objects = &req.input.delete.objects;
    if objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "A DeleteObjects request may name at most 1000 keys"
        ));
    }
    let quiet = req.input.delete.quiet.unwrap_or(false);
    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
    for obj in objects {
        match s3.store.delete_object(&bucket, &obj.key).await {
            Ok(_) if quiet => {}
            Ok(_) => deleted.push(DeletedObject {
                key: Some(obj.key.clone()),
                ..Default::default()
            }),
            Err(e) => {
                let e = to_s3(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(obj.key.clone()),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        request_charged: None,
    }))
}

/// The bucket and key of a copy source.
pub fn copy_source(src: &CopySource) -> S3Result<(&str, &str)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(
                    InvalidArgument,
                    "Versioning is not enabled: only versionId=null exists"
                ));
            }
            Ok((bucket, key))
        }
        _ => Err(not_implemented("Copying from an access point or outpost")),
    }
}

pub async fn copy(s3: &Coffer, req: S3Request<CopyObjectInput>) -> R<CopyObjectOutput> {
    let input = &req.input;
    let dst_bucket = bucket(&req)?;
    check_sse(
        input.server_side_encryption.as_ref(),
        input.sse_customer_algorithm.as_ref(),
        dst_bucket.root_key_crn().is_some(),
    )?;
    let (_, src_key) = copy_source(&input.copy_source)?;
    let src_bucket = source_bucket(&req)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let attrs = replace.then(|| {
        convert::attrs(AttrFields {
            content_type: input.content_type.as_ref(),
            content_encoding: input.content_encoding.as_ref(),
            content_disposition: input.content_disposition.as_ref(),
            content_language: input.content_language.as_ref(),
            cache_control: input.cache_control.as_ref(),
            expires: input.expires.as_ref(),
            storage_class: input.storage_class.as_ref(),
            metadata: input.metadata.as_ref(),
        })
    });
    if let Some(a) = &attrs {
        a.validate().or_s3()?;
    }
    let src = Source {
        bucket: &src_bucket,
        key: src_key,
        preconditions: copy_preconditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        ),
    };
    let info = s3
        .store
        .copy_object(&src, &dst_bucket, &input.key, attrs, &WriteCondition::None)
        .await
        .or_s3()?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(convert::etag(&info.etag)),
            last_modified: Some(convert::timestamp(info.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub fn copy_preconditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Preconditions {
    convert::preconditions(if_match, if_none_match, if_modified_since, if_unmodified_since)
}

pub async fn acl(s3: &Coffer, req: S3Request<GetObjectAclInput>) -> R<GetObjectAclOutput> {
    let bucket = bucket(&req)?;
    s3.store.head_object(&bucket, &req.input.key).await.or_s3()?;
    let (grants, owner) = full_control(bucket.account_id());
    Ok(S3Response::new(GetObjectAclOutput {
        grants,
        owner,
        request_charged: None,
    }))
}
