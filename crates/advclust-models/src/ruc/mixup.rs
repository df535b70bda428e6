//! The random pieces of RUC's MixMatch-style step: sharpening and the `Beta(a, a)` MixUp weight.

use advclust_core::SeededRng;
use burn::tensor::Tensor;
use rand::RngExt;

/// Sharpens each row of `p` to the power `1 / temperature`, renormalised (MixMatch).
pub(crate) fn sharpen(p: Tensor<2>, temperature: f64) -> Tensor<2> {
    let q = p.clamp_min(1e-12).powf_scalar(1.0 / temperature);
    let z = q.clone().sum_dim(1);
    q / z
}

/// `Beta(a, a)` from two gamma draws (Marsaglia-Tsang would do for any shape; RUC's is 4).
pub(crate) fn beta_symmetric(rng: &mut SeededRng, a: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, a);
    x / (x + y).max(f64::MIN_POSITIVE)
}

/// `Gamma(shape, 1)` by Marsaglia and Tsang (shape >= 1; boosted for shape < 1).
fn gamma(rng: &mut SeededRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = advclust_core::standard_normal(rng, 1)[0] as f64;
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn beta_draws_are_symmetric_around_a_half() {
        let mut rng = SeededRng::seed_from_u64(3);
        let draws: Vec<f64> = (0..4000).map(|_| beta_symmetric(&mut rng, 4.0)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        // Beta(4, 4): mean 1/2, variance 1/36.
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((var - 1.0 / 36.0).abs() < 0.003, "{var}");
        assert!(draws.iter().all(|d| (0.0..=1.0).contains(d)));
    }
}
