//! Listing objects: prefix, delimiter roll-up into common prefixes, and resumable pages.

use coffer_storage::KeyRange;

use crate::bucket::BucketInfo;
use crate::limits::MAX_LIST_KEYS;
use crate::object::ObjectInfo;
use crate::records::{OBJECTS, ObjectRecord, bucket_prefix};
use crate::{Result, Store};

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List only entries strictly after this key (a marker, a start-after, or where the previous
    /// page stopped).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedObject {
    Object(Box<ObjectInfo>),
    CommonPrefix(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects and common prefixes, in key order.
    pub entries: Vec<ListedObject>,
    pub is_truncated: bool,
    /// The last key or common prefix of this page, to resume after.
    pub last: Option<String>,
}

/// Entries read from the metadata store per scan.
const SCAN_BATCH: usize = 1000;

impl Store {
    pub async fn list_objects(&self, bucket: &BucketInfo, q: &ListQuery) -> Result<ListPage> {
        let base = bucket_prefix(&bucket.record.id);
        let full_prefix = [base.as_slice(), q.prefix.as_bytes()].concat();
        let max = q.max_keys.min(MAX_LIST_KEYS);
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut page = ListPage::default();
        let mut range = match &q.after {
            Some(after) => {
                KeyRange::prefix_after(&full_prefix, &[base.as_slice(), after.as_bytes()].concat())
            }
            None => KeyRange::prefix(&full_prefix),
        };

        'scan: loop {
            let batch = self.meta.scan(OBJECTS, range.clone(), SCAN_BATCH).await?;
            let Some((last_key, _)) = batch.last() else { break };
            let resume = KeyRange::prefix_after(&full_prefix, last_key);
            for (k, v) in batch {
                let key = String::from_utf8_lossy(k.get(base.len()..).unwrap_or_default()).into_owned();
                let rolled = delimiter.and_then(|d| {
                    let rest = key.get(q.prefix.len()..)?;
                    rest.find(d)
                        .map(|pos| key[..q.prefix.len() + pos + d.len()].to_owned())
                });
                if let Some(cp) = rolled {
                    // Skip every key under this prefix; a prefix at or before `after` was
                    // already returned by an earlier page.
                    let mut skip_to = [base.as_slice(), cp.as_bytes()].concat();
                    skip_to.push(0xff);
                    range = KeyRange::prefix_after(&full_prefix, &skip_to);
                    if q.after.as_ref().is_some_and(|a| cp.as_str() <= a.as_str()) {
                        continue 'scan;
                    }
                    if page.entries.len() == max {
                        page.is_truncated = true;
                        break 'scan;
                    }
                    page.last = Some(cp.clone());
                    page.entries.push(ListedObject::CommonPrefix(cp));
                    continue 'scan;
                }
                if page.entries.len() == max {
                    page.is_truncated = true;
                    break 'scan;
                }
                let record = ObjectRecord::decode(&v)?;
                page.last = Some(key.clone());
                page.entries
                    .push(ListedObject::Object(Box::new(ObjectInfo::from_record(
                        &key, record,
                    ))));
            }
            range = resume;
        }
        Ok(page)
    }
}
