//! The development convenience: on a fresh data dir, one software KMS instance whose two
//! master-key parts sit next to bootstrap.json and load at every start. This is not
//! keep-your-own-key, and coffer says so loudly.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_iam::{Principal, ServiceKind};
use coffer_kms::Kms;
use coffer_kms::parts::{self, PartFile};

const PARTS: u32 = 2;

fn part_path(data_dir: &Path, i: u32) -> PathBuf {
    data_dir.join(format!("kms-dev-part-{i}.json"))
}

fn warn() {
    tracing::warn!(
        "DEVELOPMENT KMS: the master-key parts of the dev instance are stored next to bootstrap.json and \
         loaded automatically. This is NOT keep-your-own-key: anyone who reads the data dir holds the master key. \
         Create a real instance with `coffer kms instance create` and `coffer kms init` for custodians."
    );
}

/// Creates the dev instance (fresh data dir) or loads its parts (later starts); returns its
/// id and CRN.
pub async fn ensure(
    kms: &Kms,
    admin: &Principal,
    data_dir: &Path,
    region: &str,
    fresh: bool,
    known: Option<String>,
) -> anyhow::Result<Option<(String, String)>> {
    let id = match (fresh, known) {
        (true, _) => {
            let instance = kms
                .create_instance(
                    admin,
                    ServiceKind::HsCrypto,
                    region,
                    "dev hs-crypto (not keep-your-own-key)",
                )
                .await?;
            let (material, vp) = parts::generate(PARTS);
            for (i, part) in (1..=PARTS).zip(&material) {
                let file = PartFile::seal(&instance.id, i, PARTS, part, &vp, None, Default::default())?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(part_path(data_dir, i))?;
                f.write_all(&serde_json::to_vec_pretty(&file)?)?;
                f.sync_all()?;
            }
            kms.begin_software_init(admin, &instance.id, PARTS, &vp).await?;
            instance.id
        }
        (false, Some(id)) => id,
        (false, None) => return Ok(None),
    };
    if !part_path(data_dir, 1).exists() {
        return Ok(None);
    }
    let info = kms.instance_info(admin, &id).await?;
    if info.sealed || !info.initialized {
        for i in 1..=PARTS {
            let path = part_path(data_dir, i);
            let file: PartFile = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("reading {}", path.display()))?;
            kms.load_part(admin, &id, file.open(None)?).await?;
        }
    }
    warn();
    let info = kms.instance_info(admin, &id).await?;
    Ok(Some((id, info.instance.crn().to_string())))
}
