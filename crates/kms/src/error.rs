//! The errors of the key management service, each with the Key Protect reason code and HTTP
//! status its API answers (spec §4.12). The API crate renders them; it does not decide them.

/// A KMS failure. The reason codes are Key Protect's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// 400 `BAD_BODY_ERR` and friends: the request itself is wrong.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// 400: the HPCS instance has no master key yet (CKR_IBM_WK_NOT_INITIALIZED).
    #[error("the instance is not initialized (CKR_IBM_WK_NOT_INITIALIZED): load the master key first")]
    NotInitialized,
    /// 503: the instance is initialized but its master key is not loaded since the last start.
    #[error("the instance is sealed: its custodians must load their master key parts")]
    Sealed,
    /// 401 `UNAUTHORIZED_ERR`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `SERVICE_ONLY_ERR`, `RESOURCE_OWNER_ERR`, ...
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404 `KEY_NOT_FOUND_ERR` (also for purged keys) and other missing things.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409 `KEY_ACTION_INVALID_STATE_ERR`, `PROTECTED_RESOURCE_ERR`, `REQ_TOO_EARLY_ERR`, ...
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410 `KEY_DELETED_ERR`.
    #[error("the key has been deleted")]
    Deleted,
    /// 422 `UNPROCESSABLE_CIPHERTEXT_ERR`, `KEY_INVALID_STATE_ERR`, `KEY_VERSION_INVALID`.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("storage: {0}")]
    Storage(#[from] coffer_storage::Error),
    #[error("identity: {0}")]
    Iam(#[from] coffer_iam::Error),
    #[error("provider: {0}")]
    Provider(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<serde_json::Error> for KmsError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

impl KmsError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn field(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn key_not_found() -> Self {
        Self::not_found("KEY_NOT_FOUND_ERR", "Key does not exist")
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::conflict("KEY_ACTION_INVALID_STATE_ERR", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// HTTP status and reason code, as Key Protect answers.
    pub fn wire(&self) -> (u16, &'static str) {
        match self {
            Self::Invalid { code, .. } => (400, code),
            Self::NotInitialized => (400, "INSTANCE_NOT_INITIALIZED_ERR"),
            Self::Sealed => (503, "INSTANCE_SEALED_ERR"),
            Self::Unauthorized(_) => (401, "UNAUTHORIZED_ERR"),
            Self::Forbidden { code, .. } => (403, code),
            Self::NotFound { code, .. } => (404, code),
            Self::Conflict { code, .. } => (409, code),
            Self::Deleted => (410, "KEY_DELETED_ERR"),
            Self::Unprocessable { code, .. } => (422, code),
            Self::Storage(_) | Self::Iam(_) | Self::Provider(_) | Self::Corrupt(_) => {
                (500, "INTERNAL_SERVER_ERROR")
            }
        }
    }

    pub fn target_field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } => *field,
            _ => None,
        }
    }
}

pub type Result<T, E = KmsError> = std::result::Result<T, E>;
