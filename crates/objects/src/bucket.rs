//! Buckets: naming rules, location constraints, create, look up, list, delete.

use std::sync::Arc;

use coffer_storage::{Batch, KeyRange};

use crate::records::BUCKET_KEYS;
use crate::records::{
    BUCKETS, BUCKETS_BY_INSTANCE, BucketRecord, OBJECTS, UPLOADS, bucket_prefix, by_instance_key,
};
use crate::{Error, Result, Store, now_ms};

/// Who creates a bucket: the object-storage instance it will belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub account_id: String,
    pub instance_id: String,
}

/// A bucket as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Shared: every request clones its bucket, and the record is never changed in place.
    pub(crate) record: Arc<BucketRecord>,
    /// The record's stored bytes: writes into the bucket are conditioned on them, so that
    /// nothing lands in a bucket that was deleted (or deleted and created again) meanwhile.
    pub(crate) raw: Arc<Vec<u8>>,
}

impl BucketInfo {
    pub fn name(&self) -> &str {
        &self.record.name
    }
    pub fn instance_id(&self) -> &str {
        &self.record.instance_id
    }
    pub fn account_id(&self) -> &str {
        &self.record.account_id
    }
    pub fn location(&self) -> &str {
        &self.record.location
    }
    pub fn created_ms(&self) -> i64 {
        self.record.created_ms
    }
    /// The root key CRN of an encrypted bucket.
    pub fn root_key_crn(&self) -> Option<&str> {
        self.record.root_key.as_ref().map(|r| r.crn.as_str())
    }
}

/// S3's bucket naming rules (IBM COS follows them): 3 to 63 lowercase letters, digits, dots and
/// hyphens; starts and ends with a letter or digit; no `..`, `.-` or `-.`; not an IPv4 address.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let valid_chars = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-');
    let edge_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&b.len())
        && valid_chars
        && edge_ok(b.first())
        && edge_ok(b.last())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    if ok { Ok(()) } else { Err(Error::InvalidBucketName) }
}

const STORAGE_CLASSES: [&str; 4] = ["standard", "smart", "vault", "cold"];

impl Store {
    /// The bare region or `<region>-<class>`; absent means `<region>-standard`.
    fn location_for(&self, constraint: Option<&str>) -> Result<String> {
        let region = self.region.as_str();
        match constraint {
            None | Some("") => Ok(format!("{region}-standard")),
            Some(c) if c == region => Ok(format!("{region}-standard")),
            Some(c) => match c.strip_prefix(region).and_then(|rest| rest.strip_prefix('-')) {
                Some(class) if STORAGE_CLASSES.contains(&class) => Ok(c.to_owned()),
                _ => Err(Error::InvalidLocationConstraint),
            },
        }
    }

