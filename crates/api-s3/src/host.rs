//! Virtual-host-style addressing: `<bucket>.<domain>` names a bucket; any other host (an IP, a
//! base domain, an unknown name) is path-style.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The base domains under which buckets are addressed as subdomains.
#[derive(Debug, Clone)]
pub struct Domains {
    /// Longest first, so that `s3.example.com` wins over `example.com`.
    bases: Vec<String>,
}

impl Domains {
    pub fn new(bases: impl IntoIterator<Item = String>) -> Self {
        let mut bases: Vec<String> = bases
            .into_iter()
            .map(|b| b.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        bases.sort_by_key(|b| std::cmp::Reverse(b.len()));
        Self { bases }
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for base in &self.bases {
            if let Some(bucket) = name.strip_suffix(base.as_str()).and_then(|p| p.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(base.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_in_subdomains_only() {
        let d = Domains::new(["localhost".to_string(), "s3.example.com".to_string()]);
        let vh = d.parse_host_header("my-bucket.localhost:9000").unwrap();
        assert_eq!(vh.bucket(), Some("my-bucket"));
        let vh = d.parse_host_header("a.b.s3.example.com").unwrap();
        assert_eq!(vh.bucket(), Some("a.b"));
        for path_style in ["localhost:9000", "s3.example.com", "other.host:80", "localhost"] {
            assert_eq!(
                d.parse_host_header(path_style).unwrap().bucket(),
                None,
                "{path_style}"
            );
        }
    }
}
