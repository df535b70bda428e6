//! The methods: each one a [`Search`](crate::driver::Search) over one image.

pub(crate) mod simba;
pub(crate) mod square;
pub(crate) mod zeroth;

/// `+1.0` or `-1.0` with equal probability.
pub(crate) fn random_sign(rng: &mut advclust_core::SeededRng) -> f32 {
    use rand::RngExt;
    if rng.random::<bool>() { 1.0 } else { -1.0 }
}