    /// Creates a bucket; with `root_key_crn`, encrypted under that root key for good.
    pub async fn create_bucket(
        &self,
        owner: &Owner,
        name: &str,
        constraint: Option<&str>,
        root_key_crn: Option<&str>,
    ) -> Result<BucketInfo> {
        validate_bucket_name(name)?;
        let location = self.location_for(constraint)?;
        if let Ok(existing) = self.bucket(name).await {
            return Err(self.taken(&existing, owner));
        }
        let root_key = match (root_key_crn, &self.encryption) {
            (None, _) => None,
            (Some(crn), Some(enc)) => Some(enc.resolve(owner, crn, &location).await?),
            (Some(_), None) => return Err(Error::KeyCrnNotFound),
        };
        let record = BucketRecord {
            id: hex::encode(rand::random::<[u8; 16]>()),
            name: name.to_owned(),
            instance_id: owner.instance_id.clone(),
            account_id: owner.account_id.clone(),
            location,
            created_ms: now_ms(),
            root_key,
        };
        let raw = serde_json::to_vec(&record)?;
        let mut b = Batch::new();
        b.expect_absent(BUCKETS, name)
            .put(BUCKETS, name, raw.clone())
            .put(
                BUCKETS_BY_INSTANCE,
                by_instance_key(&owner.instance_id, name),
                Vec::new(),
            );
        if let Some(enc) = &self.encryption
            && record.root_key.is_some()
        {
            let dek = enc.new_dek(&record).await?;
            b.put(BUCKET_KEYS, record.id.as_str(), serde_json::to_vec(&dek)?);
        }
        match self.meta.commit(b).await {
            Ok(()) => Ok(BucketInfo {
                record: Arc::new(record),
                raw: Arc::new(raw),
            }),
            Err(coffer_storage::Error::Conflict) => {
                let existing = self.bucket(name).await?;
                // Taken meanwhile: undo the registration unless the winner uses the same key.
                if let Some(enc) = &self.encryption
                    && existing.record.root_key.as_ref().map(|r| &r.key_id)
                        != record.root_key.as_ref().map(|r| &r.key_id)
                {
                    enc.release(&record).await;
                }
                Err(self.taken(&existing, owner))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn taken(&self, existing: &BucketInfo, owner: &Owner) -> Error {
        if existing.record.instance_id == owner.instance_id {
            Error::BucketAlreadyOwnedByYou
        } else {
            Error::BucketAlreadyExists
        }
    }

    /// The bucket named `name`. Every S3 request names one: its record, read and parsed, is kept
    /// (a GET 4 KiB read and parsed it for about 1 µs, an encrypted bucket's for more).
    pub async fn bucket(&self, name: &str) -> Result<BucketInfo> {
        let epoch = match self.buckets.get(name) {
            Ok(b) => return Ok(b),
            Err(epoch) => epoch,
        };
        let raw = self
            .meta
            .get(BUCKETS, name.as_bytes())
            .await?
            .ok_or(Error::NoSuchBucket)?;
        let bucket = BucketInfo {
            record: Arc::new(serde_json::from_slice(&raw)?),
            raw: Arc::new(raw),
        };
        self.buckets.put(epoch, name, bucket.clone());
        Ok(bucket)
    }

    /// Buckets of one instance, by name.
    pub async fn list_buckets(&self, instance_id: &str) -> Result<Vec<BucketInfo>> {
        let prefix = by_instance_key(instance_id, "");
        let mut out = Vec::new();
        let mut range = KeyRange::prefix(&prefix);
        loop {
            let page = self.meta.scan(BUCKETS_BY_INSTANCE, range.clone(), 1000).await?;
            let Some((last, _)) = page.last().cloned() else {
                break;
            };
            for (k, _) in page {
                let name = String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned();
                match self.bucket(&name).await {
                    Ok(b) if b.record.instance_id == instance_id => out.push(b),
                    Ok(_) | Err(Error::NoSuchBucket) => {}
                    Err(e) => return Err(e),
                }
            }
            range = KeyRange::prefix_after(&prefix, &last);
        }
        Ok(out)
    }

    /// Deletes an empty bucket and discards its unfinished multipart uploads.
    pub async fn delete_bucket(&self, bucket: &BucketInfo) -> Result<()> {
        let r = &bucket.record;
        let mut b = Batch::new();
        b.expect_value(BUCKETS, r.name.as_str(), bucket.raw.to_vec())
            .expect_no_prefix(OBJECTS, bucket_prefix(&r.id))
            .delete(BUCKETS, r.name.as_str())
            .delete(BUCKETS_BY_INSTANCE, by_instance_key(&r.instance_id, &r.name))
            .delete(BUCKET_KEYS, r.id.as_str());
        match self.meta.commit(b).await {
            Ok(()) => {
                self.buckets.changed();
                if let Some(enc) = &self.encryption {
                    enc.release(r).await;
                }
            }
            Err(coffer_storage::Error::Conflict) => {
                // Either an object exists, or the bucket is already gone (or was replaced).
                return match self.bucket(&r.name).await {
                    Ok(now) if now == *bucket => Err(Error::BucketNotEmpty),
                    Ok(_) | Err(Error::NoSuchBucket) => Err(Error::NoSuchBucket),
                    Err(e) => Err(e),
                };
            }
            Err(e) => return Err(e.into()),
        }
        let uploads = self
            .meta
            .scan(UPLOADS, KeyRange::prefix(&bucket_prefix(&r.id)), usize::MAX)
            .await?;
        for (_, v) in uploads {
            let upload: crate::records::UploadRecord = serde_json::from_slice(&v)?;
            self.discard_upload(&r.id, &upload).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.1", "a".repeat(63).as_str(), "1bucket"] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "ab",
            long.as_str(),
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "a-.b",
            "192.168.1.1",
            "a_b",
            "xn--abc",
            "abc-s3alias",
            "",
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
