//! The operator CLI: commands that talk to a running coffer through its control plane,
//! authenticated with an API key (never by opening the data files).

mod client;
mod iam;
mod kms;
mod output;

use std::path::PathBuf;

pub use client::ControlClient;
pub use iam::IamCommand;
pub use kms::KmsCommand;

/// Where the control plane is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The control plane [default: from <data-dir>/bootstrap.json, else http://127.0.0.1:9001].
    #[arg(long, env = "COFFER_CONTROL_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// An API key [default: the admin key in <data-dir>/bootstrap.json].
    #[arg(long, env = "COFFER_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// Where to look for bootstrap.json.
    #[arg(long, env = "COFFER_DATA_DIR", default_value = "coffer-data", global = true)]
    data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    fn bootstrap_field(&self, name: &str) -> Option<String> {
        let text = std::fs::read(self.data_dir.join("bootstrap.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        v.get(name)?.as_str().map(str::to_owned)
    }

    /// Connects and exchanges the API key for a token.
    pub async fn connect(&self) -> anyhow::Result<ControlClient> {
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| self.bootstrap_field("control_endpoint"))
            .unwrap_or_else(|| "http://127.0.0.1:9001".into());
        let api_key = self
            .api_key
            .clone()
            .or_else(|| self.bootstrap_field("admin_api_key"))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no API key: pass --api-key, set COFFER_API_KEY, or point --data-dir at a bootstrap.json"
                )
            })?;
        ControlClient::login(&endpoint, &api_key).await
    }
}
