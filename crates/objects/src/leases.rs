//! Read leases on blobs, so that an overwrite or delete never pulls bytes from under a reader.
//!
//! A reader leases every blob of the record it read, then checks that the record is still
//! current; if so, any later replacement happens after the lease, and retiring the old blobs
//! waits for the lease to end. Retired blobs without readers are deleted at once.
//!
//! Leases are per process. Several nodes over a shared blob backend will need a grace period
//! before deletion instead; see ARCHITECTURE.md.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_storage::{BlobId, BlobStore};

pub struct Leases {
    blobs: Arc<dyn BlobStore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    readers: HashMap<BlobId, usize>,
    retired: HashSet<BlobId>,
}

/// Blobs held for one reader; released on drop.
pub struct Lease {
    leases: Arc<Leases>,
    ids: Vec<BlobId>,
}

impl Leases {
    pub fn new(blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            blobs,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the counts stay consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn acquire(self: &Arc<Self>, ids: Vec<BlobId>) -> Lease {
        let mut st = self.state();
        for id in &ids {
            *st.readers.entry(id.clone()).or_default() += 1;
        }
        Lease {
            leases: self.clone(),
            ids,
        }
    }

    /// Deletes blobs no committed record points to any more: now, or when their last reader ends.
    pub async fn retire(&self, ids: impl IntoIterator<Item = BlobId>) {
        let mut now = Vec::new();
        {
            let mut st = self.state();
            for id in ids {
                if st.readers.contains_key(&id) {
                    st.retired.insert(id);
                } else {
                    now.push(id);
                }
            }
        }
        for id in now {
            self.delete(&id).await;
        }
    }

    async fn delete(&self, id: &BlobId) {
        if let Err(e) = self.blobs.delete(id).await {
            // The blob stays as an orphan; the sweep at the next start removes it.
            tracing::warn!(blob = %id, error = %e, "deleting a retired blob failed");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut ready = Vec::new();
        {
            let mut st = self.leases.state();
            for id in self.ids.drain(..) {
                if let Some(n) = st.readers.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        st.readers.remove(&id);
                        if st.retired.remove(&id) {
                            ready.push(id);
                        }
                    }
                }
            }
        }
        if !ready.is_empty() {
            let leases = self.leases.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    for id in ready {
                        leases.delete(&id).await;
                    }
                });
            }
        }
    }
}
