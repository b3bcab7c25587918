//! What the store keeps in the metadata store, and under which keys.
//!
//! Spaces: `buckets` (name → bucket), `buckets.by-instance` (instance/name → ""), `objects`
//! (bucket id/key → object), `uploads` (bucket id/key NUL upload id → upload), `parts`
//! (upload id/part number → part). Object keys are prefixed by the bucket's random id, not its
//! name, so nothing of a deleted bucket can leak into a new bucket of the same name.

use std::collections::BTreeMap;

use coffer_crypto::segments::{PREFIX_LEN, SALT_LEN, SegmentHeader};
use serde::{Deserialize, Serialize};

use crate::object::ObjectAttrs;

pub const BUCKETS: &str = "buckets";
pub const BUCKETS_BY_INSTANCE: &str = "buckets.by-instance";
pub const OBJECTS: &str = "objects";
pub const UPLOADS: &str = "uploads";
pub const PARTS: &str = "parts";
pub const BUCKET_KEYS: &str = "buckets.keys";
pub const ACTIVITY: &str = "activity";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// 32 hex characters, random; prefixes the bucket's object keys.
    pub id: String,
    pub name: String,
    pub instance_id: String,
    pub account_id: String,
    /// The LocationConstraint (`us-south-standard`, ...).
    pub location: String,
    pub created_ms: i64,
    /// The root key chosen at creation; it can never change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key: Option<RootKeyRef>,
}

/// The root key of an encrypted bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootKeyRef {
    /// The CRN as the client gave it (answered in `ibm-sse-kp-customer-root-key-crn`).
    pub crn: String,
    pub kms_instance: String,
    pub key_id: String,
}

/// An encrypted bucket's data key, wrapped by its root key. Kept apart from the (immutable)
/// bucket record because rotation rewraps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDek {
    pub ciphertext: String,
    pub key_version: String,
    pub updated_ms: i64,
}

/// How a piece is sealed at rest (`coffer_crypto::segments`); absent for plain buckets. The
/// byte fields are hex in the record, and arrays here: a GET reads them straight into the
/// segment header, without a string to allocate, clone and decode on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceSeal {
    pub segment_size: u32,
    #[serde(with = "hex_array")]
    pub salt: [u8; SALT_LEN],
    #[serde(with = "hex_array")]
    pub nonce_prefix: [u8; PREFIX_LEN],
}

impl PieceSeal {
    pub fn header(&self) -> SegmentHeader {
        SegmentHeader {
            segment_size: self.segment_size,
            salt: self.salt,
            nonce_prefix: self.nonce_prefix,
        }
    }
}

impl From<&SegmentHeader> for PieceSeal {
    fn from(h: &SegmentHeader) -> Self {
        Self {
            segment_size: h.segment_size,
            salt: h.salt,
            nonce_prefix: h.nonce_prefix,
        }
    }
}

/// A byte array as a hex string.
mod hex_array {
    use serde::de::{Deserializer, Error, Visitor};
    use serde::ser::Serializer;

    pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        struct Hex<const N: usize>;
        impl<const N: usize> Visitor<'_> for Hex<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{N} bytes in hex")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<[u8; N], E> {
                let mut out = [0u8; N];
                hex::decode_to_slice(v, &mut out)
                    .map_err(|_| E::custom(format_args!("expected {N} bytes in hex")))?;
                Ok(out)
            }
        }
        d.deserialize_str(Hex::<N>)
    }
}

/// One stored piece of an object: a blob holding `size` bytes of the object, or (a small
/// object) those bytes inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Empty when the bytes are inline.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blob: String,
    /// The stored bytes (sealed, for encrypted buckets), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    pub size: u64,
    /// The part's ETag when the object was assembled from a multipart upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<PieceSeal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub size: u64,
    /// Hex MD5, or `<hex>-<N>` for a multipart object; without quotes.
    pub etag: String,
    pub modified_ms: i64,
    #[serde(default)]
    pub attrs: ObjectAttrs,
    /// Algorithm name → base64 value (a composite value ends in `-<N>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    /// Whether the object was assembled from a multipart upload.
    #[serde(default)]
    pub multipart: bool,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    #[serde(default)]
    pub attrs: ObjectAttrs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<PieceSeal>,
}

pub fn object_key(bucket_id: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket_id.len() + 1 + key.len());
    k.extend_from_slice(bucket_id.as_bytes());
    k.push(b'/');
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn bucket_prefix(bucket_id: &str) -> Vec<u8> {
    object_key(bucket_id, "")
}

pub fn upload_key(bucket_id: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = object_key(bucket_id, key);
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

pub fn part_key(upload_id: &str, number: u32) -> Vec<u8> {
    format!("{upload_id}/{number:05}").into_bytes()
}

pub fn parts_prefix(upload_id: &str) -> Vec<u8> {
    format!("{upload_id}/").into_bytes()
}

pub fn by_instance_key(instance_id: &str, name: &str) -> Vec<u8> {
    format!("{instance_id}/{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_seal_is_hex_in_the_record() {
        let seal = PieceSeal {
            segment_size: 65536,
            salt: [0xab; SALT_LEN],
            nonce_prefix: [1, 2, 3, 4, 5, 6, 0xff],
        };
        let json = serde_json::to_string(&seal).unwrap();
        let salt = "ab".repeat(SALT_LEN);
        assert_eq!(
            json,
            format!(r#"{{"segment_size":65536,"salt":"{salt}","nonce_prefix":"010203040506ff"}}"#)
        );
        assert_eq!(serde_json::from_str::<PieceSeal>(&json).unwrap(), seal);
        // Escaped strings reach the visitor as owned strings; uppercase hex is hex too.
        let escaped = json.replace("010203040506ff", r"\u003010203040506FF");
        assert_eq!(serde_json::from_str::<PieceSeal>(&escaped).unwrap(), seal);
        for bad in ["0102030405", "010203040506fg", "010203040506ff00"] {
            let wrong = json.replace("010203040506ff", bad);
            assert!(serde_json::from_str::<PieceSeal>(&wrong).is_err(), "{bad}");
        }
    }
}
