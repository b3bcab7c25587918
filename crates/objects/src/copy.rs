//! Copies: the source's bytes stream through a new stage into the destination, so a copy is
//! correct whatever each bucket's storage looks like.

use futures::TryStreamExt;

use crate::bucket::BucketInfo;
use crate::error::BodyError;
use crate::ingest::StageOptions;
use crate::limits::MAX_PUT_SIZE;
use crate::multipart::PartInfo;
use crate::object::{ObjectAttrs, ObjectInfo, WriteCondition};
use crate::precondition::Preconditions;
use crate::read::ByteRange;
use crate::{Error, Result, Store};

/// Where a copy reads from.
#[derive(Debug, Clone)]
pub struct CopySource<'a> {
    pub bucket: &'a BucketInfo,
    pub key: &'a str,
    pub preconditions: Preconditions,
}

impl Store {
    /// CopyObject. With `replace`, the destination gets those attributes (REPLACE); without,
    /// the source's (COPY).
    pub async fn copy_object(
        &self,
        src: &CopySource<'_>,
        dst_bucket: &BucketInfo,
        dst_key: &str,
        replace: Option<ObjectAttrs>,
        cond: &WriteCondition,
    ) -> Result<ObjectInfo> {
        let same = src.bucket.record.id == dst_bucket.record.id && src.key == dst_key;
        if same && replace.is_none() {
            return Err(Error::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself without changing \
                 the object's metadata, storage class, website redirect location or encryption attributes."
                    .into(),
            ));
        }
        let body = self
            .get_object(src.bucket, src.key, &Preconditions::default(), None, None)
            .await?;
        src.preconditions.check_copy_source(&body.info)?;
        if body.info.size > MAX_PUT_SIZE {
            return Err(Error::InvalidRequest(
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
                    .into(),
            ));
        }
        let attrs = replace.unwrap_or_else(|| body.info.attrs.clone());
        let stream = body.stream.map_err(|e| Box::new(e) as BodyError);
        let opts = StageOptions {
            checksums: Vec::new(),
            expected_len: Some(body.info.size),
            max_len: MAX_PUT_SIZE,
            inline: true,
        };
        let staged = self.stage(dst_bucket, stream, opts).await.map_err(source_error)?;
        self.put_object(dst_bucket, dst_key, staged, attrs, cond).await
    }

    /// UploadPartCopy: a part made of (a range of) another object.
    pub async fn upload_part_copy(
        &self,
        src: &CopySource<'_>,
        range: Option<ByteRange>,
        dst_bucket: &BucketInfo,
        dst_key: &str,
        upload_id: &str,
        number: u32,
    ) -> Result<PartInfo> {
        self.upload(dst_bucket, dst_key, upload_id).await?;
        let body = self
            .get_object(src.bucket, src.key, &Preconditions::default(), range, None)
            .await?;
        src.preconditions.check_copy_source(&body.info)?;
        let len = body.range.end - body.range.start;
        if len > MAX_PUT_SIZE {
            return Err(Error::InvalidRequest(
                "The specified copy range is larger than 5 GiB".into(),
            ));
        }
        let stream = body.stream.map_err(|e| Box::new(e) as BodyError);
        let opts = StageOptions {
            checksums: Vec::new(),
            expected_len: Some(len),
            max_len: MAX_PUT_SIZE,
            inline: false,
        };
        let staged = self.stage(dst_bucket, stream, opts).await.map_err(source_error)?;
        self.upload_part(dst_bucket, dst_key, upload_id, number, staged)
            .await
    }
}

/// A failure reading our own source is ours, not the client's body's.
fn source_error(e: Error) -> Error {
    match e {
        Error::Body(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::Corrupt(other.to_string()),
        },
        other => other,
    }
}
