//! Records read on every request, kept in memory between requests (the caller's policies and
//! credential, the bucket a request names). Whoever changes such a record empties its cache once
//! the commit returns, so the next request sees the change; an epoch keeps a lookup that raced
//! with a change from storing what it read before it. The caches are per process: nodes of a
//! cluster sharing one store would have to tell each other of changes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Entries kept; past this a cache starts over.
const ENTRIES: usize = 4096;

pub struct Cache<V>(Mutex<Cached<V>>);

struct Cached<V> {
    epoch: u64,
    entries: HashMap<String, V>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Self(Mutex::new(Cached {
            epoch: 0,
            entries: HashMap::new(),
        }))
    }
}

impl<V: Clone> Cache<V> {
    fn lock(&self) -> MutexGuard<'_, Cached<V>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value kept for `key`, or the epoch to store it under once read.
    pub fn get(&self, key: &str) -> Result<V, u64> {
        let c = self.lock();
        c.entries.get(key).cloned().ok_or(c.epoch)
    }

    /// Keeps what was read in `epoch`, unless something changed since.
    pub fn put(&self, epoch: u64, key: &str, value: V) {
        let mut c = self.lock();
        if c.epoch != epoch {
            return;
        }
        if c.entries.len() >= ENTRIES {
            c.entries.clear();
        }
        c.entries.insert(key.to_owned(), value);
    }

    /// Something changed: forget it all.
    pub fn changed(&self) {
        let mut c = self.lock();
        c.epoch += 1;
        c.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Cache;

    #[test]
    fn a_change_forgets_everything_and_refuses_what_was_read_before_it() {
        let cache = Cache::<u32>::default();
        let epoch = cache.get("a").unwrap_err();
        cache.put(epoch, "a", 1);
        assert_eq!(cache.get("a"), Ok(1));
        // Read before the change, stored after it: refused.
        let before = cache.get("b").unwrap_err();
        cache.changed();
        assert!(cache.get("a").is_err());
        cache.put(before, "b", 2);
        assert!(cache.get("b").is_err());
        let now = cache.get("b").unwrap_err();
        cache.put(now, "b", 3);
        assert_eq!(cache.get("b"), Ok(3));
    }
}
