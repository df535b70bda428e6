//! The PCA view of the paper's Fig. 5b, done right: PCA is fitted on the clean flattened images
//! (samples as rows) and both the clean and the adversarial images are projected onto the same
//! first three components. (The authors' notebook fitted PCA on the transposed matrix and,
//! through a reshape of the wrong variable, plotted the clean set twice.) Besides the picture,
//! the view measures how far the perturbation moves an image in that space, against the distance
//! between two random clean images.

use std::time::Instant;

use advclust_core::{ImageBatch, SeededRng};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{DefenseError, Result};
use crate::linalg::{PcaFit, PcaSolver, pca};

/// Components of the view.
pub const VIEW_COMPONENTS: usize = 3;

/// Numbers of a PCA view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaViewReport {
    /// Images (clean, and as many adversarial).
    pub images: usize,
    /// Values per image.
    pub dim: usize,
    /// The solver.
    pub solver: PcaSolver,
    /// Share of the clean variance along each of the three components.
    pub explained_variance_ratio: Vec<f64>,
    /// Mean distance in PC space between an image and its adversarial version.
    pub mean_clean_to_adversarial: f64,
    /// Mean distance in PC space between two random distinct clean images (as many pairs
    /// as images, seeded).
    pub mean_random_clean_pair: f64,
    /// `mean_clean_to_adversarial / mean_random_clean_pair`.
    pub relative_shift: f64,
    /// Mean L2 distance between an image and its adversarial version in pixel space.
    pub mean_pixel_l2: f64,
    /// Seconds of the PCA fit.
    pub fit_seconds: f64,
}

/// A PCA view: the fit, both projections and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaView {
    /// The PCA fitted on the clean images.
    pub fit: PcaFit,
    /// Clean projections, `[n, 3]` row-major.
    pub clean: Vec<f64>,
    /// Adversarial projections, `[n, 3]` row-major.
    pub adversarial: Vec<f64>,
    /// The numbers.
    pub report: PcaViewReport,
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Fits PCA on `clean`, projects `clean` and `adversarial` (same layout, index-aligned) onto
/// its first three components; `seed` draws the randomised solver's start and the random pairs.
pub fn pca_view(
    clean: &ImageBatch,
    adversarial: &ImageBatch,
    solver: PcaSolver,
    seed: u64,
) -> Result<PcaView> {
    clean.expect_same_layout(adversarial)?;
    let n = clean.len();
    if n < 2 {
        return Err(DefenseError::invalid(
            "images",
            "a PCA view needs at least two images",
        ));
    }
    let d = clean.image_len();
    if d < VIEW_COMPONENTS {
        return Err(DefenseError::invalid(
            "images",
            format!("{d} values per image is fewer than {VIEW_COMPONENTS} components"),
        ));
    }
    let mut rng = SeededRng::seed_from_u64(seed);
    let start = Instant::now();
    let fit = pca(clean.data(), d, VIEW_COMPONENTS, solver, &mut rng)?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let clean_z = fit.project(clean.data())?;
    let adversarial_z = fit.project(adversarial.data())?;
    let q = VIEW_COMPONENTS;
    let row = |z: &[f64], i: usize| z[i * q..(i + 1) * q].to_vec();
    let mean_clean_to_adversarial = (0..n)
        .map(|i| distance(&row(&clean_z, i), &row(&adversarial_z, i)))
        .sum::<f64>()
        / n as f64;
    let mean_random_clean_pair = (0..n)
        .map(|_| {
            let i = rng.random_range(0..n);
            let j = (i + rng.random_range(1..n)) % n;
            distance(&row(&clean_z, i), &row(&clean_z, j))
        })
        .sum::<f64>()
        / n as f64;
    let mean_pixel_l2 = clean
        .data()
        .chunks_exact(d)
        .zip(adversarial.data().chunks_exact(d))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum::<f64>()
        / n as f64;
    let report = PcaViewReport {
        images: n,
        dim: d,
        solver,
        explained_variance_ratio: fit.explained_variance_ratio.clone(),
        mean_clean_to_adversarial,
        mean_random_clean_pair,
        relative_shift: if mean_random_clean_pair > 0.0 {
            mean_clean_to_adversarial / mean_random_clean_pair
        } else {
            0.0
        },
        mean_pixel_l2,
        fit_seconds,
    };
    Ok(PcaView {
        fit,
        clean: clean_z,
        adversarial: adversarial_z,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identical_adversarial_set_does_not_move_and_shapes_are_checked() {
        let data: Vec<f32> = (0..40 * 16)
            .map(|k| ((k * 37) % 101) as f32 / 101.0)
            .collect();
        let clean = ImageBatch::unit(data, [40, 1, 4, 4]).unwrap();
        let view = pca_view(&clean, &clean, PcaSolver::Exact, 0).unwrap();
        assert_eq!(view.report.mean_clean_to_adversarial, 0.0);
        assert!(view.report.mean_random_clean_pair > 0.0);
        assert_eq!(view.clean.len(), 40 * 3);
        let other = ImageBatch::unit(vec![0.0; 40 * 9], [40, 1, 3, 3]).unwrap();
        assert!(pca_view(&clean, &other, PcaSolver::Exact, 0).is_err());
    }
}
