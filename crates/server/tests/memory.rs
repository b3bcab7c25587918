//! Streaming: memory per request is bounded and independent of object size.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use common::{Server, unique};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const SIZE: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the server's RSS every few milliseconds until stopped; returns the peak.
fn sample(pid: u32) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut peak = 0;
        while !stop2.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    (stop, handle)
}

#[tokio::test]
async fn a_gigabyte_put_and_get_stay_within_a_few_mib() {
    let server = Server::start();
    let pid = server.child.as_ref().unwrap().id();
    let s3 = server.client();
    let b = unique("mem");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    // Warm up allocator pools and connection state with a smaller object first.
    s3.put_object()
        .bucket(&b)
        .key("warm")
        .body(vec![7u8; 8 << 20].into())
        .send()
        .await
        .unwrap();
    s3.get_object()
        .bucket(&b)
        .key("warm")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    let baseline = rss_kib(pid);

    let presign = PresigningConfig::expires_in(Duration::from_secs(600)).unwrap();
    let put = s3
        .put_object()
        .bucket(&b)
        .key("big")
        .content_length(SIZE as i64)
        .presigned(presign.clone())
        .await
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamBody<_>>();
    let chunks = futures::stream::iter(0..SIZE / CHUNK as u64)
        .map(|i| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![(i % 251) as u8; CHUNK]))));
    let mut req = http::Request::put(put.uri()).header("content-length", SIZE);
    for (k, v) in put.headers() {
        req = req.header(k, v);
    }
    let (stop, peak) = sample(pid);
    let resp = client
        .request(req.body(StreamBody::new(chunks)).unwrap())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let put_peak = peak.join().unwrap();
    assert_eq!(resp.status(), 200, "{}", server.log());

    let get = s3
        .get_object()
        .bucket(&b)
        .key("big")
        .presigned(presign)
        .await
        .unwrap();
    let get_client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
    let (stop, peak) = sample(pid);
    let resp = get_client
        .request(
            http::Request::get(get.uri())
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let received = AtomicU64::new(0);
    let mut body = resp.into_body();
    // Read slowly at first, so that a server that buffers instead of streaming would show it.
    while let Some(frame) = body.frame().await {
        let n = frame.unwrap().into_data().map(|d| d.len()).unwrap_or(0) as u64;
        if received.fetch_add(n, Ordering::Relaxed) < 64 << 20 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let get_peak = peak.join().unwrap();
    assert_eq!(received.load(Ordering::Relaxed), SIZE);

    let (put_growth, get_growth) = (
        put_peak.saturating_sub(baseline),
        get_peak.saturating_sub(baseline),
    );
    eprintln!(
        "RSS baseline {baseline} KiB; PUT 1 GiB peak +{put_growth} KiB; GET 1 GiB peak +{get_growth} KiB"
    );
    assert!(put_growth < 16 * 1024, "PUT grew RSS by {put_growth} KiB");
    assert!(get_growth < 16 * 1024, "GET grew RSS by {get_growth} KiB");
}
