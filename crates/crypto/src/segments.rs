//! The object format at rest: a versioned header, then the plaintext cut into fixed segments,
//! each sealed with AES-256-GCM under a per-object key.
//!
//! ```text
//! header   magic "CFR1" | version 1 | cipher 1 (AES-256-GCM) | reserved u16 | segment size u32
//!          | salt [32] | nonce prefix [7]                                       (51 bytes)
//! segments [ciphertext of segment_size bytes | tag 16] * (n - 1), then the last, shorter or empty
//! ```
//!
//! The object key is HKDF-SHA256 of the bucket's data key with the object's salt. A segment's
//! nonce is the prefix, its index (u32) and a last-segment flag, and its AAD is the header, so
//! segments cannot be dropped, reordered, moved between objects or truncated without the tag
//! failing. A range read opens only the segments it needs.

use std::ops::Range;
use std::sync::Arc;

use crate::CryptoError;
use crate::aead::{AeadKey, KeyMaterial, NONCE_LEN, TAG_LEN};
use crate::kdf::hkdf_sha256;

pub const MAGIC: &[u8; 4] = b"CFR1";
pub const FORMAT_VERSION: u8 = 1;
pub const CIPHER_AES_256_GCM: u8 = 1;
pub const SALT_LEN: usize = 32;
pub const PREFIX_LEN: usize = 7;
pub const HEADER_LEN: usize = 4 + 1 + 1 + 2 + 4 + SALT_LEN + PREFIX_LEN;
/// The default segment size: 64 KiB.
pub const SEGMENT_SIZE: u32 = 64 * 1024;

/// An object's format parameters, from its header (or its metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_size: u32,
    pub salt: [u8; SALT_LEN],
    pub nonce_prefix: [u8; PREFIX_LEN],
}

impl SegmentHeader {
    pub fn random(segment_size: u32) -> Self {
        Self {
            segment_size,
            salt: crate::random_array(),
            nonce_prefix: crate::random_array(),
        }
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let mut at = 0;
        for part in [
            &MAGIC[..],
            &[FORMAT_VERSION],
            &[CIPHER_AES_256_GCM],
            &[0, 0],
            &self.segment_size.to_be_bytes(),
            &self.salt,
            &self.nonce_prefix,
        ] {
            if let Some(dst) = h.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part);
            }
            at += part.len();
        }
        h
    }

    /// Parses a header; any other format, version or cipher is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        let h = bytes.get(..HEADER_LEN).ok_or(CryptoError::InvalidInput)?;
        let field = |r: Range<usize>| h.get(r).ok_or(CryptoError::InvalidInput);
        if field(0..4)? != MAGIC || field(4..5)? != [FORMAT_VERSION] || field(5..6)? != [CIPHER_AES_256_GCM] {
            return Err(CryptoError::InvalidInput);
        }
        let segment_size =
            u32::from_be_bytes(field(8..12)?.try_into().map_err(|_| CryptoError::InvalidInput)?);
        if segment_size == 0 {
            return Err(CryptoError::InvalidInput);
        }
        Ok(Self {
            segment_size,
            salt: field(12..12 + SALT_LEN)?
                .try_into()
                .map_err(|_| CryptoError::InvalidInput)?,
            nonce_prefix: field(12 + SALT_LEN..HEADER_LEN)?
                .try_into()
                .map_err(|_| CryptoError::InvalidInput)?,
        })
    }

    /// The key of the object this header begins: derived from the bucket's DEK and the salt.
    pub fn object_key(&self, dek: &KeyMaterial) -> ObjectKey {
        ObjectKey(AeadKey::new(&hkdf_sha256(
            dek,
            &self.salt,
            b"coffer object key v1",
        )))
    }

    fn nonce(&self, index: u32, last: bool) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        n[NONCE_LEN - 1] = u8::from(last);
        n
    }

    fn seg(&self) -> u64 {
        u64::from(self.segment_size)
    }

    /// Number of segments of a plaintext of `len` bytes (an empty object has one, empty).
    pub fn segments(&self, len: u64) -> u64 {
        len.div_ceil(self.seg()).max(1)
    }

    /// Length at rest of a plaintext of `len` bytes, header included.
    pub fn sealed_len(&self, len: u64) -> u64 {
        HEADER_LEN as u64 + len + self.segments(len) * TAG_LEN as u64
    }

    /// The segments holding plaintext `range` of an object of `len` bytes, and the byte range
    /// they occupy at rest. An empty range gets the one segment it is in; at the very end of an
    /// object that fills its last segment, that is the last segment, not one past it.
    pub fn locate(&self, range: &Range<u64>, len: u64) -> (Range<u64>, Range<u64>) {
        let seg = self.seg();
        let first = (range.start / seg).min(self.segments(len) - 1);
        let last = if range.end > range.start {
            (range.end - 1) / seg
        } else {
            first
        };
        let stride = seg + TAG_LEN as u64;
        let start = HEADER_LEN as u64 + first * stride;
        let last_plain = (len - last * seg).min(seg);
        let end = HEADER_LEN as u64 + last * stride + last_plain + TAG_LEN as u64;
        (first..last + 1, start..end)
    }
}

