//! Objects: committing a staged body under a key, looking objects up, deleting them, copying.

use std::collections::BTreeMap;

use coffer_storage::{Batch, BlobId};
use serde::{Deserialize, Serialize};

use crate::bucket::BucketInfo;
use crate::ingest::{Staged, StagedBytes};
use crate::limits::MAX_USER_METADATA;
use crate::records::{BUCKETS, OBJECTS, ObjectRecord, Piece, object_key};
use crate::{Error, Result, Store, now_ms};

/// What the client says about an object, returned with it as it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `x-amz-meta-*`, names lowercased without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
}

impl ObjectAttrs {
    pub fn validate(&self) -> Result<()> {
        let total: usize = self.user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > MAX_USER_METADATA {
            return Err(Error::MetadataTooLarge);
        }
        Ok(())
    }
}

/// An object as callers see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub modified_ms: i64,
    pub attrs: ObjectAttrs,
    /// Algorithm name → base64 value; a composite (multipart) value ends in `-<N>`.
    pub checksums: BTreeMap<String, String>,
    /// Number of parts of an object assembled from a multipart upload.
    pub parts_count: Option<usize>,
    pub(crate) pieces: Vec<Piece>,
}

impl ObjectInfo {
    pub(crate) fn from_record(key: &str, r: ObjectRecord) -> Self {
        Self {
            key: key.to_owned(),
            size: r.size,
            etag: r.etag,
            modified_ms: r.modified_ms,
            attrs: r.attrs,
            checksums: r.checksums,
            parts_count: r.multipart.then_some(r.pieces.len()),
            pieces: r.pieces,
        }
    }

    /// The byte range of part `n` (1-based); a single-part object has one part.
    pub fn part_range(&self, n: u32) -> Option<std::ops::Range<u64>> {
        let idx = usize::try_from(n).ok()?.checked_sub(1)?;
        if self.parts_count.is_none() {
            return (idx == 0).then_some(0..self.size);
        }
        let start: u64 = self.pieces.iter().take(idx).map(|p| p.size).sum();
        let piece = self.pieces.get(idx)?;
        Some(start..start + piece.size)
    }

    pub(crate) fn blob_ids(&self) -> Vec<BlobId> {
        blob_ids(&self.pieces)
    }
}

pub(crate) fn blob_ids(pieces: &[Piece]) -> Vec<BlobId> {
    pieces.iter().filter_map(|p| BlobId::parse(&p.blob)).collect()
}

/// A condition on the object a write replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: only if no object exists.
    IfAbsent,
    /// `If-Match`: only if the current object has this ETag.
    IfMatch(String),
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
}

