//! Seeded randomness shared by every crate: one pinned generator, independent streams from one
//! seed, normal draws, and a generator's state for checkpoints.

use serde::{Deserialize, Serialize};

/// The random generator of every seeded choice in advclust: ChaCha with 12 rounds, named by its
/// algorithm rather than through `rand::rngs::StdRng`, which rand documents as free to change
/// between releases. (rand 0.10's `StdRng` wraps this same generator, so results seeded before
/// the switch are unchanged.) Seed it with `rand::SeedableRng::seed_from_u64`.
///
/// ```
/// use rand::{Rng, SeedableRng};
/// let mut a = advclust_core::SeededRng::seed_from_u64(7);
/// let mut b = advclust_core::SeededRng::seed_from_u64(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
pub type SeededRng = rand::rngs::ChaCha12Rng;

/// The full state of a [`SeededRng`] (key, stream and position in the stream), so that a
/// checkpointed run resumes with exactly the draws an uninterrupted run would make.
///
/// ```
/// use rand::{Rng, SeedableRng};
/// use advclust_core::{RngState, SeededRng};
/// let mut rng = SeededRng::seed_from_u64(3);
/// rng.next_u32();
/// let saved = RngState::of(&rng);
/// let expected = rng.next_u64();
/// assert_eq!(saved.restore().next_u64(), expected);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 256-bit key the generator was seeded with.
    pub seed: [u8; 32],
    /// The ChaCha stream number.
    pub stream: u64,
    /// The position in the stream, in 32-bit words.
    pub word_pos: u128,
}

impl RngState {
    /// The state of `rng`.
    pub fn of(rng: &SeededRng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// A generator in exactly this state.
    pub fn restore(&self) -> SeededRng {
        use rand::SeedableRng;
        let mut rng = SeededRng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// An independent seed for stream `stream` of `seed` (SplitMix64 of the two): the same pair
/// always gives the same value, and nearby streams give unrelated ones. Every advclust
/// component that needs several random streams (one per image, per epoch, per network) derives
/// them from the user's one seed with this function, so results depend on the seed only.
///
/// ```
/// use advclust_core::derive_seed;
/// assert_eq!(derive_seed(0, 1), derive_seed(0, 1));
/// assert_ne!(derive_seed(0, 1), derive_seed(0, 2));
/// assert_ne!(derive_seed(0, 1), derive_seed(1, 1));
/// ```
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` independent standard normal draws (Box-Muller on `rng`'s uniforms).
///
/// ```
/// use rand::SeedableRng;
/// let mut rng = advclust_core::SeededRng::seed_from_u64(0);
/// let z = advclust_core::standard_normal(&mut rng, 10_000);
/// let mean = z.iter().map(|&v| v as f64).sum::<f64>() / 1e4;
/// assert!(mean.abs() < 0.05);
/// ```
pub fn standard_normal<R: rand::Rng + ?Sized>(rng: &mut R, len: usize) -> Vec<f32> {
    use rand::RngExt;
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(len);
    out
}
