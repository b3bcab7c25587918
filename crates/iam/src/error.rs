/// Errors of the identity layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("invalid input: {0}")]
    Invalid(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] coffer_storage::Error),
    #[error("corrupt identity record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
