//! Conversions between s3s DTO fields and the domain's types.

use std::collections::BTreeMap;

use coffer_objects::{ByteRange, ChecksumAlgorithm, ObjectAttrs, Preconditions};
use s3s::dto::{self, ETag, ETagCondition, Timestamp};
use time::OffsetDateTime;

pub fn timestamp(ms: i64) -> Timestamp {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub fn unix_seconds(t: &Timestamp) -> i64 {
    OffsetDateTime::from(t.clone()).unix_timestamp()
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn condition(c: &ETagCondition) -> String {
    match c.as_etag() {
        Some(e) => e.value().to_owned(),
        None => "*".to_owned(),
    }
}

pub fn preconditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Preconditions {
    Preconditions {
        if_match: if_match.map(condition),
        if_none_match: if_none_match.map(condition),
        if_modified_since: if_modified_since.map(unix_seconds),
        if_unmodified_since: if_unmodified_since.map(unix_seconds),
    }
}

pub fn range(r: &dto::Range) -> ByteRange {
    match *r {
        dto::Range::Int { first, last } => ByteRange::FromTo { first, last },
        dto::Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

pub fn content_range(r: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), size)
}

/// The request fields that describe an object.
pub struct AttrFields<'a> {
    pub content_type: Option<&'a String>,
    pub content_encoding: Option<&'a String>,
    pub content_disposition: Option<&'a String>,
    pub content_language: Option<&'a String>,
    pub cache_control: Option<&'a String>,
    pub expires: Option<&'a Timestamp>,
    pub storage_class: Option<&'a dto::StorageClass>,
    pub metadata: Option<&'a dto::Metadata>,
}

pub fn attrs(f: AttrFields<'_>) -> ObjectAttrs {
    let storage_class = f
        .storage_class
        .map(|s| s.as_str().to_owned())
        .filter(|s| s != "STANDARD");
    ObjectAttrs {
        content_type: f.content_type.cloned(),
        content_encoding: f.content_encoding.and_then(|e| without_aws_chunked(e)),
        content_disposition: f.content_disposition.cloned(),
        content_language: f.content_language.cloned(),
        cache_control: f.cache_control.cloned(),
        expires: f.expires.map(unix_seconds),
        storage_class,
        user_metadata: f
            .metadata
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default(),
    }
}

/// `aws-chunked` describes how the request body was sent, not the object: S3 drops it.
fn without_aws_chunked(encoding: &str) -> Option<String> {
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

pub fn metadata(a: &ObjectAttrs) -> Option<dto::Metadata> {
    (!a.user_metadata.is_empty()).then(|| {
        a.user_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

pub fn expires(a: &ObjectAttrs) -> Option<Timestamp> {
    a.expires
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map(Timestamp::from)
}

pub fn storage_class(a: &ObjectAttrs) -> Option<dto::StorageClass> {
    a.storage_class.clone().map(dto::StorageClass::from)
}

pub fn checksum_algorithm(a: &dto::ChecksumAlgorithm) -> Option<ChecksumAlgorithm> {
    ChecksumAlgorithm::from_name(a.as_str())
}

/// The checksum values a request carries, by algorithm.
#[derive(Default)]
pub struct SentChecksums<'a> {
    pub crc32: Option<&'a String>,
    pub crc32c: Option<&'a String>,
    pub crc64nvme: Option<&'a String>,
    pub sha1: Option<&'a String>,
    pub sha256: Option<&'a String>,
}

impl SentChecksums<'_> {
    pub fn values(&self) -> Vec<(ChecksumAlgorithm, String)> {
        [
            (ChecksumAlgorithm::Crc32, self.crc32),
            (ChecksumAlgorithm::Crc32c, self.crc32c),
            (ChecksumAlgorithm::Crc64Nvme, self.crc64nvme),
            (ChecksumAlgorithm::Sha1, self.sha1),
            (ChecksumAlgorithm::Sha256, self.sha256),
        ]
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| (a, v.clone())))
        .collect()
    }
}

/// Checksums announced as trailers (`x-amz-trailer: x-amz-checksum-crc32`).
pub fn trailer_algorithms(headers: &http::HeaderMap) -> Vec<ChecksumAlgorithm> {
    headers
        .get_all("x-amz-trailer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| {
            name.trim()
                .to_ascii_lowercase()
                .strip_prefix("x-amz-checksum-")
                .and_then(ChecksumAlgorithm::from_name)
        })
        .collect()
}

/// Checksum values received as trailers.
pub fn trailer_values(trailers: Option<&s3s::TrailingHeaders>) -> Vec<(ChecksumAlgorithm, String)> {
    let Some(t) = trailers else { return Vec::new() };
    t.read(|h| {
        ChecksumAlgorithm::ALL
            .into_iter()
            .filter_map(|a| {
                let name = format!("x-amz-checksum-{}", a.name().to_ascii_lowercase());
                h.get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (a, v.to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The stored checksums, as the five output fields of S3 responses.
#[derive(Default)]
pub struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub checksum_type: Option<dto::ChecksumType>,
}

pub fn checksum_fields(stored: &BTreeMap<String, String>) -> ChecksumFields {
    let get = |a: ChecksumAlgorithm| stored.get(a.name()).cloned();
    let composite = stored.values().any(|v| v.contains('-'));
    ChecksumFields {
        crc32: get(ChecksumAlgorithm::Crc32),
        crc32c: get(ChecksumAlgorithm::Crc32c),
        crc64nvme: get(ChecksumAlgorithm::Crc64Nvme),
        sha1: get(ChecksumAlgorithm::Sha1),
        sha256: get(ChecksumAlgorithm::Sha256),
        checksum_type: (!stored.is_empty()).then(|| {
            dto::ChecksumType::from_static(if composite {
                dto::ChecksumType::COMPOSITE
            } else {
                dto::ChecksumType::FULL_OBJECT
            })
        }),
    }
}

/// S3's `encoding-type=url`: percent-encode everything but unreserved characters and `/`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_round_trips_through_unquote_plus_rules() {
        assert_eq!(url_encode("a b+c/d%é"), "a%20b%2Bc/d%25%C3%A9");
    }

    #[test]
    fn aws_chunked_is_not_an_object_encoding() {
        assert_eq!(without_aws_chunked("aws-chunked"), None);
        assert_eq!(without_aws_chunked("aws-chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(without_aws_chunked("gzip").as_deref(), Some("gzip"));
    }

    #[test]
    fn trailers_are_recognized() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        assert_eq!(trailer_algorithms(&h), vec![ChecksumAlgorithm::Crc32]);
    }
}
