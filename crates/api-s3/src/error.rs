//! Domain errors → S3 errors, in one place.

use coffer_objects::Error as E;
use http::StatusCode;
use s3s::{S3Error, S3ErrorCode as C};

fn with(code: C, msg: impl Into<String>) -> S3Error {
    S3Error::with_message(code, msg.into())
}

fn custom(code: &'static str, status: StatusCode, msg: &str) -> S3Error {
    let mut e = S3Error::with_message(C::Custom(code.into()), msg.to_owned());
    e.set_status_code(status);
    e
}

/// The S3 error for a domain error. Internal failures are logged here and answered with a
/// generic `InternalError`: their details are for operators, not clients.
pub fn to_s3(err: E) -> S3Error {
    match err {
        E::NoSuchBucket => with(C::NoSuchBucket, "The specified bucket does not exist."),
        E::NoSuchKey => with(C::NoSuchKey, "The specified key does not exist."),
        E::NoSuchUpload => with(
            C::NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have \
             been aborted or completed.",
        ),
        E::BucketAlreadyOwnedByYou => with(
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.",
        ),
        E::BucketAlreadyExists => with(
            C::BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. \
             Please select a different name and try again.",
        ),
        E::BucketNotEmpty => with(C::BucketNotEmpty, "The bucket you tried to delete is not empty."),
        E::InvalidBucketName => with(C::InvalidBucketName, "The specified bucket is not valid."),
        E::InvalidLocationConstraint => with(
            C::InvalidLocationConstraint,
            "The specified location (Region) constraint is not valid.",
        ),
        E::InvalidPart(msg) => with(C::InvalidPart, msg),
        E::InvalidPartOrder => with(
            C::InvalidPartOrder,
            "The list of parts was not in ascending order.",
        ),
        E::EntityTooSmall => with(
            C::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size.",
        ),
        E::EntityTooLarge => with(
            C::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size.",
        ),
        E::IncompleteBody => with(
            C::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        ),
        E::InvalidPartNumber => custom(
            "InvalidPartNumber",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested partnumber is not satisfiable",
        ),
        E::InvalidRange { .. } => with(C::InvalidRange, "The requested range is not satisfiable"),
        E::PreconditionFailed => with(
            C::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ),
        E::NotModified => S3Error::new(C::NotModified),
        E::BadDigest => with(
            C::BadDigest,
            "The Content-MD5 you specified did not match what we received.",
        ),
        E::InvalidDigest => with(C::InvalidDigest, "The Content-MD5 you specified is not valid."),
        E::ChecksumMismatch(alg) => with(
            C::BadDigest,
            format!("The {alg} you specified did not match the calculated checksum."),
        ),
        E::MetadataTooLarge => with(
            C::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size.",
        ),
        E::InvalidArgument(msg) => with(C::InvalidArgument, msg),
        E::InvalidRequest(msg) => with(C::InvalidRequest, msg),
        E::Body(inner) => body_error(inner),
        E::KeyCrnNotFound => with(C::InvalidRequest, "The Key CRN could not be found"),
        E::KeyLocation(msg) => with(C::InvalidRequest, msg),
        E::KeyUnusable(state) => with(
            C::AccessDenied,
            format!("Access Denied: the bucket's root key is not usable ({state:?})"),
        ),
        E::KmsUnavailable => with(
            C::ServiceUnavailable,
            "The key management service cannot serve this bucket's key (its instance is sealed); retry later",
        ),
        E::StorageFull(io) => {
            tracing::error!(error = %io, "storage is full: a request was refused");
            custom(
                "InsufficientStorage",
                StatusCode::INSUFFICIENT_STORAGE,
                "The server has no room left to store this data; nothing of the request was kept.",
            )
        }
        other => internal(&other),
    }
}

/// A failure while reading the request body. s3s verifies payload hashes and aws-chunked
/// signatures while the body streams, and reports failures with error types it does not
/// export, so they are recognized by their messages.
fn body_error(inner: coffer_objects::BodyError) -> S3Error {
    let inner = match inner.downcast::<S3Error>() {
        Ok(s3) => return *s3,
        Err(other) => other,
    };
    let mut chain = inner.to_string();
    let mut source = inner.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if chain.contains("Sha256Mismatch") {
        custom(
            "XAmzContentSHA256Mismatch",
            StatusCode::BAD_REQUEST,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    } else if chain.contains("SignatureMismatch") {
        with(
            C::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided.",
        )
    } else if chain.contains("FormatError") || chain.contains("TooLarge") || chain.contains("TooMany") {
        with(C::InvalidRequest, "The aws-chunked body is malformed.")
    } else if chain.contains("InvalidChecksum") {
        with(
            C::InvalidArgument,
            "The x-amz-content-sha256 header is not valid.",
        )
    } else {
        to_s3(E::IncompleteBody)
    }
}

pub fn internal(err: &dyn std::error::Error) -> S3Error {
    tracing::error!(error = %err, "internal error");
    with(
        C::InternalError,
        "We encountered an internal error. Please try again.",
    )
}

pub fn access_denied() -> S3Error {
    with(C::AccessDenied, "Access Denied")
}

pub fn not_implemented(what: &str) -> S3Error {
    with(C::NotImplemented, format!("{what} is not implemented"))
}

/// `?` on domain results in handlers.
pub trait OrS3<T> {
    fn or_s3(self) -> s3s::S3Result<T>;
}

impl<T> OrS3<T> for Result<T, E> {
    fn or_s3(self) -> s3s::S3Result<T> {
        self.map_err(to_s3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_not_an_internal_error() {
        let full = coffer_storage::Error::Io(std::io::ErrorKind::StorageFull.into());
        let e = to_s3(E::from(full));
        assert_eq!(e.status_code(), Some(StatusCode::INSUFFICIENT_STORAGE));
        assert_eq!(e.code().as_str(), "InsufficientStorage");
        let other = coffer_storage::Error::Io(std::io::ErrorKind::PermissionDenied.into());
        assert_eq!(to_s3(E::from(other)).code(), &C::InternalError);
    }
}
