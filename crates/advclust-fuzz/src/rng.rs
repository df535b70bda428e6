//! A tiny deterministic random number generator (SplitMix64) and the seed derivation that makes
//! every fuzz iteration reproducible on its own.

/// SplitMix64: fast, statistically decent, and the same on every platform and Rust version
/// (which a fuzzer that promises "same seed, same inputs" needs more than quality).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The generator of iteration `iteration` of target `target` under run seed `seed`: each
    /// iteration's input depends on these three values only, so one failing iteration can be
    /// regenerated without running the ones before it.
    pub fn for_iteration(seed: u64, target: &str, iteration: u64) -> Self {
        let mut h = fnv1a(target.as_bytes());
        h ^= mix(seed);
        h = mix(h ^ iteration.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Rng::new(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A uniform integer in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// An element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An integer in `0..n` drawn log-uniformly (small values much more likely than large
    /// ones): positions near the start of a file, where the headers are, and short lengths.
    pub fn log_below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let bits = usize::BITS - (n - 1).leading_zeros();
        let k = self.range(1, bits as usize);
        let cap = (1usize << k).min(n);
        self.below(cap)
    }
}

/// The SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a hash of a byte string (target names into seeds).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = {
            let mut r = Rng::for_iteration(7, "idx-images", 3);
            (0..16).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::for_iteration(7, "idx-images", 3);
            (0..16).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut c = Rng::for_iteration(7, "idx-images", 4);
        assert_ne!(a[0], c.next_u64());
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = Rng::new(1);
        for n in [1usize, 2, 3, 17, 4096, 1 << 20] {
            for _ in 0..200 {
                assert!(r.below(n) < n);
                assert!(r.log_below(n) < n);
                let x = r.range(3, 3 + n);
                assert!((3..=3 + n).contains(&x));
            }
        }
        assert_eq!(r.below(0), 0);
    }
}
