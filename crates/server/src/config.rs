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
        })
    }
}
