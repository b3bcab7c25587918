//! `coffer kms ...`: KMS instances and the custodian ceremony. Master-key parts are made here,
//! on the custodians' side, written to one file each, and sent to the server only to be loaded
//! into its memory.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use coffer_kms::parts::{self, PartFile};
use hyper::Method;
use serde_json::{Value, json};

use super::output::{record, table};
use super::{Connection, ControlClient};

#[derive(Debug, Args)]
pub struct KmsCommand {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    what: KmsVerb,
}

#[derive(Debug, Subcommand)]
enum KmsVerb {
    /// Key management instances.
    Instance {
        #[command(subcommand)]
        verb: InstanceVerb,
    },
    /// Initializes an instance: makes N custodian parts of a new master key (one file each,
    /// sealed under `COFFER_PART_PASSPHRASE_<i>` when set) and loads them; or, with
    /// `--provider pkcs11`, generates the master key inside the configured PKCS#11 token.
    Init {
        #[arg(long)]
        instance: String,
        #[arg(long, default_value_t = 2)]
        parts: u32,
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        #[arg(long, default_value = "software")]
        provider: String,
    },
    /// Loads one custodian's part into a sealed instance (passphrase: `COFFER_PART_PASSPHRASE`).
    LoadPart {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        part: PathBuf,
        /// The part belongs to the new master key of a rotation.
        #[arg(long)]
        new: bool,
    },
    /// Rotates the master key: makes new parts, re-encrypts the keystore under the new key.
    RotateMaster {
        #[arg(long)]
        instance: String,
        #[arg(long, default_value_t = 2)]
        parts: u32,
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum InstanceVerb {
    Create {
        #[arg(long, default_value = "key management")]
        name: String,
        /// hs-crypto (Hyper Protect Crypto Services) or kms (Key Protect).
        #[arg(long, default_value = "hs-crypto")]
        service: String,
        #[arg(long)]
        region: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

const INSTANCE_FIELDS: [(&str, &str); 9] = [
    ("id", "id"),
    ("name", "name"),
    ("crn", "crn"),
    ("service", "service"),
    ("region", "region"),
    ("provider", "provider"),
    ("initialized", "initialized"),
    ("sealed", "sealed"),
    ("verification_pattern", "verification pattern"),
];

/// Writes the parts of a master key, one file each (mode 0600).
fn write_parts(
    instance: &str,
    material: &[coffer_kms::KeyMaterial],
    vp: &str,
    dir: &Path,
    tag: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let n = u32::try_from(material.len())?;
    let mut paths = Vec::new();
    for (i, part) in (1..=n).zip(material) {
        let pass = std::env::var(format!("COFFER_PART_PASSPHRASE_{i}"))
            .ok()
            .filter(|p| !p.is_empty());
        if pass.is_none() {
            eprintln!("warning: part {i} is written unencrypted (set COFFER_PART_PASSPHRASE_{i} to seal it)");
        }
        let file = PartFile::seal(instance, i, n, part, vp, pass.as_deref(), Default::default())?;
        let path = dir.join(format!("{instance}-{tag}part-{i}-of-{n}.json"));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(&serde_json::to_vec_pretty(&file)?)?;
        f.sync_all()?;
        paths.push(path);
    }
    Ok(paths)
}

async fn load(
    c: &ControlClient,
    instance: &str,
    part: &coffer_kms::KeyMaterial,
    new: bool,
) -> anyhow::Result<Value> {
    let body = json!({ "part": hex::encode(part.expose()), "new": new });
    c.call(
        Method::POST,
        &format!("/kms/v1/instances/{instance}/parts"),
        Some(&body),
    )
    .await
}

impl KmsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let c = self.conn.connect().await?;
        let json = self.conn.json;
        match self.what {
            KmsVerb::Instance { verb } => match verb {
                InstanceVerb::Create {
                    name,
                    service,
                    region,
                } => {
                    let v = c
                        .call(
                            Method::POST,
                            "/kms/v1/instances",
                            Some(&json!({ "name": name, "service": service, "region": region })),
                        )
                        .await?;
                    record(json, &v, &INSTANCE_FIELDS);
                }
                InstanceVerb::List => {
                    let v = c.call(Method::GET, "/kms/v1/instances", None).await?;
                    let rows = v["instances"].as_array().cloned().unwrap_or_default();
                    let cols = [
                        ("id", "ID"),
                        ("name", "NAME"),
                        ("service", "SERVICE"),
                        ("region", "REGION"),
                        ("initialized", "INITIALIZED"),
                        ("sealed", "SEALED"),
                    ];
                    table(json, &v, &rows, &cols);
                }
                InstanceVerb::Show { id } => {
                    let v = c
                        .call(Method::GET, &format!("/kms/v1/instances/{id}"), None)
                        .await?;
                    record(json, &v, &INSTANCE_FIELDS);
                }
                InstanceVerb::Delete { id } => {
                    c.call(Method::DELETE, &format!("/kms/v1/instances/{id}"), None)
                        .await?;
                    println!("deleted instance {id}");
                }
            },
            KmsVerb::Init {
                instance,
                parts: n,
                out_dir,
                provider,
            } => {
                if provider == "pkcs11" {
                    let v = c
                        .call(
                            Method::POST,
                            &format!("/kms/v1/instances/{instance}/init"),
                            Some(&json!({ "provider": "pkcs11" })),
                        )
                        .await?;
                    record(json, &v, &INSTANCE_FIELDS);
                    return Ok(());
                }
                if provider != "software" {
                    bail!("the provider is software or pkcs11");
                }
                let (material, vp) = parts::generate(n);
                let paths = write_parts(&instance, &material, &vp, &out_dir, "")?;
                let body = json!({ "provider": "software", "parts": n, "verification_pattern": vp });
                c.call(
                    Method::POST,
                    &format!("/kms/v1/instances/{instance}/init"),
                    Some(&body),
                )
                .await?;
                for part in &material {
                    load(&c, &instance, part, false).await?;
                }
                let v = c
                    .call(Method::GET, &format!("/kms/v1/instances/{instance}"), None)
                    .await?;
                record(json, &v, &INSTANCE_FIELDS);
                if !json {
                    println!("Give each custodian one part file and keep no copies here:");
                    for p in paths {
                        println!("  {}", p.display());
                    }
                    println!("Custodians check the verification pattern {vp} when they load their parts.");
                }
            }
            KmsVerb::LoadPart { instance, part, new } => {
                let file: PartFile = serde_json::from_slice(
                    &std::fs::read(&part).with_context(|| format!("reading {}", part.display()))?,
                )
                .with_context(|| format!("{} is not a part file", part.display()))?;
                let pass = std::env::var("COFFER_PART_PASSPHRASE")
                    .ok()
                    .filter(|p| !p.is_empty());
                let material = file.open(pass.as_deref())?;
                let v = load(&c, &instance, &material, new).await?;
                if json {
                    println!("{v}");
                } else if v["complete"].as_bool() == Some(true) {
                    println!(
                        "all parts loaded; master key verification pattern {}",
                        v["verification_pattern"].as_str().unwrap_or("")
                    );
                } else {
                    println!(
                        "part loaded ({} of {}); the instance stays sealed until every part is in",
                        v["loaded"], v["needed"]
                    );
                }
            }
            KmsVerb::RotateMaster {
                instance,
                parts: n,
                out_dir,
            } => {
                let (material, vp) = parts::generate(n);
                let paths = write_parts(&instance, &material, &vp, &out_dir, "new-")?;
                let body = json!({ "parts": n, "verification_pattern": vp });
                c.call(
                    Method::POST,
                    &format!("/kms/v1/instances/{instance}/master_key/rotate"),
                    Some(&body),
                )
                .await?;
                for part in &material {
                    load(&c, &instance, part, true).await?;
                }
                let v = c
                    .call(Method::GET, &format!("/kms/v1/instances/{instance}"), None)
                    .await?;
                record(json, &v, &INSTANCE_FIELDS);
                if !json {
                    println!("The keystore is re-encrypted under the new master key. New part files:");
                    for p in paths {
                        println!("  {}", p.display());
                    }
                }
            }
        }
        Ok(())
    }
}
