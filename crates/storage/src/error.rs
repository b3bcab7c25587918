use std::io;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A condition of a [`crate::Batch`] did not hold; nothing of the batch was applied.
    #[error("a transaction condition did not hold")]
    Conflict,
    /// The blob does not exist (never written, or deleted).
    #[error("blob not found")]
    BlobNotFound,
    /// The metadata engine failed.
    #[error("metadata engine: {0}")]
    Meta(String),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The function a read or a write was given refused its bytes (see [`crate::ChunkFn`] and
    /// [`crate::WriteMap`]).
    #[error("a chunk was refused")]
    ChunkRejected,
    /// The backend is shutting down or its worker is gone.
    #[error("storage backend unavailable")]
    Unavailable,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
