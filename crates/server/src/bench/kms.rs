//! Wrap and unwrap operations per second: in this process on one core (a throwaway KMS in a
//! temporary directory, the same code the server runs), and through the Key Protect HTTP API
//! of the running coffer.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coffer_iam::{BootstrapRequest, Iam, Principal, ServiceKind, TokenConfig};
use coffer_kms::{Kms, NewKey, Timing, parts};
use coffer_storage::local::RedbMetaStore;
use hyper::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{HttpClient, bar, send};

/// Operations per second: wrap, unwrap.
pub struct KmsRates {
    pub wrap: f64,
    pub unwrap: f64,
}

const AAD: &str = "crn:v1:bluemix:public:cloud-object-storage:global:a/bench:bench:bucket:bench";

/// The in-process rates, measured on a single-threaded runtime of its own (one core).
pub fn in_process(seconds: f64) -> anyhow::Result<KmsRates> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!(
            "coffer-bench-kms-{}",
            hex::encode(coffer_crypto::random_bytes(6))
        ));
        std::fs::create_dir_all(&dir)?;
        let result = measure_in_process(&dir, seconds).await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
}

async fn measure_in_process(dir: &std::path::Path, seconds: f64) -> anyhow::Result<KmsRates> {
    let meta = Arc::new(RedbMetaStore::open(&dir.join("meta.redb"))?);
    let iam = Iam::open(meta.clone(), TokenConfig::default()).await?;
    let boot = iam.bootstrap(BootstrapRequest::default()).await?;
    let admin = Principal::Identity {
        iam_id: boot.admin_iam_id.clone(),
        account: boot.account_id.clone(),
    };
    let kms = Kms::open(meta, iam, Timing::default(), None).await?;
    let instance = kms
        .create_instance(&admin, ServiceKind::HsCrypto, "us-south", "bench")
        .await?
        .id;
    let (material, vp) = parts::generate(2);
    kms.begin_software_init(&admin, &instance, 2, &vp).await?;
    for p in material {
        kms.load_part(&admin, &instance, p).await?;
    }
    let key = kms
        .create_key(
            &admin,
            &instance,
            NewKey {
                name: "bench".into(),
                ..NewKey::default()
            },
        )
        .await?
        .id;
    let aad = [AAD.to_owned()];
    let dek = || Zeroizing::new(coffer_crypto::random_bytes(32));
    let pb = bar("KMS in process: wrap".into());
    let (start, mut n) = (Instant::now(), 0u64);
    let mut ciphertext = String::new();
    while start.elapsed().as_secs_f64() < seconds {
        ciphertext = kms
            .wrap(&admin, &instance, &key, Some(dek()), &aad)
            .await?
            .ciphertext;
        n += 1;
        pb.inc(1);
    }
    let wrap = n as f64 / start.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let pb = bar("KMS in process: unwrap".into());
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        std::hint::black_box(kms.unwrap(&admin, &instance, &key, &ciphertext, &aad).await?);
        n += 1;
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(KmsRates {
        wrap,
        unwrap: n as f64 / start.elapsed().as_secs_f64(),
    })
}

/// Key actions over HTTP for one key.
struct Caller {
    http: HttpClient,
    base: String,
    auth: String,
    instance: String,
}

impl Caller {
    async fn call(&self, action: &str, body: &Value) -> anyhow::Result<Value> {
        let headers = [
            ("authorization", self.auth.as_str()),
            ("bluemix-instance", self.instance.as_str()),
            ("content-type", "application/vnd.ibm.kms.key_action+json"),
        ];
        let url = format!("{}/{action}", self.base);
        let (status, out) = send(
            &self.http,
            Method::POST,
            &url,
            Bytes::from(body.to_string()),
            &headers,
        )
        .await?;
        if status != 200 {
            bail!("{action}: {status} {}", String::from_utf8_lossy(&out));
        }
        Ok(serde_json::from_slice(&out)?)
    }
}

/// The rates through `POST /api/v2/keys/{id}/actions/wrap|unwrap` with `concurrency` requests
/// in flight on kept-alive connections.
pub async fn over_http(
    http: &HttpClient,
    control: &str,
    token: &str,
    instance: &str,
    key: &str,
    seconds: f64,
    concurrency: usize,
) -> anyhow::Result<KmsRates> {
    let caller = Arc::new(Caller {
        http: http.clone(),
        base: format!("{control}/api/v2/keys/{key}/actions"),
        auth: format!("Bearer {token}"),
        instance: instance.to_owned(),
    });
    let plaintext = B64.encode(coffer_crypto::random_bytes(32));
    let wrap = json!({ "plaintext": plaintext, "aad": [AAD] });
    let wrapped = caller.call("wrap", &wrap).await?;
    let ciphertext = wrapped["ciphertext"]
        .as_str()
        .context("no ciphertext in the wrap answer")?;
    let unwrap = json!({ "ciphertext": ciphertext, "aad": [AAD] });
    let mut rates = Vec::new();
    for (action, body) in [("wrap", wrap), ("unwrap", unwrap)] {
        let pb = bar(format!("KMS over HTTP: {action} x{concurrency}"));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (caller, body, pb) = (caller.clone(), body.clone(), pb.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < seconds {
                    caller.call(action, &body).await?;
                    n += 1;
                    pb.inc(1);
                }
                anyhow::Ok(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        rates.push(total as f64 / start.elapsed().as_secs_f64());
        pb.finish_and_clear();
    }
    Ok(KmsRates {
        wrap: rates[0],
        unwrap: rates[1],
    })
}
