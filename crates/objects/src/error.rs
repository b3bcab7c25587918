use std::error::Error as StdError;

/// An error reading the request body, as the protocol layer produced it (it may carry a
/// protocol error such as a failed chunk signature, which that layer recovers by downcasting).
pub type BodyError = Box<dyn StdError + Send + Sync>;

/// Errors of the object store. The S3 layer maps each to its wire code in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("the bucket is already owned by you")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket name is taken")]
    BucketAlreadyExists,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("invalid bucket name")]
    InvalidBucketName,
    #[error("invalid location constraint")]
    InvalidLocationConstraint,
    #[error("{0}")]
    InvalidPart(String),
    #[error("the parts were not listed in ascending order")]
    InvalidPartOrder,
    #[error("a part other than the last is smaller than the minimum of 5 MiB")]
    EntityTooSmall,
    #[error("the object exceeds the maximum allowed size")]
    EntityTooLarge,
    #[error("the request body is shorter or longer than its declared length")]
    IncompleteBody,
    #[error("the requested part number is not satisfiable")]
    InvalidPartNumber,
    #[error("the range is not satisfiable")]
    InvalidRange { size: u64 },
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    #[error("the Content-MD5 you specified is not valid")]
    InvalidDigest,
    #[error("the {0} you specified did not match the calculated checksum")]
    ChecksumMismatch(&'static str),
    #[error("user metadata exceeds 2 KB")]
    MetadataTooLarge,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// Any failure to resolve a root key CRN for a new bucket (COS answers them all alike).
    #[error("The Key CRN could not be found")]
    KeyCrnNotFound,
    /// An HPCS key for a bucket outside the instance's location.
    #[error("{0}")]
    KeyLocation(String),
    /// The bucket's root key does not allow the operation (disabled, deleted...).
    #[error("the bucket's root key is {0:?}")]
    KeyUnusable(crate::encryption::KeyAccess),
    /// The key management service cannot serve the bucket's key (sealed).
    #[error("the key management service is unavailable")]
    KmsUnavailable,
    /// Stored ciphertext failed authentication: tampered, truncated or swapped.
    #[error("stored data failed its integrity check")]
    Integrity,
    #[error("reading the request body: {0}")]
    Body(BodyError),
    #[error("stored data is missing or corrupt")]
    Corrupt(String),
    /// The disk (or the data dir's quota) is full: nothing of the request was kept.
    #[error("storage is full: {0}")]
    StorageFull(std::io::Error),
    #[error("storage: {0}")]
    Storage(coffer_storage::Error),
}

impl From<coffer_storage::Error> for Error {
    fn from(e: coffer_storage::Error) -> Self {
        use std::io::ErrorKind::{QuotaExceeded, StorageFull};
        match e {
            coffer_storage::Error::Io(io) if matches!(io.kind(), StorageFull | QuotaExceeded) => {
                Self::StorageFull(io)
            }
            e => Self::Storage(e),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
