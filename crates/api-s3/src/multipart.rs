//! Multipart upload operations.

use coffer_objects::limits::{MAX_LIST_KEYS, MAX_PUT_SIZE};
use coffer_objects::{CompletePart, CopySource as Source, StageOptions, UploadsQuery};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::access::{bucket, source_bucket};
use crate::buckets::owner;
use crate::convert::{self, AttrFields, SentChecksums, url_encode};
use crate::error::{OrS3, not_implemented};
use crate::objects::{copy_preconditions, copy_source, write_condition};
use crate::service::Coffer;

type R<T> = S3Result<S3Response<T>>;

fn part_number(n: PartNumber) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=coffer_objects::limits::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

pub async fn create(
    s3: &Coffer,
    req: S3Request<CreateMultipartUploadInput>,
) -> R<CreateMultipartUploadOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    if input.sse_customer_algorithm.is_some()
        || input
            .server_side_encryption
            .as_ref()
            .is_some_and(|s| s.as_str().starts_with("aws:kms"))
    {
        return Err(s3_error!(
            InvalidArgument,
            "Per-object server-side encryption settings are not supported"
        ));
    }
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
    let alg = input
        .checksum_algorithm
        .as_ref()
        .and_then(convert::checksum_algorithm);
    let upload = s3
        .store
        .create_upload(&bucket, &input.key, attrs, alg)
        .await
        .or_s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(bucket.name().to_owned()),
        key: Some(upload.key),
        upload_id: Some(upload.upload_id),
        checksum_algorithm: input.checksum_algorithm.clone(),
        ..Default::default()
    }))
}

pub async fn upload_part(s3: &Coffer, mut req: S3Request<UploadPartInput>) -> R<UploadPartOutput> {
    let bucket = bucket(&req)?;
    let input = &mut req.input;
    if input.sse_customer_algorithm.is_some() {
        return Err(not_implemented(
            "Server-side encryption with customer-provided keys",
        ));
    }
    let number = part_number(input.part_number)?;
    // Fail before reading the body when the upload is unknown.
    s3.store
        .upload(&bucket, &input.key, &input.upload_id)
        .await
        .or_s3()?;
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
        checksums: algorithms,
        expected_len: input.content_length.and_then(|n| u64::try_from(n).ok()),
        max_len: MAX_PUT_SIZE,
        inline: false,
    };
    let staged = match input.body.take() {
        Some(body) => s3.store.stage(&bucket, body, opts).await,
        None => s3.store.stage(&bucket, futures::stream::empty(), opts).await,
    }
    .or_s3()?;
    sent.extend(convert::trailer_values(req.trailing_headers.as_ref()));
    staged.verify(input.content_md5.as_deref(), &sent).or_s3()?;
    let part = s3
        .store
        .upload_part(&bucket, &input.key, &input.upload_id, number, staged)
        .await
        .or_s3()?;
    let sums = convert::checksum_fields(&part.checksums);
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(convert::etag(&part.etag)),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        ..Default::default()
    }))
}

fn copy_range(r: Option<&str>) -> S3Result<Option<coffer_objects::ByteRange>> {
    let Some(r) = r else { return Ok(None) };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let (first, last) = r
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok(Some(coffer_objects::ByteRange::FromTo {
        first,
        last: Some(last),
    }))
}

pub async fn upload_part_copy(s3: &Coffer, req: S3Request<UploadPartCopyInput>) -> R<UploadPartCopyOutput> {
    let input = &req.input;
    let bucket = bucket(&req)?;
    let number = part_number(input.part_number)?;
    let (_, src_key) = copy_source(&input.copy_source)?;
    let src_bucket = source_bucket(&req)?;
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
    let range = copy_range(input.copy_source_range.as_deref())?;
    let part = s3
        .store
        .upload_part_copy(&src, range, &bucket, &input.key, &input.upload_id, number)
        .await
        .or_s3()?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(convert::etag(&part.etag)),
            last_modified: Some(convert::timestamp(part.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn complete(
    s3: &Coffer,
    req: S3Request<CompleteMultipartUploadInput>,
) -> R<CompleteMultipartUploadOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let parts = input.multipart_upload.as_ref().and_then(|m| m.parts.as_ref());
    let Some(parts) = parts.filter(|p| !p.is_empty()) else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    let mut requested = Vec::with_capacity(parts.len());
    for p in parts {
        let number = p
            .part_number
            .ok_or_else(|| s3_error!(MalformedXML, "Each part needs a PartNumber"))?;
        let etag = p
            .e_tag
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedXML, "Each part needs an ETag"))?;
        let sent = SentChecksums {
            crc32: p.checksum_crc32.as_ref(),
            crc32c: p.checksum_crc32c.as_ref(),
            crc64nvme: p.checksum_crc64nvme.as_ref(),
            sha1: p.checksum_sha1.as_ref(),
            sha256: p.checksum_sha256.as_ref(),
        };
        requested.push(CompletePart {
            number: u32::try_from(number).unwrap_or(0),
            etag: etag.value().to_owned(),
            checksums: sent.values(),
        });
    }
    let cond = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref());
    let info = s3
        .store
        .complete_upload(&bucket, &input.key, &input.upload_id, &requested, &cond)
        .await
        .or_s3()?;
    let sums = convert::checksum_fields(&info.checksums);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(bucket.name().to_owned()),
        key: Some(info.key.clone()),
        e_tag: Some(convert::etag(&info.etag)),
        location: Some(format!("/{}/{}", bucket.name(), info.key)),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        checksum_type: sums.checksum_type,
        ..Default::default()
    }))
}

