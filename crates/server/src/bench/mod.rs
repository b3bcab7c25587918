//! `coffer bench`: PUT and GET throughput (1 MiB, 64 MiB) and 4 KiB operations per second on an
//! encrypted and a plain bucket of a running coffer — and on a peer S3 server measured in the
//! same run — next to this machine's one-core MD5 and AES-256-GCM limits; and the KMS's wrap
//! and unwrap rates, in process and over HTTP.

mod kms;
mod limits;
mod sigv4;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use sigv4::Signer;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The data dir of the running coffer (its bootstrap.json names endpoints and credentials).
    #[arg(long, env = "COFFER_DATA_DIR", default_value = "coffer-data")]
    data_dir: std::path::PathBuf,
    /// A peer S3 endpoint to measure in the same run (for example s3s-fs).
    #[arg(long)]
    peer: Option<String>,
    #[arg(long, default_value = "coffer-bench")]
    peer_access_key: String,
    #[arg(long, default_value = "coffer-bench-secret")]
    peer_secret_key: String,
    /// Seconds per measurement (split over the rounds).
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Rounds in which the targets take turns (more rounds spread noise more evenly).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Object sizes to measure: any of 64m, 1m, 4k (all by default).
    #[arg(long, value_delimiter = ',', default_values_t = ["64m".to_owned(), "1m".to_owned(), "4k".to_owned()])]
    sizes: Vec<String>,
    /// Skip the KMS rows.
    #[arg(long)]
    no_kms: bool,
    /// Concurrent requests for the 4 KiB rows.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One S3 endpoint with a bucket to measure, and a connection pool of its own: targets that
/// shared one were measured with each other's connection state (hyper sizes its buffers to
/// the reads it has seen).
struct Target {
    name: &'static str,
    http: HttpClient,
    endpoint: String,
    bucket: String,
    signer: Arc<Signer>,
}

struct Row {
    label: &'static str,
    unit: &'static str,
    /// Per target, the value of each round.
    rounds: Vec<Vec<f64>>,
    /// Per target, the median over the rounds: one stalled round cannot move it.
    values: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// The lowest and highest per-round ratio of target `a` to target `b`.
fn ratio_range(row: &Row, a: usize, b: usize) -> Option<(f64, f64)> {
    let (ra, rb) = (row.rounds.get(a)?, row.rounds.get(b)?);
    let ratios: Vec<f64> = ra
        .iter()
        .zip(rb)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    let lo = ratios.iter().copied().reduce(f64::min)?;
    let hi = ratios.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small responses on kept-alive connections must not wait for a delayed ACK.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(connector)
}

async fn send(
    http: &HttpClient,
    method: Method,
    url: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-length", body.len());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = http.request(req.body(Full::new(body))?).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// A GET whose body is counted, not kept: the load generator shares the machine's cores with
/// the servers it measures, so it should spend as little as it can per byte.
async fn get_len(http: &HttpClient, url: &str) -> anyhow::Result<(u16, usize)> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Full::new(Bytes::new()))?;
    let resp = http.request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        len += frame?.data_ref().map_or(0, Bytes::len);
    }
    Ok((status, len))
}

impl Target {
    fn url(&self, method: &str, key: &str) -> String {
        let path = if key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{key}", self.bucket)
        };
        self.signer.presign(method, &self.endpoint, &path, 3600)
    }

    async fn put(&self, key: &str, body: Bytes) -> anyhow::Result<()> {
        let (status, text) = send(&self.http, Method::PUT, &self.url("PUT", key), body, &[]).await?;
        if status != 200 {
            bail!(
                "{} PUT {key}: {status} {}",
                self.name,
                String::from_utf8_lossy(&text)
            );
        }
        Ok(())
    }

    async fn get(&self, key: &str, expect: usize) -> anyhow::Result<()> {
        let (status, len) = get_len(&self.http, &self.url("GET", key)).await?;
        if status != 200 || len != expect {
            bail!("{} GET {key}: {status}, {len} bytes", self.name);
        }
        Ok(())
    }
}

