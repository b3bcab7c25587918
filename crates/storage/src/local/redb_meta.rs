//! [`MetaStore`] on redb, an embedded copy-on-write B-tree with ACID transactions.
//!
//! redb allows one write transaction at a time and each durable commit costs an fsync, so
//! commits go through one writer thread that groups every batch waiting at that moment into a
//! single write transaction (group commit). Batches are checked and applied in arrival order,
//! each against the state left by the ones before it, so grouping changes nothing but speed.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use tokio::sync::{mpsc, oneshot};

use crate::meta::{Batch, Cond, KeyRange, MetaStore, Op};
use crate::{Error, Result};

/// Most batches grouped into one write transaction.
const MAX_GROUP: usize = 512;

type Reply = oneshot::Sender<Result<()>>;

pub struct RedbMetaStore {
    db: Arc<Db>,
    writer: mpsc::UnboundedSender<(Batch, Reply)>,
}

/// Opens the database file, again after a failure.
type Open = Box<dyn Fn() -> std::result::Result<Database, redb::DatabaseError> + Send + Sync>;

/// The database, opened again after an I/O error. redb fails every later operation of a
/// database whose file once failed (`PreviousIo`), even when the disk has room again, until
/// it is closed and opened anew (which repairs what the failed commit left): without this a
/// full disk stopped the store until a restart.
struct Db {
    open: Open,
    /// The database, if open, and how many times it was opened before.
    current: RwLock<(u64, Option<Arc<Database>>)>,
    /// The last failed attempt to open it: callers try again at most once a second.
    failed_open: Mutex<Option<Instant>>,
}

const RETRY_OPEN: Duration = Duration::from_millis(if cfg!(test) { 50 } else { 1000 });

impl Db {
    fn new(open: Open) -> Result<Self> {
        let db = open().map_err(meta_err)?;
        Ok(Self {
            open,
            current: RwLock::new((0, Some(Arc::new(db)))),
            failed_open: Mutex::new(None),
        })
    }

    /// Runs `f` on the database; after an I/O error, opens it again for the next caller.
    fn with<T>(&self, f: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
        let (generation, db) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(db) = db else {
            return self.reopen(generation).and_then(|db| f(&db));
        };
        let out = f(&db);
        if matches!(out, Err(Error::Io(_))) {
            // Let go of it first: reopening waits for every holder to.
            drop(db);
            let _ = self.reopen(generation);
        }
        out
    }

    /// Closes the database opened `generation` times before (or nothing, if opening failed
    /// last time) and opens the file again, unless another caller already did.
    fn reopen(&self, generation: u64) -> Result<Arc<Database>> {
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let (g, Some(db)) = &*slot
            && *g != generation
        {
            return Ok(db.clone());
        }
        if let Some(mut old) = slot.1.take() {
            // Readers hold the database for one synchronous read, the writer for one commit:
            // its file (and the lock on it) is released with the last of them.
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => break drop(db),
                    Err(held) => old = held,
                }
                thread::sleep(Duration::from_millis(1));
            }
        } else {
            let last = *self.failed_open.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < RETRY_OPEN) {
                return Err(Error::Unavailable);
            }
        }
        slot.0 += 1;
        match (self.open)() {
            Ok(db) => {
                tracing::warn!("the metadata database was opened again after an I/O error");
                let db = Arc::new(db);
                slot.1 = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                tracing::error!(error = %e, "opening the metadata database again failed");
                *self.failed_open.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                Err(meta_err(e))
            }
        }
    }
}

fn table(space: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(space)
}

/// A redb failure. An I/O error of its file stays one, so that a full disk is told as such
/// (`StorageFull`: the S3 API answers 507), and so is redb's refusal after one; anything else
/// is the engine's.
fn meta_err(e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::Io(io) => Error::Io(io),
        e @ redb::Error::PreviousIo => Error::Io(std::io::Error::other(e.to_string())),
        e => Error::Meta(e.to_string()),
    }
}

/// `e` again, for another batch of the group it failed.
fn same_error(e: &Error) -> Error {
    match e {
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        e => Error::Meta(e.to_string()),
    }
}

