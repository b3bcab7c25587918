//! Randomness for secrets, from the operating system's CSPRNG.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// `n` random bytes. Panics never: an unavailable OS RNG aborts the process, as nothing secret
/// can be made without it.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fill(&mut v);
    v
}

pub fn random_array<const N: usize>() -> [u8; N] {
    let mut a = [0u8; N];
    fill(&mut a);
    a
}

fn fill(buf: &mut [u8]) {
    if SystemRandom::new().fill(buf).is_err() {
        // Continuing would hand out predictable secrets.
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_is_not_constant() {
        assert_ne!(super::random_array::<32>(), super::random_array::<32>());
        assert_eq!(super::random_bytes(7).len(), 7);
    }
}
