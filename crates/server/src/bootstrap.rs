//! `<data-dir>/bootstrap.json`: what a user needs to talk to a fresh coffer.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Serialize)]
pub struct BootstrapFile<'a> {
    pub account_id: &'a str,
    pub cos_instance_id: &'a str,
    pub cos_instance_crn: &'a str,
    pub region: &'a str,
    pub admin_iam_id: &'a str,
    pub admin_access_key_id: &'a str,
    pub admin_secret_access_key: &'a str,
    pub admin_api_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_instance_crn: Option<&'a str>,
    pub s3_endpoint: &'a str,
    pub control_endpoint: &'a str,
}

/// A field recorded by an earlier start, if the file is there.
pub fn known_field(data_dir: &Path, name: &str) -> Option<String> {
    let text = fs::read(data_dir.join("bootstrap.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v.get(name)?.as_str().map(str::to_owned)
}

/// Writes the file readable by its owner only (mode 0600), replacing it atomically.
pub fn write(data_dir: &Path, contents: &BootstrapFile<'_>) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("bootstrap.json");
    let tmp = data_dir.join(".bootstrap.json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(contents)?)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(data_dir)?.sync_all()?;
    Ok(path)
}
