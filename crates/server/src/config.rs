//! Configuration: command-line flags over an optional TOML file over defaults, validated into
//! [`Config`] before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use coffer_iam::SecretString;
use serde::Deserialize;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (flags win over it).
    #[arg(long, env = "COFFER_CONFIG")]
    config: Option<PathBuf>,
    /// Where coffer keeps its data [default: ./coffer-data].
    #[arg(long, env = "COFFER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the S3 endpoint [default: 127.0.0.1:9000].
    #[arg(long, env = "COFFER_S3_LISTEN")]
    s3_listen: Option<SocketAddr>,
    /// Address of the control plane [default: 127.0.0.1:9001].
    #[arg(long, env = "COFFER_CONTROL_LISTEN")]
    control_listen: Option<SocketAddr>,
    /// The region this coffer serves [default: us-south].
    #[arg(long, env = "COFFER_REGION")]
    region: Option<String>,
    /// A base domain for virtual-host-style bucket addressing (`<bucket>.<domain>`); repeatable
    /// [default: localhost].
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Lifetime of IAM access tokens in seconds [default: 3600].
    #[arg(long, env = "COFFER_TOKEN_LIFETIME_SECS")]
    token_lifetime_secs: Option<i64>,
}

/// The settings a config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    s3_listen: Option<SocketAddr>,
    control_listen: Option<SocketAddr>,
    region: Option<String>,
    domains: Option<Vec<String>>,
    token_lifetime_secs: Option<i64>,
    #[serde(default)]
    kms: KmsFile,
}

/// The `[kms]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KmsFile {
    rotate_min_interval_secs: Option<i64>,
    state_change_delay_secs: Option<i64>,
    purge_delay_secs: Option<i64>,
    restore_window_secs: Option<i64>,
    sync_min_interval_secs: Option<i64>,
    month_secs: Option<i64>,
    dual_auth_window_secs: Option<i64>,
    pkcs11_module: Option<PathBuf>,
    pkcs11_token_label: Option<String>,
    pkcs11_pin_file: Option<PathBuf>,
}

/// The validated settings of `coffer serve`.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub s3_listen: SocketAddr,
    pub control_listen: SocketAddr,
    pub region: String,
    pub domains: Vec<String>,
    /// Admin HMAC credentials preset through the environment.
    pub admin_hmac: Option<(String, SecretString)>,
    /// Admin API key preset through the environment.
    pub admin_api_key: Option<SecretString>,
    pub token_lifetime_secs: i64,
    pub kms_timing: coffer_kms::Timing,
    pub pkcs11: Option<coffer_kms::Pkcs11Config>,
}

/// A number from the environment (`COFFER_KMS_<NAME>`), else the file, else the default.
fn kms_setting(name: &str, file: Option<i64>, default: i64) -> anyhow::Result<i64> {
    let var = format!("COFFER_KMS_{}", name.to_ascii_uppercase());
    let v = match std::env::var(&var) {
        Ok(s) => s
            .parse()
            .with_context(|| format!("{var} must be a number of seconds"))?,
        Err(_) => file.unwrap_or(default),
    };
    if v < 0 {
        bail!("{var} must not be negative");
    }
    Ok(v)
}

fn kms_timing(f: &KmsFile) -> anyhow::Result<coffer_kms::Timing> {
    let d = coffer_kms::Timing::default();
    Ok(coffer_kms::Timing {
        rotate_min_interval_secs: kms_setting(
            "rotate_min_interval_secs",
            f.rotate_min_interval_secs,
            d.rotate_min_interval_secs,
        )?,
        state_change_delay_secs: kms_setting(
            "state_change_delay_secs",
            f.state_change_delay_secs,
            d.state_change_delay_secs,
        )?,
        purge_delay_secs: kms_setting("purge_delay_secs", f.purge_delay_secs, d.purge_delay_secs)?,
        restore_window_secs: kms_setting(
            "restore_window_secs",
            f.restore_window_secs,
            d.restore_window_secs,
        )?,
        sync_min_interval_secs: kms_setting(
            "sync_min_interval_secs",
            f.sync_min_interval_secs,
            d.sync_min_interval_secs,
        )?,
        month_secs: kms_setting("month_secs", f.month_secs, d.month_secs)?.max(1),
        dual_auth_window_secs: kms_setting(
            "dual_auth_window_secs",
            f.dual_auth_window_secs,
            d.dual_auth_window_secs,
        )?,
    })
}

/// The PKCS#11 provider's settings, if a module is configured. The PIN comes from
/// `COFFER_PKCS11_PIN` or a file readable by its owner only.
fn pkcs11(f: &KmsFile) -> anyhow::Result<Option<coffer_kms::Pkcs11Config>> {
    let module = std::env::var_os("COFFER_PKCS11_MODULE")
        .map(PathBuf::from)
        .or_else(|| f.pkcs11_module.clone());
    let Some(module) = module else { return Ok(None) };
    let token_label = std::env::var("COFFER_PKCS11_TOKEN_LABEL")
        .ok()
        .or_else(|| f.pkcs11_token_label.clone())
        .unwrap_or_else(|| "coffer".into());
    let pin = match (std::env::var("COFFER_PKCS11_PIN"), &f.pkcs11_pin_file) {
        (Ok(pin), _) => pin,
        (Err(_), Some(path)) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .with_context(|| format!("reading {}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                bail!("{} is readable by others: make it mode 0600", path.display());
            }
            std::fs::read_to_string(path)?.trim().to_owned()
        }
        (Err(_), None) => {
            bail!("a PKCS#11 module is configured without a PIN: set COFFER_PKCS11_PIN or pkcs11_pin_file")
        }
    };
    Ok(Some(coffer_kms::Pkcs11Config {
        module,
        token_label,
        pin: SecretString::new(pin),
    }))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let region = self.region.or(file.region).unwrap_or_else(|| "us-south".into());
        if !valid_region(&region) {
            bail!("invalid region {region:?}: use lowercase letters, digits and hyphens, like us-south");
        }
        let domains = if self.domains.is_empty() {
            file.domains.unwrap_or_default()
        } else {
            self.domains
        };
        let domains = if domains.is_empty() {
            vec!["localhost".to_owned()]
        } else {
            domains
        };
        let admin_hmac = match (
            std::env::var("COFFER_ADMIN_ACCESS_KEY"),
            std::env::var("COFFER_ADMIN_SECRET_KEY"),
        ) {
            (Ok(ak), Ok(sk)) => Some((ak, SecretString::new(sk))),
            (Err(_), Err(_)) => None,
            _ => bail!("set both COFFER_ADMIN_ACCESS_KEY and COFFER_ADMIN_SECRET_KEY, or neither"),
        };
        let token_lifetime_secs = self
            .token_lifetime_secs
            .or(file.token_lifetime_secs)
            .unwrap_or(3600);
        if !(1..=86_400).contains(&token_lifetime_secs) {
            bail!("the token lifetime must be 1 to 86400 seconds");
        }
        let admin_api_key = std::env::var("COFFER_ADMIN_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .map(SecretString::new);
        let kms_timing = kms_timing(&file.kms)?;
        let pkcs11 = pkcs11(&file.kms)?;
        Ok(Config {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("coffer-data")),
            s3_listen: self
                .s3_listen
                .or(file.s3_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000))),
            control_listen: self
                .control_listen
                .or(file.control_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9001))),
            region,
            domains,
            admin_hmac,
            admin_api_key,
            token_lifetime_secs,
            kms_timing,
            pkcs11,
        })
    }
}
