//! The orphan sweep: at start, before serving, delete every blob no record points to. Such
//! blobs are what a crash leaves between writing a blob and committing (or after replacing)
//! the record that points to it.

use std::collections::HashSet;
use std::ops::Bound;

use coffer_storage::KeyRange;

use crate::records::{OBJECTS, ObjectRecord, PARTS, PartRecord};
use crate::{Result, Store};

/// What the sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub unfinished: usize,
    pub orphans: usize,
}

const ALL: KeyRange = KeyRange {
    start: Bound::Unbounded,
    end: Bound::Unbounded,
};

impl Store {
    /// Must run before the store serves requests: a blob being written is not referenced yet.
    pub async fn sweep_orphans(&self) -> Result<SweepReport> {
        let unfinished = self.blobs.sweep_unfinished().await?;
        let mut referenced = HashSet::new();
        let mut range = ALL;
        loop {
            let batch = self.meta.scan(OBJECTS, range.clone(), 1000).await?;
            let Some((last, _)) = batch.last() else { break };
            range = KeyRange {
                start: Bound::Excluded(last.clone()),
                end: Bound::Unbounded,
            };
            for (_, v) in &batch {
                let r = ObjectRecord::decode(v)?;
                referenced.extend(r.pieces.into_iter().map(|p| p.blob));
            }
        }
        let mut range = ALL;
        loop {
            let batch = self.meta.scan(PARTS, range.clone(), 1000).await?;
            let Some((last, _)) = batch.last() else { break };
            range = KeyRange {
                start: Bound::Excluded(last.clone()),
                end: Bound::Unbounded,
            };
            for (_, v) in &batch {
                let p: PartRecord = serde_json::from_slice(v)?;
                referenced.insert(p.blob);
            }
        }
        let mut orphans = 0;
        for id in self.blobs.list().await? {
            if !referenced.contains(id.as_str()) {
                self.blobs.delete(&id).await?;
                orphans += 1;
            }
        }
        Ok(SweepReport { unfinished, orphans })
    }
}
