//! Multipart uploads: create, upload parts, list, complete, abort.
//!
//! Parts are stored as blobs of their own; completing an upload writes one object record that
//! points to the chosen parts' blobs, so no byte is copied.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_crypto::{ChecksumAlgorithm, Checksums, Md5};
use coffer_storage::{Batch, BlobId, KeyRange};

use crate::bucket::BucketInfo;
use crate::ingest::Staged;
use crate::limits::{MAX_PART_NUMBER, MIN_PART_SIZE};
use crate::object::{ObjectAttrs, ObjectInfo, WriteCondition};
use crate::records::{
    ObjectRecord, PARTS, PartRecord, Piece, UPLOADS, UploadRecord, bucket_prefix, object_key, part_key,
    parts_prefix, upload_key,
};
use crate::{Error, Result, Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub attrs: ObjectAttrs,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

impl From<UploadRecord> for UploadInfo {
    fn from(r: UploadRecord) -> Self {
        Self {
            checksum_algorithm: r
                .checksum_algorithm
                .as_deref()
                .and_then(ChecksumAlgorithm::from_name),
            upload_id: r.upload_id,
            key: r.key,
            initiated_ms: r.initiated_ms,
            attrs: r.attrs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    pub modified_ms: i64,
    pub checksums: BTreeMap<String, String>,
}

impl From<PartRecord> for PartInfo {
    fn from(r: PartRecord) -> Self {
        Self {
            number: r.number,
            size: r.size,
            etag: r.etag,
            modified_ms: r.modified_ms,
            checksums: r.checksums,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsPage {
    pub upload: UploadInfo,
    pub parts: Vec<PartInfo>,
    pub is_truncated: bool,
}

/// A part named in a CompleteMultipartUpload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletePart {
    pub number: u32,
    pub etag: String,
    /// Checksums the client sent for the part (algorithm, base64).
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadsQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    pub max_uploads: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadsPage {
    pub uploads: Vec<UploadInfo>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

fn same_etag(a: &str, b: &str) -> bool {
    a.trim().trim_matches('"') == b.trim().trim_matches('"')
}

impl Store {
    pub async fn create_upload(
        &self,
        bucket: &BucketInfo,
        key: &str,
        attrs: ObjectAttrs,
        checksum_algorithm: Option<ChecksumAlgorithm>,
    ) -> Result<UploadInfo> {
        attrs.validate()?;
        self.guard(bucket, crate::DataOp::WriteObject).await?;
        let record = UploadRecord {
            upload_id: hex::encode(rand::random::<[u8; 24]>()),
            key: key.to_owned(),
            initiated_ms: now_ms(),
            attrs,
            checksum_algorithm: checksum_algorithm.map(|a| a.name().to_owned()),
        };
        let mut b = Batch::new();
        b.expect_value(
            crate::records::BUCKETS,
            bucket.record.name.as_str(),
            bucket.raw.to_vec(),
        )
        .put(
            UPLOADS,
            upload_key(&bucket.record.id, key, &record.upload_id),
            serde_json::to_vec(&record)?,
        );
        match self.meta.commit(b).await {
            Ok(()) => Ok(record.into()),
            Err(coffer_storage::Error::Conflict) => Err(Error::NoSuchBucket),
            Err(e) => Err(e.into()),
        }
    }

    async fn upload_raw(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
    ) -> Result<(UploadRecord, Vec<u8>)> {
        let raw = self
            .meta
            .get(UPLOADS, &upload_key(&bucket.record.id, key, upload_id))
            .await?
            .ok_or(Error::NoSuchUpload)?;
        Ok((serde_json::from_slice(&raw)?, raw))
    }

    pub async fn upload(&self, bucket: &BucketInfo, key: &str, upload_id: &str) -> Result<UploadInfo> {
        Ok(self.upload_raw(bucket, key, upload_id).await?.0.into())
    }

    pub async fn upload_part(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
        number: u32,
        staged: Staged,
    ) -> Result<PartInfo> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(Error::InvalidArgument(format!(
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            )));
        }
        let (_, upload_raw) = self.upload_raw(bucket, key, upload_id).await?;
        let record = PartRecord {
            number,
            blob: staged.blob()?.to_string(),
            size: staged.size,
            etag: staged.etag(),
            modified_ms: now_ms(),
            checksums: staged
                .checksums
                .iter()
                .map(|(a, v)| (a.name().to_owned(), v.clone()))
                .collect(),
            seal: staged.seal,
        };
        let pkey = part_key(upload_id, number);
        let value = serde_json::to_vec(&record)?;
        loop {
            let current = self.meta.get(PARTS, &pkey).await?;
            let mut b = Batch::new();
            b.expect_value(
                UPLOADS,
                upload_key(&bucket.record.id, key, upload_id),
                upload_raw.clone(),
            )
            .expect(PARTS, pkey.clone(), current.clone())
            .put(PARTS, pkey.clone(), value.clone());
            match self.meta.commit(b).await {
                Ok(()) => {
                    staged.into_committed();
                    if let Some(old) = current {
                        let old: PartRecord = serde_json::from_slice(&old)?;
                        self.leases.retire(BlobId::parse(&old.blob));
                    }
                    return Ok(record.into());
                }
                Err(coffer_storage::Error::Conflict) => {
                    // Gone (completed or aborted), or a concurrent upload of the same part.
                    self.upload_raw(bucket, key, upload_id).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn parts(&self, upload_id: &str) -> Result<Vec<PartRecord>> {
        let entries = self
            .meta
            .scan(PARTS, KeyRange::prefix(&parts_prefix(upload_id)), usize::MAX)
            .await?;
        entries
            .into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    }

    /// Parts after `marker`, up to `max`.
    pub async fn list_parts(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
        marker: u32,
        max: usize,
    ) -> Result<PartsPage> {
        let (upload, _) = self.upload_raw(bucket, key, upload_id).await?;
        let after = part_key(upload_id, marker);
        let range = KeyRange::prefix_after(&parts_prefix(upload_id), &after);
        let mut entries = self.meta.scan(PARTS, range, max.saturating_add(1)).await?;
        let is_truncated = entries.len() > max;
        entries.truncate(max);
        let parts = entries
            .into_iter()
            .map(|(_, v)| Ok(PartInfo::from(serde_json::from_slice::<PartRecord>(&v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(PartsPage {
            upload: upload.into(),
            parts,
            is_truncated,
        })
    }

    pub async fn complete_upload(
        &self,
        bucket: &BucketInfo,
        key: &str,
        upload_id: &str,
        requested: &[CompletePart],
        cond: &WriteCondition,
    ) -> Result<ObjectInfo> {
        self.guard(bucket, crate::DataOp::WriteObject).await?;
        let (upload, upload_raw) = self.upload_raw(bucket, key, upload_id).await?;
        if requested.is_empty() {
            return Err(Error::InvalidRequest("You must specify at least one part".into()));
        }
        if requested
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.number >= b.number))
        {
            return Err(Error::InvalidPartOrder);
        }
        let stored = self.parts(upload_id).await?;
        let mut by_number: HashMap<u32, PartRecord> = stored.iter().map(|p| (p.number, p.clone())).collect();
        let mut chosen = Vec::with_capacity(requested.len());
        for req in requested {
            let part = by_number
                .remove(&req.number)
                .ok_or_else(|| invalid_part(req.number))?;
            let checksums_ok = req
                .checksums
                .iter()
                .all(|(a, v)| part.checksums.get(a.name()).is_none_or(|s| s == v));
            if !same_etag(&req.etag, &part.etag) || !checksums_ok {
                return Err(invalid_part(req.number));
            }
            chosen.push(part);
        }
        let last = chosen.len() - 1;
        if chosen
            .iter()
            .enumerate()
            .any(|(i, p)| i < last && p.size < MIN_PART_SIZE)
        {
            return Err(Error::EntityTooSmall);
        }

        let record = ObjectRecord {
            size: chosen.iter().map(|p| p.size).sum(),
            etag: multipart_etag(&chosen)?,
            modified_ms: now_ms(),
            checksums: upload
                .checksum_algorithm
                .as_deref()
                .and_then(ChecksumAlgorithm::from_name)
                .and_then(|alg| composite_checksum(alg, &chosen))
                .into_iter()
                .collect(),
            attrs: upload.attrs.clone(),
            multipart: true,
            pieces: chosen
                .iter()
                .map(|p| Piece {
                    blob: p.blob.clone(),
                    size: p.size,
                    etag: Some(p.etag.clone()),
                    checksums: p.checksums.clone(),
                    seal: p.seal,
                    ..Piece::default()
                })
                .collect(),
        };
        let mut extra = Batch::new();
        extra
            .expect_value(UPLOADS, upload_key(&bucket.record.id, key, upload_id), upload_raw)
            .delete(UPLOADS, upload_key(&bucket.record.id, key, upload_id));
        for p in &stored {
            extra.delete(PARTS, part_key(upload_id, p.number));
        }
        let info = self
            .commit_record(bucket, key, record, cond, &extra, || Error::NoSuchUpload)
            .await?;
        // Parts uploaded but not named in the request are dropped.
        self.leases
            .retire(by_number.values().filter_map(|p| BlobId::parse(&p.blob)));
        Ok(info)
    }

    pub async fn abort_upload(&self, bucket: &BucketInfo, key: &str, upload_id: &str) -> Result<()> {
        let (upload, _) = self.upload_raw(bucket, key, upload_id).await?;
        self.discard_upload(&bucket.record.id, &upload).await
    }

    /// Deletes an upload's records, then its parts' blobs.
    pub(crate) async fn discard_upload(&self, bucket_id: &str, upload: &UploadRecord) -> Result<()> {
        let parts = self.parts(&upload.upload_id).await?;
        let mut b = Batch::new();
        b.delete(UPLOADS, upload_key(bucket_id, &upload.key, &upload.upload_id));
        for p in &parts {
            b.delete(PARTS, part_key(&upload.upload_id, p.number));
        }
        self.meta.commit(b).await?;
        self.leases
            .retire(parts.iter().filter_map(|p| BlobId::parse(&p.blob)));
        Ok(())
    }

    pub async fn list_uploads(&self, bucket: &BucketInfo, q: &UploadsQuery) -> Result<UploadsPage> {
        let base = bucket_prefix(&bucket.record.id);
        let full_prefix = [base.as_slice(), q.prefix.as_bytes()].concat();
        let mut range = match (&q.key_marker, &q.upload_id_marker) {
            (Some(k), Some(u)) if !u.is_empty() => {
                KeyRange::prefix_after(&full_prefix, &upload_key(&bucket.record.id, k, u))
            }
            (Some(k), _) if !k.is_empty() => {
                let mut after = object_key(&bucket.record.id, k);
                after.extend_from_slice(&[0, 0xff]);
                KeyRange::prefix_after(&full_prefix, &after)
            }
            _ => KeyRange::prefix(&full_prefix),
        };
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut page = UploadsPage::default();
        let max = q.max_uploads.min(crate::limits::MAX_LIST_KEYS);
        'scan: loop {
            let batch = self.meta.scan(UPLOADS, range.clone(), 1000).await?;
            let Some((last, _)) = batch.last() else { break };
            range = KeyRange::prefix_after(&full_prefix, last);
            for (_, v) in batch {
                let upload: UploadRecord = serde_json::from_slice(&v)?;
                let cp = delimiter.and_then(|d| {
                    let rest = upload.key.get(q.prefix.len()..)?;
                    rest.find(d)
                        .map(|pos| upload.key[..q.prefix.len() + pos + d.len()].to_owned())
                });
                if page.uploads.len() + page.common_prefixes.len() == max {
                    let repeat = cp
                        .as_ref()
                        .is_some_and(|c| page.common_prefixes.last() == Some(c));
                    if !repeat {
                        page.is_truncated = true;
                        break 'scan;
                    }
                }
                match cp {
                    Some(cp) if page.common_prefixes.last() == Some(&cp) => {}
                    Some(cp) => {
                        page.next_key_marker = Some(cp.clone());
                        page.next_upload_id_marker = None;
                        page.common_prefixes.push(cp);
                    }
                    None => {
                        page.next_key_marker = Some(upload.key.clone());
                        page.next_upload_id_marker = Some(upload.upload_id.clone());
                        page.uploads.push(upload.into());
                    }
                }
            }
        }
        Ok(page)
    }
}

fn invalid_part(number: u32) -> Error {
    Error::InvalidPart(format!(
        "One or more of the specified parts could not be found (part {number}). The part may not have been \
         uploaded, or the specified entity tag may not match the part's entity tag."
    ))
}

/// S3's multipart ETag: the MD5 of the concatenated binary part MD5s, then `-<number of parts>`.
fn multipart_etag(parts: &[PartRecord]) -> Result<String> {
    let mut md5 = Md5::new();
    for p in parts {
        let bin = hex::decode(&p.etag).map_err(|_| Error::Corrupt(format!("part etag {:?}", p.etag)))?;
        md5.update(&bin);
    }
    Ok(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

/// S3's composite checksum: the checksum of the concatenated binary part checksums, `-<N>`.
/// `None` unless every part has that checksum.
fn composite_checksum(alg: ChecksumAlgorithm, parts: &[PartRecord]) -> Option<(String, String)> {
    let mut sums = Checksums::new([alg]);
    for p in parts {
        sums.update(&BASE64.decode(p.checksums.get(alg.name())?).ok()?);
    }
    let (_, value) = sums.finalize().into_iter().next()?;
    Some((alg.name().to_owned(), format!("{value}-{}", parts.len())))
}
