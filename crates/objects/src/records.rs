//! What the store keeps in the metadata store, and under which keys.
//!
//! Spaces: `buckets` (name → bucket), `buckets.by-instance` (instance/name → ""), `objects`
//! (bucket id/key → object), `uploads` (bucket id/key NUL upload id → upload), `parts`
//! (upload id/part number → part). Object keys are prefixed by the bucket's random id, not its
//! name, so nothing of a deleted bucket can leak into a new bucket of the same name.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

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

/// How a piece is sealed at rest (`coffer_crypto::segments`); absent for plain buckets. An
/// object record keeps it raw after its JSON ([`RAW_TAIL`]); in JSON (part records, and object
/// records written before) the byte fields are hex. Arrays here: a GET reads them straight
/// into the segment header, without a string to allocate, clone and decode on the way.
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Empty when the bytes are inline.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blob: String,
    /// The stored bytes (sealed, for encrypted buckets) of a piece kept in its record: raw
    /// after the record's JSON, which tells their length (see [`ObjectRecord::encode`]).
    #[serde(
        rename = "inline_len",
        skip_deserializing,
        skip_serializing_if = "Option::is_none",
        serialize_with = "inline_len"
    )]
    pub inline: Option<Bytes>,
    /// The length of the inline bytes, as read; [`ObjectRecord::decode`] takes them.
    #[serde(default, rename = "inline_len", skip_serializing)]
    pub(crate) stored_len: Option<u64>,
    /// Inline bytes as records written before kept them: base64 in the JSON.
    #[serde(default, rename = "inline", skip_serializing)]
    pub(crate) stored_base64: Option<String>,
    pub size: u64,
    /// The part's ETag when the object was assembled from a multipart upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    /// How the piece is sealed: raw in the record's tail, after the JSON, which says
    /// `"sealed": true` (see [`ObjectRecord::encode`]).
    #[serde(
        rename = "sealed",
        skip_deserializing,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sealed"
    )]
    pub seal: Option<PieceSeal>,
    /// Whether the tail holds a seal for this piece, as read; [`ObjectRecord::decode`] takes it.
    #[serde(default, rename = "sealed", skip_serializing)]
    pub(crate) stored_sealed: bool,
    /// The seal as records written before kept it: hex in the JSON.
    #[serde(default, rename = "seal", skip_serializing)]
    pub(crate) stored_hex_seal: Option<PieceSeal>,
}

fn sealed<S: serde::Serializer>(_: &Option<PieceSeal>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(true)
}

/// A seal in a record's tail: the segment size (u32, big-endian), the salt, the nonce prefix.
const SEAL_LEN: usize = 4 + SALT_LEN + PREFIX_LEN;

impl PieceSeal {
    fn to_raw(self) -> [u8; SEAL_LEN] {
        let mut out = [0u8; SEAL_LEN];
        out[..4].copy_from_slice(&self.segment_size.to_be_bytes());
        out[4..4 + SALT_LEN].copy_from_slice(&self.salt);
        out[4 + SALT_LEN..].copy_from_slice(&self.nonce_prefix);
        out
    }

    fn from_raw(raw: &[u8; SEAL_LEN]) -> Self {
        let mut seal = Self {
            segment_size: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            salt: [0; SALT_LEN],
            nonce_prefix: [0; PREFIX_LEN],
        };
        seal.salt.copy_from_slice(&raw[4..4 + SALT_LEN]);
        seal.nonce_prefix.copy_from_slice(&raw[4 + SALT_LEN..]);
        seal
    }
}

fn inline_len<S: serde::Serializer>(bytes: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(bytes.as_ref().map_or(0, |b| b.len() as u64))
}

/// Begins a record stored as its JSON then the bytes of its pieces, raw: this byte, the
/// JSON's length (u32, big-endian), the JSON, then for each piece in order its seal (when it
/// is sealed, [`SEAL_LEN`] bytes) and its inline bytes (when it has them). Base64 inside the
/// JSON cost a 4 KiB GET more than the rest of its record (decoding it, and scanning and
/// validating the string around it), and every listing paid it too; the seal in hex cost an
/// encrypted one about as much as opening its bytes. A record that begins with `{` is JSON
/// alone, as records were written before; records of either form written before keep their
/// seals in hex in the JSON.
const RAW_TAIL: u8 = 1;

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

