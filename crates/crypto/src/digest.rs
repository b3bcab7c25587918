//! Digests computed while object bytes stream through: the MD5 that S3 uses as an ETag, and the
//! flexible checksums (`x-amz-checksum-*`) a client may send or ask for.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

pub use crate::md5::Md5;

/// SHA-256 of one buffer (for hashing high-entropy secrets such as API keys before storing).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// HMAC-SHA256 (request signing).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        data,
    );
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The S3 flexible-checksum algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The name S3 uses (`x-amz-checksum-<lowercase name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

enum Hasher {
    Crc(crc_fast::Digest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(alg: ChecksumAlgorithm) -> Self {
        use crc_fast::CrcAlgorithm as C;
        match alg {
            ChecksumAlgorithm::Crc32 => Self::Crc(crc_fast::Digest::new(C::Crc32IsoHdlc), 4),
            ChecksumAlgorithm::Crc32c => Self::Crc(crc_fast::Digest::new(C::Crc32Iscsi), 4),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc(crc_fast::Digest::new(C::Crc64Nvme), 8),
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::default()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::default()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc(d, _) => d.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn finalize(self) -> Vec<u8> {
        match self {
            Self::Crc(d, width) => {
                let v = d.finalize().to_be_bytes();
                v.get(8 - width..).unwrap_or_default().to_vec()
            }
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Several checksums computed in one pass.
#[derive(Default)]
pub struct Checksums {
    hashers: Vec<(ChecksumAlgorithm, Hasher)>,
}

impl Checksums {
    pub fn new(algorithms: impl IntoIterator<Item = ChecksumAlgorithm>) -> Self {
        let mut algs: Vec<ChecksumAlgorithm> = algorithms.into_iter().collect();
        algs.sort();
        algs.dedup();
        Self {
            hashers: algs.into_iter().map(|a| (a, Hasher::new(a))).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashers.is_empty()
    }

    pub fn update(&mut self, data: &[u8]) {
        for (_, h) in &mut self.hashers {
            h.update(data);
        }
    }

    /// Each algorithm with its value, base64-encoded as S3 sends it.
    pub fn finalize(self) -> Vec<(ChecksumAlgorithm, String)> {
        self.hashers
            .into_iter()
            .map(|(a, h)| (a, BASE64.encode(h.finalize())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_answer() {
        assert_eq!(hex::encode(Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex::encode(Md5::digest(b"hello world")),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn checksums_known_answers() {
        // Values as AWS computes them for "hello world".
        let mut c = Checksums::new(ChecksumAlgorithm::ALL);
        c.update(b"hello ");
        c.update(b"world");
        let got: std::collections::BTreeMap<_, _> = c.finalize().into_iter().collect();
        assert_eq!(got[&ChecksumAlgorithm::Crc32], "DUoRhQ==");
        assert_eq!(got[&ChecksumAlgorithm::Crc32c], "yZRlqg==");
        assert_eq!(got[&ChecksumAlgorithm::Sha1], "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(
            got[&ChecksumAlgorithm::Sha256],
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert_eq!(got[&ChecksumAlgorithm::Crc64Nvme].len(), 12);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(&a.name().to_lowercase()), Some(a));
        }
        assert_eq!(ChecksumAlgorithm::from_name("md5"), None);
    }
}