impl Store {
    pub(crate) async fn object_raw(&self, bucket: &BucketInfo, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(OBJECTS, &object_key(&bucket.record.id, key))
            .await?)
    }

    pub async fn head_object(&self, bucket: &BucketInfo, key: &str) -> Result<ObjectInfo> {
        self.guard(bucket, crate::DataOp::ReadObject).await?;
        let raw = self.object_raw(bucket, key).await?.ok_or(Error::NoSuchKey)?;
        Ok(ObjectInfo::from_record(key, ObjectRecord::decode(&raw)?))
    }

    /// After a conflict: the bucket is gone (or replaced) unless its record is unchanged.
    pub(crate) async fn ensure_bucket_unchanged(&self, bucket: &BucketInfo) -> Result<()> {
        match self.meta.get(BUCKETS, bucket.record.name.as_bytes()).await? {
            Some(raw) if raw == *bucket.raw => Ok(()),
            _ => Err(Error::NoSuchBucket),
        }
    }

    /// Makes `record` the object at `key`, atomically replacing whatever is there (last writer
    /// wins), and retires the blobs of the record it replaced.
    pub(crate) async fn commit_record(
        &self,
        bucket: &BucketInfo,
        key: &str,
        record: ObjectRecord,
        cond: &WriteCondition,
        extra: &Batch,
        extra_failed: fn() -> Error,
    ) -> Result<ObjectInfo> {
        let okey = object_key(&bucket.record.id, key);
        let value = record.encode()?;
        loop {
            let current = self.meta.get(OBJECTS, &okey).await?;
            let current_record: Option<ObjectRecord> =
                current.as_deref().map(ObjectRecord::decode).transpose()?;
            match (cond, &current_record) {
                (WriteCondition::IfAbsent, Some(_)) => return Err(Error::PreconditionFailed),
                (WriteCondition::IfMatch(_), None) => return Err(Error::NoSuchKey),
                (WriteCondition::IfMatch(e), Some(r)) if e.trim().trim_matches('"') != r.etag => {
                    return Err(Error::PreconditionFailed);
                }
                _ => {}
            }
            let mut b = Batch::new();
            b.expect_value(BUCKETS, bucket.record.name.as_str(), bucket.raw.to_vec())
                .expect(OBJECTS, okey.clone(), current.clone())
                .put(OBJECTS, okey.clone(), value.clone());
            b.conds.extend(extra.conds.iter().cloned());
            b.ops.extend(extra.ops.iter().cloned());
            match self.meta.commit(b).await {
                Ok(()) => {
                    if let Some(old) = current_record {
                        self.leases.retire(blob_ids(&old.pieces));
                    }
                    return Ok(ObjectInfo::from_record(key, record));
                }
                Err(coffer_storage::Error::Conflict) => {
                    self.ensure_bucket_unchanged(bucket).await?;
                    // The object did not change either, so one of the caller's conditions failed.
                    if !extra.conds.is_empty() && self.meta.get(OBJECTS, &okey).await? == current {
                        return Err(extra_failed());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stores a staged body as the object at `key`.
    pub async fn put_object(
        &self,
        bucket: &BucketInfo,
        key: &str,
        staged: Staged,
        attrs: ObjectAttrs,
        cond: &WriteCondition,
    ) -> Result<ObjectInfo> {
        attrs.validate()?;
        let checksums: BTreeMap<String, String> = staged
            .checksums
            .iter()
            .map(|(a, v)| (a.name().to_owned(), v.clone()))
            .collect();
        let record = ObjectRecord {
            size: staged.size,
            etag: staged.etag(),
            modified_ms: now_ms(),
            attrs,
            checksums,
            multipart: false,
            pieces: vec![Piece {
                blob: match &staged.bytes {
                    StagedBytes::Blob(id) => id.to_string(),
                    StagedBytes::Inline(_) => String::new(),
                },
                inline: match &staged.bytes {
                    StagedBytes::Blob(_) => None,
                    StagedBytes::Inline(b) => Some(b.clone()),
                },
                size: staged.size,
                seal: staged.seal,
                ..Piece::default()
            }],
        };
        let info = self
            .commit_record(bucket, key, record, cond, &Batch::new(), || Error::NoSuchBucket)
            .await?;
        staged.into_committed();
        Ok(info)
    }

    /// Deletes the object at `key`; deleting a missing object is not an error (S3 answers 204).
    pub async fn delete_object(&self, bucket: &BucketInfo, key: &str) -> Result<DeleteOutcome> {
        let okey = object_key(&bucket.record.id, key);
        loop {
            let Some(current) = self.meta.get(OBJECTS, &okey).await? else {
                return Ok(DeleteOutcome::NotFound);
            };
            let record = ObjectRecord::decode(&current)?;
            let mut b = Batch::new();
            b.expect_value(OBJECTS, okey.clone(), current)
                .delete(OBJECTS, okey.clone());
            match self.meta.commit(b).await {
                Ok(()) => {
                    self.leases.retire(blob_ids(&record.pieces));
                    return Ok(DeleteOutcome::Deleted);
                }
                Err(coffer_storage::Error::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