pub async fn abort(s3: &Coffer, req: S3Request<AbortMultipartUploadInput>) -> R<AbortMultipartUploadOutput> {
    let bucket = bucket(&req)?;
    s3.store
        .abort_upload(&bucket, &req.input.key, &req.input.upload_id)
        .await
        .or_s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(s3: &Coffer, req: S3Request<ListPartsInput>) -> R<ListPartsOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let marker = u32::try_from(input.part_number_marker.unwrap_or(0)).unwrap_or(0);
    let max = usize::try_from(input.max_parts.unwrap_or(1000))
        .unwrap_or(0)
        .min(MAX_LIST_KEYS);
    let page = s3
        .store
        .list_parts(&bucket, &input.key, &input.upload_id, marker, max)
        .await
        .or_s3()?;
    let next = page.parts.last().map(|p| p.number);
    let parts = page
        .parts
        .iter()
        .map(|p| {
            let sums = convert::checksum_fields(&p.checksums);
            Part {
                e_tag: Some(convert::etag(&p.etag)),
                last_modified: Some(convert::timestamp(p.modified_ms)),
                part_number: i32::try_from(p.number).ok(),
                size: i64::try_from(p.size).ok(),
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
            }
        })
        .collect();
    let who = owner(bucket.account_id());
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(bucket.name().to_owned()),
        key: Some(page.upload.key.clone()),
        upload_id: Some(page.upload.upload_id.clone()),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next.and_then(|n| i32::try_from(n).ok()),
        max_parts: i32::try_from(max).ok(),
        is_truncated: Some(page.is_truncated),
        parts: Some(parts),
        initiator: Some(Initiator {
            display_name: who.display_name.clone(),
            id: who.id.clone(),
        }),
        owner: Some(who),
        storage_class: Some(StorageClass::from(
            page.upload
                .attrs
                .storage_class
                .clone()
                .unwrap_or_else(|| "STANDARD".into()),
        )),
        checksum_algorithm: page
            .upload
            .checksum_algorithm
            .map(|a| ChecksumAlgorithm::from(a.name().to_owned())),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    s3: &Coffer,
    req: S3Request<ListMultipartUploadsInput>,
) -> R<ListMultipartUploadsOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let q = UploadsQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        max_uploads: usize::try_from(input.max_uploads.unwrap_or(1000)).unwrap_or(0),
    };
    let page = s3.store.list_uploads(&bucket, &q).await.or_s3()?;
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str().eq_ignore_ascii_case("url"));
    let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };
    let who = owner(bucket.account_id());
    let uploads = page
        .uploads
        .iter()
        .map(|u| MultipartUpload {
            initiated: Some(convert::timestamp(u.initiated_ms)),
            initiator: Some(Initiator {
                display_name: who.display_name.clone(),
                id: who.id.clone(),
            }),
            key: Some(enc(&u.key)),
            owner: Some(who.clone()),
            storage_class: Some(StorageClass::from(
                u.attrs.storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
            )),
            upload_id: Some(u.upload_id.clone()),
            checksum_algorithm: u
                .checksum_algorithm
                .map(|a| ChecksumAlgorithm::from(a.name().to_owned())),
            checksum_type: None,
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.name().to_owned()),
        common_prefixes: Some(
            page.common_prefixes
                .iter()
                .map(|p| CommonPrefix { prefix: Some(enc(p)) })
                .collect(),
        ),
        delimiter: input.delimiter.clone(),
        encoding_type: input.encoding_type.clone(),
        is_truncated: Some(page.is_truncated),
        key_marker: input.key_marker.clone(),
        max_uploads: input.max_uploads.or(Some(1000)),
        next_key_marker: page.next_key_marker.as_deref().map(enc),
        next_upload_id_marker: page.next_upload_id_marker.clone(),
        prefix: input.prefix.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        uploads: Some(uploads),
        request_charged: None,
    }))
}
