//! `coffer serve`: open the data dir, sweep, bootstrap, serve until Ctrl-C.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::Context;
use coffer_api_control::PeerAddr;
use coffer_iam::{BootstrapRequest, Iam, Principal, SecretString, TokenConfig};
use coffer_kms::Kms;
use coffer_objects::Store;
use coffer_storage::local::{FsBlobStore, RedbMetaStore};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bootstrap::{self, BootstrapFile};
use crate::config::Config;
use crate::devkms;
use crate::http;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data_dir)
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    let meta = Arc::new(
        RedbMetaStore::open(&cfg.data_dir.join("meta.redb")).with_context(|| {
            format!(
                "opening the metadata store in {} (is another coffer using it?)",
                cfg.data_dir.display()
            )
        })?,
    );
    let blobs = Arc::new(FsBlobStore::open(&cfg.data_dir.join("blobs")).context("opening the blob store")?);
    let store = Store::new(meta.clone(), blobs, &cfg.region);
    let swept = store.sweep_orphans().await.context("sweeping orphaned blobs")?;
    if swept.unfinished + swept.orphans > 0 {
        tracing::info!(
            unfinished = swept.unfinished,
            orphans = swept.orphans,
            "swept blobs left by an earlier crash"
        );
    }

    let s3_listener = TcpListener::bind(cfg.s3_listen)
        .await
        .with_context(|| format!("binding {}", cfg.s3_listen))?;
    let control_listener = TcpListener::bind(cfg.control_listen)
        .await
        .with_context(|| format!("binding {}", cfg.control_listen))?;
    let s3_endpoint = format!("http://{}", s3_listener.local_addr()?);
    let control_endpoint = format!("http://{}", control_listener.local_addr()?);

    let tokens = TokenConfig {
        lifetime_secs: cfg.token_lifetime_secs,
        issuer: format!("{control_endpoint}/identity"),
        ..TokenConfig::default()
    };
    let iam = Iam::open(meta.clone(), tokens)
        .await
        .context("opening the identity store")?;
    let fresh = iam.bootstrap_record().await?.is_none();
    let boot = iam
        .bootstrap(BootstrapRequest {
            admin_hmac: cfg.admin_hmac.clone(),
        })
        .await
        .context("bootstrap")?;
    let instance = iam.instance(&boot.cos_instance_id).await?;
    let admin = iam.hmac(&boot.admin_access_key_id).await?;
    let known = bootstrap::known_field(&cfg.data_dir, "admin_api_key").map(SecretString::new);
    let api_key = iam
        .admin_apikey(&boot, known, cfg.admin_api_key.clone())
        .await
        .context("admin API key")?;

    let kms = Kms::open(
        meta.clone(),
        iam.clone(),
        cfg.kms_timing.clone(),
        cfg.pkcs11.clone(),
    )
    .await
    .context("opening the key management service")?;
    let admin_principal = Principal::Identity {
        iam_id: boot.admin_iam_id.clone(),
        account: boot.account_id.clone(),
    };
    let dev_kms = devkms::ensure(
        &kms,
        &admin_principal,
        &cfg.data_dir,
        &cfg.region,
        fresh,
        bootstrap::known_field(&cfg.data_dir, "kms_instance_id"),
    )
    .await
    .context("the development KMS instance")?;

    let path = bootstrap::write(
        &cfg.data_dir,
        &BootstrapFile {
            account_id: &boot.account_id,
            cos_instance_id: &boot.cos_instance_id,
            cos_instance_crn: &instance.crn().to_string(),
            region: &cfg.region,
            admin_iam_id: &boot.admin_iam_id,
            admin_access_key_id: &admin.access_key_id,
            admin_secret_access_key: admin.secret_access_key.expose(),
            admin_api_key: api_key.expose(),
            kms_instance_id: dev_kms.as_ref().map(|(id, _)| id.as_str()),
            kms_instance_crn: dev_kms.as_ref().map(|(_, crn)| crn.as_str()),
            s3_endpoint: &s3_endpoint,
            control_endpoint: &control_endpoint,
        },
    )?;
    print_welcome(&path.display().to_string(), &s3_endpoint, &control_endpoint);

    let store = store.with_kms(kms.clone());
    let s3 = coffer_api_s3::build(
        store.clone(),
        iam.clone(),
        &coffer_api_s3::S3Config {
            domains: cfg.domains.clone(),
        },
    );
    let control = coffer_api_control::router(coffer_api_control::ControlState {
        iam,
        kms: kms.clone(),
        store: store.clone(),
        region: cfg.region.clone(),
        public_url: control_endpoint.clone(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let s3_task = tokio::spawn(http::serve(
        "s3",
        s3_listener,
        move |_| s3.clone(),
        stop_rx.clone(),
    ));
    let control_task = tokio::spawn(http::serve(
        "control",
        control_listener,
        move |peer| TowerToHyperService::new(control.clone().layer(axum::Extension(PeerAddr(peer)))),
        stop_rx,
    ));
    tracing::info!(s3 = %s3_endpoint, control = %control_endpoint, "coffer is serving");

    let rotation = tokio::spawn(rotate_on_schedule(kms, cfg.kms_timing.month_secs));

    wait_for_signal().await;
    rotation.abort();
    tracing::info!("shutting down: no new connections; in-flight requests finish");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(s3_task, control_task);
    // Blobs retired by the last requests: deleted now rather than swept at the next start.
    store.settled().await;
    tracing::info!("stopped");
    Ok(())
}

fn print_welcome(bootstrap: &str, s3: &str, control: &str) {
    println!("coffer is starting");
    println!("  S3 endpoint:      {s3}");
    println!("  control plane:    {control}");
    println!("  credentials:      {bootstrap} (mode 0600)");
    println!();
    println!("Use it with the aws cli:");
    println!("  export AWS_ACCESS_KEY_ID=$(jq -r .admin_access_key_id {bootstrap})");
    println!("  export AWS_SECRET_ACCESS_KEY=$(jq -r .admin_secret_access_key {bootstrap})");
    println!("  aws --endpoint-url {s3} s3 mb s3://my-bucket");
    println!("  aws --endpoint-url {s3} s3 cp ./file s3://my-bucket/");
}

/// Rotates root keys whose rotation policy is due, checking often enough for the configured
/// month length.
async fn rotate_on_schedule(kms: Kms, month_secs: i64) {
    let period = std::time::Duration::from_secs(u64::try_from((month_secs / 4).clamp(1, 60)).unwrap_or(60));
    loop {
        tokio::time::sleep(period).await;
        match kms.rotate_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rotated = n, "rotated keys on schedule"),
            Err(e) => tracing::error!(error = %e, "scheduled rotation failed"),
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
