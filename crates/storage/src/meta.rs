//! The metadata store contract: ordered key spaces of opaque bytes, point reads, range scans,
//! and atomic batches guarded by conditions (optimistic concurrency).
//!
//! Why batches with conditions instead of interactive transactions: they map one-to-one onto
//! any engine (an embedded B-tree, PostgreSQL, a distributed KV), they never hold a lock across
//! an `await` or a network round trip, and a batch can be grouped with others into one durable
//! commit. A caller that needs read-modify-write reads, builds a batch whose conditions pin
//! what it read, and retries on [`crate::Error::Conflict`].

use std::ops::Bound;

use async_trait::async_trait;

use crate::Result;

/// A range of keys within one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self {
            start: Bound::Included(prefix.to_vec()),
            end: prefix_end(prefix),
        }
    }

    /// Keys starting with `prefix` and strictly after `after`.
    pub fn prefix_after(prefix: &[u8], after: &[u8]) -> Self {
        let start = if after < prefix {
            Bound::Included(prefix.to_vec())
        } else {
            Bound::Excluded(after.to_vec())
        };
        Self {
            start,
            end: prefix_end(prefix),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }
}

/// The smallest key greater than every key with this prefix, if one exists.
fn prefix_end(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}

/// A precondition of a batch, evaluated atomically with its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The key has no value.
    Absent { space: &'static str, key: Vec<u8> },
    /// The key holds exactly this value.
    Equals {
        space: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// No key in the space starts with this prefix.
    NoneWithPrefix { space: &'static str, prefix: Vec<u8> },
}

/// A write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        space: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        space: &'static str,
        key: Vec<u8>,
    },
}

/// Writes applied all together or not at all, if all their conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub conds: Vec<Cond>,
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(
        &mut self,
        space: &'static str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(Op::Put {
            space,
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn delete(&mut self, space: &'static str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete {
            space,
            key: key.into(),
        });
        self
    }

    pub fn expect_absent(&mut self, space: &'static str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.conds.push(Cond::Absent {
            space,
            key: key.into(),
        });
        self
    }

    pub fn expect_value(
        &mut self,
        space: &'static str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.conds.push(Cond::Equals {
            space,
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Expects the key to hold `value`, or to be absent when `value` is `None`.
    pub fn expect(
        &mut self,
        space: &'static str,
        key: impl Into<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> &mut Self {
        match value {
            Some(v) => self.expect_value(space, key, v),
            None => self.expect_absent(space, key),
        }
    }

    pub fn expect_no_prefix(&mut self, space: &'static str, prefix: impl Into<Vec<u8>>) -> &mut Self {
        self.conds.push(Cond::NoneWithPrefix {
            space,
            prefix: prefix.into(),
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.conds.is_empty() && self.ops.is_empty()
    }
}

/// A transactional, ordered key-value store of named spaces.
///
/// Keys within a space are ordered bytewise. A space that was never written reads as empty.
/// [`MetaStore::commit`] returns only when the batch is durable.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn get(&self, space: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` entries of `range` in ascending key order.
    async fn scan(
        &self,
        space: &'static str,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Applies the batch atomically and durably if every condition holds, else returns
    /// [`crate::Error::Conflict`] and applies nothing.
    async fn commit(&self, batch: Batch) -> Result<()>;
}
