//! ListObjects (v1 and v2) and ListObjectVersions (every object is version `null`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use coffer_objects::{ListPage, ListQuery, ListedObject, ObjectInfo};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::access::bucket;
use crate::buckets::owner;
use crate::convert::{self, url_encode};
use crate::error::OrS3;
use crate::service::Coffer;

type R<T> = S3Result<S3Response<T>>;

fn max_keys(n: Option<i32>) -> S3Result<usize> {
    match n {
        None => Ok(coffer_objects::limits::MAX_LIST_KEYS),
        Some(n) => usize::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
    }
}

/// Applies `encoding-type=url` to a key or prefix when asked.
struct Enc(bool);

impl Enc {
    fn new(e: Option<&EncodingType>) -> Self {
        Self(e.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }
    fn s(&self, s: &str) -> String {
        if self.0 { url_encode(s) } else { s.to_owned() }
    }
    fn opt(&self, s: Option<&String>) -> Option<String> {
        s.map(|s| self.s(s))
    }
}

fn storage_class(o: &ObjectInfo) -> String {
    o.attrs.storage_class.clone().unwrap_or_else(|| "STANDARD".into())
}

fn contents(page: &ListPage, enc: &Enc, owner_account: Option<&str>) -> (Vec<Object>, Vec<CommonPrefix>) {
    let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
    for e in &page.entries {
        match e {
            ListedObject::Object(o) => objects.push(Object {
                key: Some(enc.s(&o.key)),
                e_tag: Some(convert::etag(&o.etag)),
                last_modified: Some(convert::timestamp(o.modified_ms)),
                size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                storage_class: Some(ObjectStorageClass::from(storage_class(o))),
                owner: owner_account.map(owner),
                ..Default::default()
            }),
            ListedObject::CommonPrefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc.s(p)),
            }),
        }
    }
    (objects, prefixes)
}

pub async fn v1(s3: &Coffer, req: S3Request<ListObjectsInput>) -> R<ListObjectsOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let page = s3.store.list_objects(&bucket, &q).await.or_s3()?;
    let enc = Enc::new(input.encoding_type.as_ref());
    let (objects, prefixes) = contents(&page, &enc, Some(bucket.account_id()));
    let has_delimiter = q.delimiter.as_deref().is_some_and(|d| !d.is_empty());
    let output = ListObjectsOutput {
        name: Some(bucket.name().to_owned()),
        prefix: Some(enc.s(&q.prefix)),
        marker: Some(enc.s(input.marker.as_deref().unwrap_or(""))),
        max_keys: input.max_keys.or(Some(1000)),
        is_truncated: Some(page.is_truncated),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        delimiter: enc.opt(input.delimiter.as_ref()),
        next_marker: (page.is_truncated && has_delimiter)
            .then(|| page.last.as_deref().map(|l| enc.s(l)))
            .flatten(),
        encoding_type: input.encoding_type.clone(),
        request_charged: None,
    };
    let mut resp = S3Response::new(output);
    crate::buckets::key_protect_headers(&bucket, &mut resp.headers);
    Ok(resp)
}

pub async fn v2(s3: &Coffer, req: S3Request<ListObjectsV2Input>) -> R<ListObjectsV2Output> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let after = match &input.continuation_token {
        Some(t) => Some(
            TOKEN
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after,
        max_keys: max_keys(input.max_keys)?,
    };
    let page = s3.store.list_objects(&bucket, &q).await.or_s3()?;
    let enc = Enc::new(input.encoding_type.as_ref());
    let owner_account = input.fetch_owner.unwrap_or(false).then_some(bucket.account_id());
    let (objects, prefixes) = contents(&page, &enc, owner_account);
    let output = ListObjectsV2Output {
        name: Some(bucket.name().to_owned()),
        prefix: Some(enc.s(&q.prefix)),
        max_keys: input.max_keys.or(Some(1000)),
        key_count: Some(i32::try_from(page.entries.len()).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token.clone(),
        is_truncated: Some(page.is_truncated),
        next_continuation_token: page
            .is_truncated
            .then(|| page.last.as_ref().map(|l| TOKEN.encode(l)))
            .flatten(),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        delimiter: enc.opt(input.delimiter.as_ref()),
        encoding_type: input.encoding_type.clone(),
        start_after: enc.opt(input.start_after.as_ref()),
        request_charged: None,
    };
    Ok(S3Response::new(output))
}

pub async fn versions(s3: &Coffer, req: S3Request<ListObjectVersionsInput>) -> R<ListObjectVersionsOutput> {
    let bucket = bucket(&req)?;
    let input = &req.input;
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: input.key_marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let page = s3.store.list_objects(&bucket, &q).await.or_s3()?;
    let enc = Enc::new(input.encoding_type.as_ref());
    let mut versions = Vec::new();
    let mut prefixes = Vec::new();
    for e in &page.entries {
        match e {
            ListedObject::Object(o) => versions.push(ObjectVersion {
                e_tag: Some(convert::etag(&o.etag)),
                is_latest: Some(true),
                key: Some(enc.s(&o.key)),
                last_modified: Some(convert::timestamp(o.modified_ms)),
                owner: Some(owner(bucket.account_id())),
                size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                storage_class: Some(ObjectVersionStorageClass::from(storage_class(o))),
                version_id: Some("null".into()),
                ..Default::default()
            }),
            ListedObject::CommonPrefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc.s(p)),
            }),
        }
    }
    let output = ListObjectVersionsOutput {
        common_prefixes: Some(prefixes),
        delete_markers: None,
        delimiter: enc.opt(input.delimiter.as_ref()),
        encoding_type: input.encoding_type.clone(),
        is_truncated: Some(page.is_truncated),
        key_marker: Some(enc.s(input.key_marker.as_deref().unwrap_or(""))),
        max_keys: input.max_keys.or(Some(1000)),
        name: Some(bucket.name().to_owned()),
        next_key_marker: page
            .is_truncated
            .then(|| page.last.as_deref().map(|l| enc.s(l)))
            .flatten(),
        next_version_id_marker: page.is_truncated.then(|| "null".to_owned()),
        prefix: Some(enc.s(&q.prefix)),
        request_charged: None,
        version_id_marker: input.version_id_marker.clone(),
        versions: Some(versions),
    };
    Ok(S3Response::new(output))
}
