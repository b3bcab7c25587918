//! The object store's domain: buckets, objects, multipart uploads and listing, on any
//! [`MetaStore`] and [`BlobStore`].
//!
//! Durability rule: an object's bytes are durable in a finished blob before the metadata that
//! points to them is committed, and a blob is deleted only after no committed record points
//! to it (and no reader still streams it). A crash in between leaves an unreferenced blob,
//! which [`Store::sweep_orphans`] removes at start.
//!
//! This crate knows nothing of HTTP or S3 wire formats; it never builds a cipher itself.

mod activity;
mod bucket;
mod copy;
mod decrypt;
mod digests;
mod encryption;
mod error;
mod ingest;
mod leases;
mod list;
mod multipart;
mod object;
mod precondition;
mod read;
mod records;
mod sweep;

use std::sync::Arc;

use coffer_storage::{BlobStore, MetaStore};

pub use coffer_crypto::ChecksumAlgorithm;
pub use encryption::{DataOp, KeyAccess, key_allows};

pub use bucket::{BucketInfo, Owner, validate_bucket_name};
pub use copy::CopySource;
pub use error::{BodyError, Error, Result};
pub use ingest::{StageOptions, Staged};
pub use list::{ListPage, ListQuery, ListedObject};
pub use multipart::{CompletePart, PartInfo, PartsPage, UploadInfo, UploadsPage, UploadsQuery};
pub use object::{DeleteOutcome, ObjectAttrs, ObjectInfo, WriteCondition};
pub use precondition::Preconditions;
pub use read::{BodyStream, ByteRange, ObjectBody};
pub use sweep::SweepReport;

/// The S3 rules this store enforces.
pub mod limits {
    /// Largest single PUT and largest part.
    pub const MAX_PUT_SIZE: u64 = 5 << 30;
    /// Smallest part other than the last.
    pub const MIN_PART_SIZE: u64 = 5 << 20;
    pub const MAX_PART_NUMBER: u32 = 10_000;
    /// Sum of the lengths of user metadata names and values.
    pub const MAX_USER_METADATA: usize = 2048;
    pub const MAX_LIST_KEYS: usize = 1000;
}

/// The object store.
#[derive(Clone)]
pub struct Store {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    leases: Arc<leases::Leases>,
    region: String,
    encryption: Option<Arc<encryption::Encryption>>,
    /// Bucket records by name. A record never changes; deleting its bucket forgets it.
    buckets: Arc<coffer_storage::Cache<BucketInfo>>,
}

impl Store {
    /// `region` is the location buckets are created in (`us-south` by default).
    pub fn new(meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>, region: &str) -> Self {
        let leases = Arc::new(leases::Leases::new(blobs.clone()));
        Self {
            meta,
            blobs,
            leases,
            region: region.to_owned(),
            encryption: None,
            buckets: Arc::default(),
        }
    }

    /// Enables buckets encrypted under root keys of `kms`.
    pub fn with_kms(mut self, kms: coffer_kms::Kms) -> Self {
        self.encryption = Some(encryption::Encryption::new(kms, self.meta.clone()));
        self
    }

    /// The most recent activity events (newest last).
    pub async fn activity(&self, limit: usize) -> Result<Vec<serde_json::Value>> {
        activity::recent(&*self.meta, limit).await
    }

    /// Refuses `op` on an encrypted bucket whose key does not allow it.
    pub(crate) async fn guard(&self, bucket: &BucketInfo, op: DataOp) -> Result<()> {
        match &self.encryption {
            Some(e) => e.check(&bucket.record, op).await,
            None if bucket.record.root_key.is_some() => Err(Error::KmsUnavailable),
            None => Ok(()),
        }
    }

    pub(crate) async fn dek(&self, bucket: &BucketInfo) -> Result<Arc<encryption::BucketKeys>> {
        self.encryption
            .as_ref()
            .ok_or(Error::KmsUnavailable)?
            .dek(&bucket.record)
            .await
    }

    /// Returns once the blobs retired so far are deleted.
    pub async fn settled(&self) {
        self.leases.settled().await;
    }

    pub fn region(&self) -> &str {
        &self.region
    }
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod encryption_tests;
#[cfg(test)]
mod tests;