fn bar(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} ops, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Bytes of distinct objects a stream writes: later PUTs overwrite these keys, so every PUT
/// after the first few also retires an old blob, as in steady use. A working set that stays
/// put keeps a long run from filling the disk (10 s per target wrote about 20 GB before), and
/// keeps every PUT paying for the same thing: on a VM whose host takes freed guest memory
/// back, a page cache that grows into fresh memory faults on the host at every page (measured
/// here: 0.36 GB/s on first touch, 1.3-1.9 GB/s after), and which target met that depended
/// only on timing (PUT 64 MiB at 260-400 MB/s, against 650-730, for seconds at a time).
const WORKING_SET: usize = 256 << 20;

/// The order of the targets (encrypted, plain, then the peer if any) in turn or round `n`: the
/// peer first, then the two coffer buckets, which swap places from one to the next. Each coffer
/// bucket then follows the peer, and the other bucket, equally often. (A rotation of all three
/// put the encrypted bucket after the peer twice as often as the plain one, and whatever the
/// peer leaves behind, dirty pages or threads winding down, weighed more on it.)
fn order(targets: usize, n: usize) -> Vec<usize> {
    let mut o = if targets > 2 { vec![2] } else { Vec::new() };
    o.extend(if n.is_multiple_of(2) { [0, 1] } else { [1, 0] });
    o
}

/// How long a target keeps the stream before the next one takes it.
const TURN: Duration = Duration::from_millis(50);

/// Sequential PUTs then GETs of `size`-byte objects, one request at a time, the targets taking
/// turns of about [`TURN`] for `seconds` each: MB/s per target, PUT and GET. In short turns
/// every target meets the same moments of a shared machine; in slices of seconds, the
/// per-round encrypted/plain ratios of one row of one run spread from 0.70 to 1.18.
async fn stream(
    targets: &[Arc<Target>],
    size: usize,
    seconds: f64,
    min_ops: u64,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let body = Bytes::from(vec![0xa5u8; size]);
    let keys = (WORKING_SET / size).max(1) as u64;
    let mut written = vec![0u64; targets.len()];
    let mut rates = Vec::new();
    for op in ["PUT", "GET"] {
        let pb = bar(format!("{op} {} MiB, targets in turn", size >> 20));
        let mut done = vec![0u64; targets.len()];
        let mut busy = vec![Duration::ZERO; targets.len()];
        let start = Instant::now();
        let mut turn = 0;
        while done.iter().any(|&n| n < min_ops)
            || start.elapsed().as_secs_f64() < seconds * targets.len() as f64
        {
            for i in order(targets.len(), turn) {
                let t0 = Instant::now();
                loop {
                    let n = done[i];
                    if op == "PUT" {
                        targets[i]
                            .put(&format!("s{size}-{}", n % keys), body.clone())
                            .await?;
                    } else {
                        targets[i]
                            .get(&format!("s{size}-{}", n % written[i].max(1)), size)
                            .await?;
                    }
                    done[i] += 1;
                    pb.inc(1);
                    if t0.elapsed() >= TURN {
                        break;
                    }
                }
                busy[i] += t0.elapsed();
            }
            turn += 1;
        }
        if op == "PUT" {
            written = done.iter().map(|&n| n.min(keys)).collect();
        }
        rates.push(
            done.iter()
                .zip(&busy)
                .map(|(&n, d)| (n * size as u64) as f64 / d.as_secs_f64() / 1e6)
                .collect::<Vec<_>>(),
        );
        pb.finish_and_clear();
    }
    Ok(rates[0].iter().copied().zip(rates[1].iter().copied()).collect())
}