impl ObjectRecord {
    /// The stored form (see [`RAW_TAIL`]).
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let json = serde_json::to_vec(self)?;
        let len = u32::try_from(json.len()).map_err(serde::ser::Error::custom)?;
        let tail: usize = self
            .pieces
            .iter()
            .map(|p| p.seal.map_or(0, |_| SEAL_LEN) + p.inline.as_ref().map_or(0, Bytes::len))
            .sum();
        let mut out = Vec::with_capacity(5 + json.len() + tail);
        out.push(RAW_TAIL);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&json);
        for p in &self.pieces {
            if let Some(seal) = p.seal {
                out.extend_from_slice(&seal.to_raw());
            }
            if let Some(bytes) = &p.inline {
                out.extend_from_slice(bytes);
            }
        }
        Ok(out)
    }

    /// Reads a stored record, of either form.
    pub fn decode(raw: &[u8]) -> crate::Result<Self> {
        let corrupt = |what: &str| crate::Error::Corrupt(format!("object record: {what}"));
        let (json, mut tail) = match raw.split_first() {
            Some((&RAW_TAIL, rest)) => {
                let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt("short"))?;
                let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| corrupt("length"))?;
                (
                    rest.get(..len).ok_or_else(|| corrupt("short JSON"))?,
                    &rest[len..],
                )
            }
            _ => (raw, &[][..]),
        };
        let mut record: Self = serde_json::from_slice(json)?;
        for p in &mut record.pieces {
            p.seal = match (std::mem::take(&mut p.stored_sealed), p.stored_hex_seal.take()) {
                (true, _) => {
                    let (raw, rest) = tail
                        .split_first_chunk::<SEAL_LEN>()
                        .ok_or_else(|| corrupt("short seal"))?;
                    tail = rest;
                    Some(PieceSeal::from_raw(raw))
                }
                (false, hex) => hex,
            };
            p.inline = match (p.stored_len.take(), p.stored_base64.take()) {
                (Some(n), _) => {
                    let n = usize::try_from(n).map_err(|_| corrupt("inline length"))?;
                    let (bytes, rest) = tail
                        .split_at_checked(n)
                        .ok_or_else(|| corrupt("short inline bytes"))?;
                    tail = rest;
                    Some(Bytes::copy_from_slice(bytes))
                }
                (None, Some(b64)) => Some(Bytes::from(
                    BASE64.decode(b64).map_err(|_| corrupt("bad inline base64"))?,
                )),
                (None, None) => None,
            };
        }
        if !tail.is_empty() {
            return Err(corrupt("bytes after the inline pieces"));
        }
        Ok(record)
    }
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

    fn record(pieces: Vec<Piece>) -> ObjectRecord {
        ObjectRecord {
            size: pieces.iter().map(|p| p.size).sum(),
            etag: "0123456789abcdef0123456789abcdef".into(),
            modified_ms: 1_764_000_000_000,
            attrs: ObjectAttrs::default(),
            checksums: BTreeMap::new(),
            multipart: false,
            pieces,
        }
    }

    fn inline(bytes: &[u8]) -> Piece {
        Piece {
            inline: Some(Bytes::copy_from_slice(bytes)),
            size: bytes.len() as u64,
            ..Piece::default()
        }
    }

    #[test]
    fn inline_bytes_follow_the_json_raw_and_read_back() {
        // `"` and `\` and invalid UTF-8 in the bytes: they are not in the JSON.
        let bytes: Vec<u8> = (0..=255u8).chain(*b"\"\\{}").collect();
        let blob = Piece {
            blob: "b1".into(),
            size: 10,
            ..Piece::default()
        };
        for r in [
            record(vec![inline(&bytes)]),
            record(vec![inline(b"")]),
            record(vec![inline(b"one"), blob.clone(), inline(b"two")]),
            record(vec![blob]),
        ] {
            let raw = r.encode().unwrap();
            assert_eq!(raw[0], RAW_TAIL);
            assert_eq!(ObjectRecord::decode(&raw).unwrap(), r);
        }
        let raw = record(vec![inline(&bytes)]).encode().unwrap();
        assert!(raw.ends_with(&bytes), "the bytes are stored as they are");
    }

    fn seal(n: u8) -> PieceSeal {
        PieceSeal {
            segment_size: 65536 + u32::from(n),
            salt: [n; SALT_LEN],
            nonce_prefix: [n ^ 0xff; PREFIX_LEN],
        }
    }

    #[test]
    fn seals_follow_the_json_raw_and_read_back() {
        let sealed = |p: Piece, n| Piece {
            seal: Some(seal(n)),
            ..p
        };
        let blob = Piece {
            blob: "b1".into(),
            size: 10,
            ..Piece::default()
        };
        for r in [
            record(vec![sealed(inline(b"ciphertext"), 1)]),
            record(vec![sealed(inline(b""), 2)]),
            record(vec![sealed(blob.clone(), 3), sealed(blob.clone(), 4)]),
            record(vec![
                sealed(inline(b"one"), 5),
                sealed(blob.clone(), 6),
                inline(b"two"),
                blob,
            ]),
        ] {
            let raw = r.encode().unwrap();
            assert_eq!(ObjectRecord::decode(&raw).unwrap(), r);
            let json_len = u32::from_be_bytes(raw[1..5].try_into().unwrap()) as usize;
            let json = std::str::from_utf8(&raw[5..5 + json_len]).unwrap();
            assert!(
                json.contains(r#""sealed":true"#) && !json.contains("salt"),
                "{json}"
            );
        }
        // The seal, then the inline bytes.
        let raw = record(vec![sealed(inline(b"xyz"), 7)]).encode().unwrap();
        let tail = [&seal(7).to_raw()[..], b"xyz"].concat();
        assert!(raw.ends_with(&tail));
        // A tail that ends inside a seal is corrupt.
        let raw = record(vec![sealed(blob_piece(), 8)]).encode().unwrap();
        for cut in 1..=SEAL_LEN {
            assert!(ObjectRecord::decode(&raw[..raw.len() - cut]).is_err(), "{cut}");
        }
    }

    fn blob_piece() -> Piece {
        Piece {
            blob: "b2".into(),
            size: 3,
            ..Piece::default()
        }
    }

    #[test]
    fn records_written_before_keep_their_seals_in_hex() {
        let hex_seal = serde_json::to_string(&seal(9)).unwrap();
        let json = format!(
            r#"{{"size":3,"etag":"e","modified_ms":1,"pieces":[{{"blob":"b2","size":3,"seal":{hex_seal}}}]}}"#
        );
        let mut with_tail = vec![RAW_TAIL];
        with_tail.extend_from_slice(&(json.len() as u32).to_be_bytes());
        with_tail.extend_from_slice(json.as_bytes());
        for old in [json.as_bytes(), &with_tail[..]] {
            let r = ObjectRecord::decode(old).unwrap();
            assert_eq!(r.pieces[0].seal, Some(seal(9)));
            // Written again, the seal is raw and reads the same.
            let again = r.encode().unwrap();
            assert!(again.ends_with(&seal(9).to_raw()));
            assert_eq!(ObjectRecord::decode(&again).unwrap(), r);
        }
    }

    #[test]
    fn records_written_before_keep_their_inline_bytes_in_base64() {
        let old = format!(
            r#"{{"size":5,"etag":"e","modified_ms":1,"pieces":[{{"inline":"{}","size":5}}]}}"#,
            BASE64.encode(b"hello")
        );
        let r = ObjectRecord::decode(old.as_bytes()).unwrap();
        assert_eq!(r.pieces[0].inline.as_deref(), Some(&b"hello"[..]));
        // Written again, it is in the new form and reads the same.
        assert_eq!(ObjectRecord::decode(&r.encode().unwrap()).unwrap(), r);
    }

    #[test]
    fn a_damaged_record_is_corrupt_not_a_panic() {
        let raw = record(vec![inline(b"abcdef")]).encode().unwrap();
        let json_end = raw.len() - 6;
        let mut longer = raw.clone();
        longer.push(0);
        for bad in [
            &raw[..1],
            &raw[..3],
            &raw[..json_end - 1],
            &raw[..json_end + 3],
            &longer[..],
        ] {
            assert!(ObjectRecord::decode(bad).is_err(), "{} bytes", bad.len());
        }
    }
}
