/// Errors of the identity layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The API key does not exist (never did, or was deleted).
    #[error("the API key could not be found")]
    ApiKeyNotFound,
    #[error("the API key is disabled")]
    ApiKeyDisabled,
    #[error("the refresh token is invalid or expired")]
    RefreshTokenInvalid,
    #[error("signing: {0}")]
    Signing(String),
    #[error("storage: {0}")]
    Storage(#[from] coffer_storage::Error),
    #[error("corrupt identity record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