/// 4 KiB PUTs then GETs with `concurrency` requests in flight, the targets taking turns of
/// about [`TURN`] for `seconds` each: operations per second per target, PUT and GET. A turn
/// ends when its requests in flight do (a few hundred µs at most), and that tail counts in its
/// time. In slices of seconds instead, two runs of the same server gave the encrypted bucket's
/// GET 4 KiB 0.85-1.20 of the plain one's, and the per-round ratios spread from 0.71 to 0.98.
async fn small(targets: &[Arc<Target>], seconds: f64, concurrency: usize) -> anyhow::Result<Vec<(f64, f64)>> {
    let body = Bytes::from(vec![0x3cu8; 4096]);
    // Each worker writes its own keys, then reads back the ones it wrote.
    let mut written = vec![vec![0u64; concurrency]; targets.len()];
    let mut rates = Vec::new();
    for op in ["PUT", "GET"] {
        let pb = bar(format!("{op} 4 KiB x{concurrency}, targets in turn"));
        let mut done = vec![vec![0u64; concurrency]; targets.len()];
        let mut busy = vec![Duration::ZERO; targets.len()];
        let start = Instant::now();
        let mut turn = 0;
        while start.elapsed().as_secs_f64() < seconds * targets.len() as f64 {
            for i in order(targets.len(), turn) {
                let t0 = Instant::now();
                let mut tasks = Vec::new();
                for w in 0..concurrency {
                    let (t, body, pb) = (targets[i].clone(), body.clone(), pb.clone());
                    let (mut n, have) = (done[i][w], written[i][w]);
                    tasks.push(tokio::spawn(async move {
                        while t0.elapsed() < TURN {
                            if op == "PUT" {
                                t.put(&format!("k4-{w}-{}", n % 256), body.clone()).await?;
                            } else {
                                t.get(&format!("k4-{w}-{}", n % have.clamp(1, 256)), 4096).await?;
                            }
                            n += 1;
                            pb.inc(1);
                        }
                        anyhow::Ok(n)
                    }));
                }
                for (w, task) in tasks.into_iter().enumerate() {
                    done[i][w] = task.await??;
                }
                busy[i] += t0.elapsed();
            }
            turn += 1;
        }
        if op == "PUT" {
            written = done.clone();
        }
        rates.push(
            done.iter()
                .zip(&busy)
                .map(|(n, d)| n.iter().sum::<u64>() as f64 / d.as_secs_f64())
                .collect::<Vec<_>>(),
        );
        pb.finish_and_clear();
    }
    Ok(rates[0].iter().copied().zip(rates[1].iter().copied()).collect())
}

fn field(v: &Value, name: &str) -> anyhow::Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("bootstrap.json has no {name}"))
}

/// What the KMS rows need: the control plane, a token, the dev instance and its bench key.
struct KmsTarget {
    control: String,
    token: String,
    instance: String,
    key: String,
}

