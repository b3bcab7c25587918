//! A minimal AWS SigV4 presigner (query-string auth, `UNSIGNED-PAYLOAD`): what the benchmark
//! client needs to keep its own cost per request far below the server's.

use time::OffsetDateTime;
use time::macros::format_description;

pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Signer {
    /// A presigned URL for `method` on `path` (`/bucket/key`) at `endpoint` (`http://host:port`).
    pub fn presign(&self, method: &str, endpoint: &str, path: &str, expires_secs: u32) -> String {
        let host = endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let now = OffsetDateTime::now_utc();
        let amz_date = now
            .format(format_description!("[year][month][day]T[hour][minute][second]Z"))
            .unwrap_or_default();
        let date = amz_date.get(..8).unwrap_or_default().to_owned();
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let credential = encode(&format!("{}/{scope}", self.access_key), false);
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={amz_date}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host"
        );
        let uri = encode(path, true);
        let canonical = format!("{method}\n{uri}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(coffer_crypto::sha256(canonical.as_bytes()))
        );
        let mut key =
            coffer_crypto::hmac_sha256(format!("AWS4{}", self.secret_key).as_bytes(), date.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = coffer_crypto::hmac_sha256(&key, part.as_bytes());
        }
        let signature = hex::encode(coffer_crypto::hmac_sha256(&key, to_sign.as_bytes()));
        format!(
            "{}{uri}?{query}&X-Amz-Signature={signature}",
            endpoint.trim_end_matches('/')
        )
    }
}
