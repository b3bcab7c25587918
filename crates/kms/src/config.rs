//! The KMS's timing rules and its PKCS#11 provider settings.

use std::path::PathBuf;

/// IBM's timing rules are the defaults; every one is configurable so tests can shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// A manual rotation at most this often per key (IBM: once an hour).
    pub rotate_min_interval_secs: i64,
    /// Enable and restore at least this long after the last state change (IBM: 30 s).
    pub state_change_delay_secs: i64,
    /// Purge at least this long after delete (IBM: 4 h).
    pub purge_delay_secs: i64,
    /// Restore within this long after delete (IBM: 30 days).
    pub restore_window_secs: i64,
    /// A manual sync at most this often per key (IBM: once an hour).
    pub sync_min_interval_secs: i64,
    /// The length of a rotation policy's month (IBM: 30 days).
    pub month_secs: i64,
    /// How long a dual-authorization deletion request stays valid (IBM: 7 days).
    pub dual_auth_window_secs: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            rotate_min_interval_secs: 3600,
            state_change_delay_secs: 30,
            purge_delay_secs: 4 * 3600,
            restore_window_secs: 30 * 24 * 3600,
            sync_min_interval_secs: 3600,
            month_secs: 30 * 24 * 3600,
            dual_auth_window_secs: 7 * 24 * 3600,
        }
    }
}

/// Where the PKCS#11 token is.
#[derive(Clone)]
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: coffer_iam::SecretString,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}