/// Creates the encrypted and plain buckets (and, once, the root key and the authorization).
async fn setup(
    boot: &Value,
    http: &HttpClient,
    signer: &Arc<Signer>,
) -> anyhow::Result<(Target, Target, KmsTarget)> {
    let control = field(boot, "control_endpoint")?;
    let kms =
        field(boot, "kms_instance_id").context("the bench needs the dev KMS instance of a fresh data dir")?;
    let c = crate::cli::ControlClient::login(&control, &field(boot, "admin_api_key")?).await?;
    let account = field(boot, "account_id")?;
    let cos = field(boot, "cos_instance_id")?;
    let attrs = |svc: &str, inst: &str| {
        json!({ "attributes": [
        { "name": "accountId", "value": account }, { "name": "serviceName", "value": svc }, { "name": "serviceInstance", "value": inst }] })
    };
    let policy = json!({ "type": "authorization", "subjects": [attrs("cloud-object-storage", &cos)],
        "roles": [{ "role_id": "crn:v1:bluemix:public:iam::::serviceRole:Reader" }], "resources": [attrs("hs-crypto", &kms)] });
    c.call(Method::POST, "/v1/policies", Some(&policy)).await?;
    let key = c
        .call_with(
            Method::POST,
            "/api/v2/keys",
            Some(&json!({ "resources": [{ "name": "bench", "extractable": false }] })),
            &[("bluemix-instance", &kms)],
        )
        .await?;
    let crn = key["resources"][0]["crn"]
        .as_str()
        .context("no key CRN")?
        .to_owned();
    let kms_target = KmsTarget {
        control: control.trim_end_matches('/').to_owned(),
        token: c.token().to_owned(),
        key: key["resources"][0]["id"]
            .as_str()
            .context("no key id")?
            .to_owned(),
        instance: kms,
    };
    let endpoint = field(boot, "s3_endpoint")?;
    let suffix = hex::encode(coffer_crypto::random_bytes(4));
    let make = |name: &'static str, bucket: String| Target {
        name,
        http: client(),
        endpoint: endpoint.clone(),
        bucket,
        signer: signer.clone(),
    };
    let (enc, plain) = (
        make("coffer encrypted", format!("bench-enc-{suffix}")),
        make("coffer plain", format!("bench-plain-{suffix}")),
    );
    for (t, kp) in [(&enc, true), (&plain, false)] {
        let headers: Vec<(&str, &str)> = if kp {
            vec![
                ("ibm-sse-kp-encryption-algorithm", "AES256"),
                ("ibm-sse-kp-customer-root-key-crn", &crn),
            ]
        } else {
            vec![]
        };
        let (status, body) = send(http, Method::PUT, &t.url("PUT", ""), Bytes::new(), &headers).await?;
        if status != 200 {
            bail!(
                "creating {}: {status} {}",
                t.bucket,
                String::from_utf8_lossy(&body)
            );
        }
    }
    Ok((enc, plain, kms_target))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let boot: Value = serde_json::from_slice(
        &std::fs::read(args.data_dir.join("bootstrap.json")).context("reading bootstrap.json")?,
    )?;
    let http = client();
    let signer = Arc::new(Signer {
        access_key: field(&boot, "admin_access_key_id")?,
        secret_key: field(&boot, "admin_secret_access_key")?,
        region: field(&boot, "region")?,
    });
    let (enc, plain, kms_target) = setup(&boot, &http, &signer).await?;
    let mut targets = vec![Arc::new(enc), Arc::new(plain)];
    if let Some(peer) = &args.peer {
        let t = Target {
            name: "peer",
            http: client(),
            endpoint: peer.clone(),
            bucket: format!("bench-peer-{}", hex::encode(coffer_crypto::random_bytes(4))),
            signer: Arc::new(Signer {
                access_key: args.peer_access_key.clone(),
                secret_key: args.peer_secret_key.clone(),
                region: "us-east-1".into(),
            }),
        };
        let (status, body) = send(&http, Method::PUT, &t.url("PUT", ""), Bytes::new(), &[]).await?;
        if status != 200 {
            bail!(
                "creating the peer bucket: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        targets.push(Arc::new(t));
    }
    let pb = bar("measuring MD5 and AES-256-GCM on one core".into());
    let lim = tokio::task::spawn_blocking(limits::measure).await?;
    pb.finish_and_clear();

    let labels = [
        ("PUT 64 MiB", "MB/s"),
        ("GET 64 MiB", "MB/s"),
        ("PUT 1 MiB", "MB/s"),
        ("GET 1 MiB", "MB/s"),
        ("PUT 4 KiB", "ops/s"),
        ("GET 4 KiB", "ops/s"),
    ];
    let mut rows: Vec<Row> = labels
        .iter()
        .map(|&(label, unit)| Row {
            label,
            unit,
            rounds: vec![Vec::new(); targets.len()],
            values: vec![0.0; targets.len()],
        })
        .collect();
    // Rounds, size by size, so that the values compared in a row are measured minutes apart
    // at most and a shared, noisy machine weighs on every column alike: in each round the
    // targets take turns of about [`TURN`] at every size, in the order of `order`.
    let rounds = args.rounds.max(1);
    let slice = args.seconds / rounds as f64;
    let sizes: [(&str, usize); 3] = [("64m", 0), ("1m", 2), ("4k", 4)];
    for _ in 0..rounds {
        for &(size, row) in sizes.iter().filter(|(s, _)| args.sizes.iter().any(|a| a == s)) {
            let results = match size {
                "64m" => stream(&targets, 64 << 20, slice, 2).await?,
                "1m" => stream(&targets, 1 << 20, slice, 16).await?,
                _ => small(&targets, slice, args.concurrency).await?,
            };
            for (i, (put, get)) in results.into_iter().enumerate() {
                rows[row].rounds[i].push(put);
                rows[row + 1].rounds[i].push(get);
            }
        }
    }
    for row in &mut rows {
        row.values = row.rounds.iter().map(|r| median(r)).collect();
    }
    let kms_rates = if args.no_kms {
        None
    } else {
        let seconds = args.seconds;
        let local = tokio::task::spawn_blocking(move || kms::in_process(seconds)).await??;
        let remote = kms::over_http(
            &http,
            &kms_target.control,
            &kms_target.token,
            &kms_target.instance,
            &kms_target.key,
            args.seconds,
            args.concurrency,
        )
        .await?;
        Some((local, remote))
    };
    report(&args, &targets, &rows, &lim, kms_rates.as_ref());
    Ok(())
}

fn report(
    args: &BenchArgs,
    targets: &[Arc<Target>],
    rows: &[Row],
    lim: &limits::Limits,
    kms_rates: Option<&(kms::KmsRates, kms::KmsRates)>,
) {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let put64 = rows
        .first()
        .and_then(|r| r.values.first())
        .copied()
        .unwrap_or(0.0);
    if args.json {
        let out = json!({
            "targets": targets.iter().map(|t| t.name).collect::<Vec<_>>(),
            "rows": rows.iter().map(|r| json!({ "row": r.label, "unit": r.unit, "values": r.values, "rounds": r.rounds })).collect::<Vec<_>>(),
            "cores": std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            "limits_mb_s": { "md5": lim.md5, "aes_256_gcm": lim.aes_gcm, "md5_plus_aes_256_gcm": lim.md5_and_aes },
            "encrypted_put_64mib_vs_limit": ratio(put64, lim.md5_and_aes),
            "kms_ops_s": kms_rates.map(|(local, remote)| json!({
                "in_process_one_core": { "wrap": local.wrap, "unwrap": local.unwrap },
                "http": { "wrap": remote.wrap, "unwrap": remote.unwrap, "concurrency": args.concurrency },
            })),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return;
    }
    let mut header = format!("{:<12} {:>6}", "", "unit");
    for t in targets {
        header.push_str(&format!(" {:>17}", t.name));
    }
    header.push_str("   enc/plain  (rounds)");
    if targets.len() > 2 {
        header.push_str("   enc/peer");
    }
    println!("{header}");
    for r in rows.iter().filter(|r| r.values.iter().any(|v| *v > 0.0)) {
        let mut line = format!("{:<12} {:>6}", r.label, r.unit);
        for v in &r.values {
            line.push_str(&format!(" {v:>17.1}"));
        }
        let v = |i: usize| r.values.get(i).copied().unwrap_or(0.0);
        line.push_str(&format!("   {:>9.2}", ratio(v(0), v(1))));
        match ratio_range(r, 0, 1) {
            Some((lo, hi)) => line.push_str(&format!("  {lo:.2}-{hi:.2}")),
            None => line.push_str("           "),
        }
        if targets.len() > 2 {
            line.push_str(&format!("   {:>8.2}", ratio(v(0), v(2))));
        }
        println!("{line}");
    }
    println!(
        "(each value is the median of {} rounds of {:.1} s; (rounds) is the range of the per-round ratios)",
        args.rounds.max(1),
        args.seconds / args.rounds.max(1) as f64
    );
    println!();
    // On a small machine the servers and this load generator compete for the same cores, and
    // encryption's extra CPU shows in the ratios in full; the core count says how to read them.
    println!(
        "{} cores, shared by the servers measured and this load generator",
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
    println!(
        "one core: MD5 {:.0} MB/s, AES-256-GCM {:.0} MB/s, MD5 + AES-256-GCM {:.0} MB/s",
        lim.md5, lim.aes_gcm, lim.md5_and_aes
    );
    if put64 > 0.0 {
        println!(
            "single-stream encrypted PUT (64 MiB) at {:.0}% of the MD5 + AES-GCM limit",
            100.0 * ratio(put64, lim.md5_and_aes)
        );
    }
    if let Some((local, remote)) = kms_rates {
        println!(
            "KMS ops/s: in process, one core: wrap {:.0}, unwrap {:.0}; over HTTP (x{}): wrap {:.0}, unwrap {:.0}",
            local.wrap, local.unwrap, args.concurrency, remote.wrap, remote.unwrap
        );
    }
}