/// An object's AES-256-GCM key, derived once and shared by the readers of that object.
#[derive(Debug)]
pub struct ObjectKey(AeadKey);

/// Seals a plaintext stream segment by segment.
pub struct Sealer {
    header: SegmentHeader,
    header_bytes: [u8; HEADER_LEN],
    key: AeadKey,
    index: u32,
    buf: Vec<u8>,
}

impl Sealer {
    pub fn new(dek: &KeyMaterial, header: SegmentHeader) -> Self {
        Self {
            key: header.object_key(dek).0,
            header_bytes: header.to_bytes(),
            buf: Vec::with_capacity(header.segment_size as usize + TAG_LEN),
            header,
            index: 0,
        }
    }

    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    fn seal(&mut self, last: bool) -> Result<Vec<u8>, CryptoError> {
        let mut full = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.header.segment_size as usize + TAG_LEN),
        );
        self.key
            .seal_in_place(self.header.nonce(self.index, last), &self.header_bytes, &mut full)?;
        self.index = self.index.checked_add(1).ok_or(CryptoError::InvalidInput)?;
        Ok(full)
    }

    /// Takes plaintext; returns the segments it completed, sealed.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, CryptoError> {
        let mut out = Vec::new();
        let seg = self.header.segment_size as usize;
        while !data.is_empty() {
            // A full buffer is sealed only once more data shows it is not the last segment.
            if self.buf.len() == seg {
                out.push(self.seal(false)?);
            }
            let take = (seg - self.buf.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.buf.extend_from_slice(head);
            data = rest;
        }
        Ok(out)
    }

    /// Seals what is left as the last segment.
    pub fn finish(mut self) -> Result<Vec<u8>, CryptoError> {
        self.seal(true)
    }
}

/// Opens the segments of one object.
pub struct Opener {
    header: SegmentHeader,
    header_bytes: [u8; HEADER_LEN],
    key: Arc<ObjectKey>,
    len: u64,
}

impl Opener {
    /// `len` is the plaintext length the metadata records.
    pub fn new(dek: &KeyMaterial, header: SegmentHeader, len: u64) -> Self {
        Self::with_key(Arc::new(header.object_key(dek)), header, len)
    }

    /// An opener with the object's key already derived (by `header.object_key` from the
    /// bucket's DEK: a key derived from anything else opens nothing).
    pub fn with_key(key: Arc<ObjectKey>, header: SegmentHeader, len: u64) -> Self {
        Self {
            key,
            header_bytes: header.to_bytes(),
            header,
            len,
        }
    }

    /// Decrypts segment `index` in place and returns its plaintext. The tag covers the index,
    /// the last-segment flag and the header: any tampering fails here.
    pub fn open<'a>(&self, index: u64, sealed: &'a mut [u8]) -> Result<&'a mut [u8], CryptoError> {
        let last = index + 1 == self.header.segments(self.len);
        let idx = u32::try_from(index).map_err(|_| CryptoError::Decrypt)?;
        self.key
            .0
            .open_in_place(self.header.nonce(idx, last), &self.header_bytes, sealed)
    }

    /// Like [`Opener::open`], for a segment whose tag was read apart from its ciphertext:
    /// decrypts `ciphertext` in place. Its length must be the segment's plaintext length.
    pub fn open_detached(&self, index: u64, ciphertext: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let expected = self.sealed_segment_len(index) - TAG_LEN as u64;
        if ciphertext.len() as u64 != expected || tag.len() != TAG_LEN {
            return Err(CryptoError::Decrypt);
        }
        let last = index + 1 == self.header.segments(self.len);
        let idx = u32::try_from(index).map_err(|_| CryptoError::Decrypt)?;
        self.key
            .0
            .open_detached(self.header.nonce(idx, last), &self.header_bytes, tag, ciphertext)
    }

    /// The sealed length of segment `index`.
    pub fn sealed_segment_len(&self, index: u64) -> u64 {
        let seg = self.header.seg();
        (self.len.saturating_sub(index * seg)).min(seg) + TAG_LEN as u64
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }
}

#[cfg(test)]
mod tests;
