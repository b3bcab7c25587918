//! Storage for coffer: a transactional metadata store ([`MetaStore`]) and a blob store
//! ([`BlobStore`]).
//!
//! Backends store opaque bytes. They know nothing of buckets, objects or keys: the crates above
//! give the bytes meaning. The embedded backends live in [`local`]; every backend must pass the
//! suites in `contract` (enabled by the `contract` feature and in this crate's own tests).

mod blob;
mod cache;
mod error;
mod meta;

pub mod local;

#[cfg(any(test, feature = "contract"))]
pub mod contract;

pub use blob::{
    BlobId, BlobStore, BlobWriter, ByteStream, Chunk, ChunkFn, ChunkRejected, DEFAULT_CHUNK, PieceStream,
    Records, WriteMap,
};
pub use cache::Cache;
pub use error::{Error, Result};
pub use meta::{Batch, Cond, KeyRange, MetaStore, Op};
