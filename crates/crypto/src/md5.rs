//! MD5 through aws-lc's assembly: the ETag of every PUT is an MD5 of the whole body, and no
//! stream can hash on more than one core, so its speed bounds a single upload. On this
//! project's machines aws-lc hashes about a fifth faster than the pure-Rust `md-5` (notes in
//! `rust-deps.md`; `coffer bench` prints the rate it gets).
//!
//! The only `unsafe` in coffer: three calls into aws-lc's C API, each on a context this type
//! owns and a slice it borrows.
#![allow(unsafe_code)]

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// A running MD5.
#[derive(Clone)]
pub struct Md5(MD5_CTX);

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    pub fn new() -> Self {
        let mut ctx = MD5_CTX {
            h: [0; 4],
            Nl: 0,
            Nh: 0,
            data: [0; 64],
            num: 0,
        };
        // SAFETY: `ctx` is a valid, exclusively borrowed MD5_CTX; MD5_Init only writes it.
        unsafe { MD5_Init(&raw mut ctx) };
        Self(ctx)
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: the context was initialized by `new`; `data` is valid for `data.len()` bytes
        // and only read.
        unsafe { MD5_Update(&raw mut self.0, data.as_ptr().cast(), data.len()) };
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: MD5_Final writes exactly 16 bytes (MD5_DIGEST_LENGTH) to `out`.
        unsafe { MD5_Final(out.as_mut_ptr(), &raw mut self.0) };
        out
    }

    /// MD5 of one buffer.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::Md5;
    use md5_ref::Digest as _;
    use proptest::prelude::*;

    proptest! {
        /// Any data fed in any pieces hashes as the reference implementation does.
        #[test]
        fn matches_the_reference(data in proptest::collection::vec(any::<u8>(), 0..5000), cuts in proptest::collection::vec(0usize..5000, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut h = Md5::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                h.update(&data[at..c]);
                at = c;
            }
            let want: [u8; 16] = md5_ref::Md5::digest(&data).into();
            prop_assert_eq!(h.clone().finalize(), want);
            prop_assert_eq!(Md5::digest(&data), want);
        }
    }
}
