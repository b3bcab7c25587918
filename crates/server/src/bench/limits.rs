//! The crypto limits of this machine, one core: MD5, AES-256-GCM, and both in sequence (what
//! an encrypted PUT must do to every byte).

use std::time::{Duration, Instant};

use coffer_crypto::{AeadKey, KeyMaterial, Md5};

const SEGMENT: usize = 64 * 1024;
const BUF: usize = 16 << 20;

/// MB/s (10^6 bytes per second) of running `f` over `BUF` bytes for about `for_at_least`.
fn rate(for_at_least: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < for_at_least {
        f();
        rounds += 1;
    }
    (rounds * BUF as u64) as f64 / start.elapsed().as_secs_f64() / 1e6
}

pub struct Limits {
    pub md5: f64,
    pub aes_gcm: f64,
    pub md5_and_aes: f64,
}

pub fn measure() -> Limits {
    let data = vec![0x5au8; BUF];
    let key = AeadKey::new(&KeyMaterial::generate());
    let mut seg = Vec::with_capacity(SEGMENT + 16);
    let seal_all = |seg: &mut Vec<u8>| {
        for (i, chunk) in data.chunks(SEGMENT).enumerate() {
            seg.clear();
            seg.extend_from_slice(chunk);
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let _ = key.seal_in_place(nonce, b"", seg);
        }
    };
    let d = Duration::from_millis(800);
    let md5 = rate(d, || {
        let mut h = Md5::new();
        h.update(&data);
        std::hint::black_box(h.finalize());
    });
    let aes_gcm = rate(d, || seal_all(&mut seg));
    let md5_and_aes = rate(d, || {
        let mut h = Md5::new();
        h.update(&data);
        std::hint::black_box(h.finalize());
        seal_all(&mut seg);
    });
    Limits {
        md5,
        aes_gcm,
        md5_and_aes,
    }
}