impl RedbMetaStore {
    /// Opens (or creates) the store in the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let path: PathBuf = path.into();
        Self::open_with(Box::new(move || Database::create(&path)))
    }

    fn open_with(open: Open) -> Result<Self> {
        let db = Arc::new(Db::new(open)?);
        let (writer, rx) = mpsc::unbounded_channel();
        let db2 = db.clone();
        thread::Builder::new()
            .name("coffer-meta-writer".into())
            .spawn(move || write_loop(&db2, rx))?;
        Ok(Self { db, writer })
    }

    fn scan_sync(
        db: &Database,
        space: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = db.begin_read().map_err(meta_err)?;
        let t = match txn.open_table(table(space)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(meta_err(e)),
        };
        let bounds = (as_slice_bound(&range.start), as_slice_bound(&range.end));
        if !bounds_ordered(&bounds) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in t.range::<&[u8]>(bounds).map_err(meta_err)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry.map_err(meta_err)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// redb panics on a range whose start is after its end; such a range is simply empty.
fn bounds_ordered((start, end): &(Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s < e,
        _ => true,
    }
}

#[async_trait]
impl MetaStore for RedbMetaStore {
    async fn get(&self, space: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.with(|db| {
            let txn = db.begin_read().map_err(meta_err)?;
            let t = match txn.open_table(table(space)) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(meta_err(e)),
            };
            Ok(t.get(key).map_err(meta_err)?.map(|v| v.value().to_vec()))
        })
    }

    async fn scan(
        &self,
        space: &'static str,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db.with(|db| Self::scan_sync(db, space, &range, limit))
    }

    async fn commit(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.writer.send((batch, tx)).map_err(|_| Error::Unavailable)?;
        rx.await.map_err(|_| Error::Unavailable)?
    }
}

fn write_loop(db: &Db, mut rx: mpsc::UnboundedReceiver<(Batch, Reply)>) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let batches: Vec<&Batch> = group.iter().map(|(b, _)| b).collect();
        match db.with(|db| apply_group(db, &batches)) {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "metadata commit failed");
                for (_, reply) in group {
                    let _ = reply.send(Err(same_error(&e)));
                }
            }
        }
    }
}

/// Applies each batch whose conditions hold, in order, and commits them all with one fsync.
/// Returns each batch's outcome; an `Err` of the whole means nothing was committed.
fn apply_group(db: &Database, batches: &[&Batch]) -> Result<Vec<Result<()>>> {
    let txn = db.begin_write().map_err(meta_err)?;
    let mut outcomes = Vec::with_capacity(batches.len());
    for batch in batches {
        if conds_hold(&txn, &batch.conds)? {
            for op in &batch.ops {
                match op {
                    Op::Put { space, key, value } => {
                        txn.open_table(table(space))
                            .map_err(meta_err)?
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(meta_err)?;
                    }
                    Op::Delete { space, key } => {
                        txn.open_table(table(space))
                            .map_err(meta_err)?
                            .remove(key.as_slice())
                            .map_err(meta_err)?;
                    }
                }
            }
            outcomes.push(Ok(()));
        } else {
            outcomes.push(Err(Error::Conflict));
        }
    }
    txn.commit().map_err(meta_err)?;
    Ok(outcomes)
}

fn conds_hold(txn: &redb::WriteTransaction, conds: &[Cond]) -> Result<bool> {
    for cond in conds {
        let ok = match cond {
            Cond::Absent { space, key } => {
                let t = txn.open_table(table(space)).map_err(meta_err)?;
                t.get(key.as_slice()).map_err(meta_err)?.is_none()
            }
            Cond::Equals { space, key, value } => {
                let t = txn.open_table(table(space)).map_err(meta_err)?;
                t.get(key.as_slice())
                    .map_err(meta_err)?
                    .is_some_and(|v| v.value() == value.as_slice())
            }
            Cond::NoneWithPrefix { space, prefix } => {
                let t = txn.open_table(table(space)).map_err(meta_err)?;
                let range = KeyRange::prefix(prefix);
                let mut it = t
                    .range::<&[u8]>((as_slice_bound(&range.start), as_slice_bound(&range.end)))
                    .map_err(meta_err)?;
                it.next().is_none()
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
#[path = "redb_meta_tests.rs"]
mod tests;
