//! Fitting a [`MixtureModel`] on the host, in f64: PCA ([`super::pca`]), k-means++ and Lloyd
//! iterations, then (for a Gaussian mixture) diagonal-covariance EM started from the k-means
//! partition.

use std::time::Instant;

use advclust_core::SeededRng;
use advclust_core::{CoreError, ImageBatch, ParamGuard};
use advclust_metrics::ClusteringScores;
use burn::tensor::Device;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::pca::{PcaPath, pca};
use super::{MixtureConfig, MixtureKind, MixtureModel, MixtureParts};
use crate::error::{ModelError, Result};
use crate::kmeans::kmeans;
use crate::victim::TrainingSummary;

/// Most subspace iterations of the PCA (it stops earlier once the Ritz pairs converge).
pub const PCA_MAX_ITERATIONS: usize = 100;
/// Most Lloyd iterations of k-means (it stops earlier once no assignment changes).
pub const KMEANS_MAX_ITERATIONS: usize = 100;
/// Most EM iterations of the Gaussian mixture.
pub const EM_MAX_ITERATIONS: usize = 100;
/// EM stops when the mean log-likelihood changes by at most this much relative to
/// `max(|log-likelihood|, 1)`.
pub const EM_TOLERANCE: f64 = 1e-6;
/// A GMM cluster whose responsibilities sum to less than this many images is re-seeded.
const EMPTY_CLUSTER_MASS: f64 = 1e-3;

/// What a [`fit_mixture`] run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureFitReport {
    /// Gaussian mixture or soft k-means.
    pub kind: MixtureKind,
    /// Images fitted on.
    pub num_images: usize,
    /// PCA components `q`.
    pub components: usize,
    /// Clusters `k`.
    pub num_clusters: usize,
    /// Seed of the PCA start, k-means++ and re-seeding.
    pub seed: u64,
    /// Subspace iterations of the PCA.
    pub pca_iterations: usize,
    /// Share of the total pixel variance the `q` components keep.
    pub explained_variance_ratio: f64,
    /// Variance along each PCA component, decreasing.
    pub component_variances: Vec<f64>,
    /// Lloyd iterations run.
    pub kmeans_iterations: usize,
    /// Whether Lloyd stopped because no assignment changed.
    pub kmeans_converged: bool,
    /// k-means inertia: sum over images of the squared PCA-space distance to the nearest centre.
    pub inertia: f64,
    /// EM iterations run (0 for soft k-means).
    pub em_iterations: usize,
    /// Whether EM met [`EM_TOLERANCE`] (`None` for soft k-means).
    pub em_converged: Option<bool>,
    /// Final mean log-likelihood per image of the PCA scores, nats (`None` for soft k-means).
    pub log_likelihood: Option<f64>,
    /// Empty clusters re-seeded (k-means and EM together).
    pub reseeded_clusters: usize,
    /// Wall time of the PCA, seconds.
    pub pca_seconds: f64,
    /// Wall time of k-means, seconds.
    pub kmeans_seconds: f64,
    /// Wall time of EM, seconds (0 for soft k-means).
    pub em_seconds: f64,
    /// Wall time of the whole fit, seconds.
    pub fit_seconds: f64,
}

impl MixtureFitReport {
    /// The training summary to save with the model ([`MixtureModel::with_training_summary`]):
    /// `epochs` are the EM (GMM) or Lloyd (soft k-means) iterations, the batch is every image.
    pub fn training_summary(
        &self,
        dataset: &str,
        scores: Option<ClusteringScores>,
    ) -> TrainingSummary {
        TrainingSummary {
            dataset: dataset.to_string(),
            num_images: self.num_images,
            epochs: match self.kind {
                MixtureKind::Gmm => self.em_iterations,
                MixtureKind::SoftKmeans => self.kmeans_iterations,
            },
            batch_size: self.num_images,
            seed: self.seed,
            train_seconds: self.fit_seconds,
            scores,
            command: None,
        }
    }
}

/// Fits a [`MixtureModel`] of `config` on `images` (all of them, full batch) with `seed`;
/// the model is built on `device` and carries no training summary (attach
/// [`MixtureFitReport::training_summary`]).
///
/// PCA by subspace iteration on the covariance, k-means++ then Lloyd in PCA space; for
/// [`MixtureKind::Gmm`] diagonal EM from the k-means partition with a variance floor of
/// `1e-6 + 1e-3 * mean PCA variance`. The same seed gives the same weights.
///
/// # Errors
/// [`ModelError::InvalidConfig`] for a bad config, [`ModelError::InputShape`] for images of
/// another `[C, H, W]`, [`ModelError::FewerImagesThanClusters`], and
/// [`ModelError::NonFinite`] should a fitted parameter come out non-finite.
pub fn fit_mixture(
    images: &ImageBatch,
    config: &MixtureConfig,
    seed: u64,
    device: &Device,
) -> Result<(MixtureModel, MixtureFitReport)> {
    let config = config.check_ref()?;
    if images.image_shape() != config.input_shape {
        return Err(ModelError::InputShape {
            expected: config.input_shape,
            actual: images.image_shape(),
        });
    }
    fit_mixture_flat(images.data(), images.len(), config, seed, device)
}

/// [`fit_mixture`] on `num_images` flattened images (`data` row-major, `C * H * W` values
/// each, any finite values).
///
/// # Errors
/// Those of [`fit_mixture`], plus [`ModelError::NoImages`], a [`CoreError::ShapeMismatch`]
/// when `data` does not hold `num_images` images, and [`ModelError::NonFinite`] for a NaN or
/// infinite input value.
pub fn fit_mixture_flat(
    data: &[f32],
    num_images: usize,
    config: &MixtureConfig,
    seed: u64,
    device: &Device,
) -> Result<(MixtureModel, MixtureFitReport)> {
    let start = Instant::now();
    let config = config.check_ref()?;
    let (n, d, q, k) = (
        num_images,
        config.input_dim(),
        config.components,
        config.num_clusters,
    );
    if n == 0 || data.is_empty() {
        return Err(ModelError::NoImages);
    }
    if data.len() != n * d {
        return Err(CoreError::ShapeMismatch {
            what: "mixture fit images",
            expected: n * d,
            actual: data.len(),
        }
        .into());
    }
    if n < k {
        return Err(ModelError::FewerImagesThanClusters {
            images: n,
            clusters: k,
        });
    }
    check_finite("images", data.iter().map(|&v| f64::from(v)))?;
    let mut rng = SeededRng::seed_from_u64(seed);

    let pca = pca(
        data,
        n,
        d,
        q,
        PCA_MAX_ITERATIONS,
        PcaPath::for_shape(n, d),
        &mut rng,
    );
    let z = project(data, d, &pca.mean, &pca.basis, q);
    let pca_seconds = start.elapsed().as_secs_f64();

    let t = Instant::now();
    let km = kmeans(&z, q, k, KMEANS_MAX_ITERATIONS, &mut rng);
    let kmeans_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (centres, precisions, log_weights, gmm) = match config.kind {
        MixtureKind::SoftKmeans => (km.centres.clone(), vec![2.0; k * q], vec![0.0; k], None),
        MixtureKind::Gmm => {
            let g = em(&z, q, k, &km.labels, EM_MAX_ITERATIONS);
            let precisions = g.variances.iter().map(|v| 1.0 / v).collect();
            (g.means.clone(), precisions, g.log_weights.clone(), Some(g))
        }
    };
    let em_seconds = t.elapsed().as_secs_f64();

    let to_f32 = |what: &'static str, v: &[f64]| -> Result<Vec<f32>> {
        check_finite(what, v.iter().copied())?;
        let out: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        check_finite(what, out.iter().map(|&x| f64::from(x)))?;
        Ok(out)
    };
    let parts = MixtureParts {
        mean: to_f32("PCA mean", &pca.mean)?,
        basis: to_f32("PCA basis", &pca.basis)?,
        centres: to_f32("centres", &centres)?,
        precisions: to_f32("precisions", &precisions)?,
        log_weights: to_f32("log weights", &log_weights)?,
    };
    let model = MixtureModel::from_parts(config, parts, device)?;
    let report = MixtureFitReport {
        kind: config.kind,
        num_images: n,
        components: q,
        num_clusters: k,
        seed,
        pca_iterations: pca.iterations,
        explained_variance_ratio: pca.explained_variance_ratio,
        component_variances: pca.variances.clone(),
        kmeans_iterations: km.iterations,
        kmeans_converged: km.converged,
        inertia: km.inertia,
        em_iterations: gmm.as_ref().map_or(0, |g| g.iterations),
        em_converged: gmm.as_ref().map(|g| g.converged),
        log_likelihood: gmm.as_ref().map(|g| g.log_likelihood),
        reseeded_clusters: km.reseeded + gmm.as_ref().map_or(0, |g| g.reseeded),
        pca_seconds,
        kmeans_seconds,
        em_seconds: if gmm.is_some() { em_seconds } else { 0.0 },
        fit_seconds: start.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

fn check_finite(what: &'static str, values: impl Iterator<Item = f64>) -> Result<()> {
    for (index, value) in values.enumerate() {
        if !value.is_finite() {
            return Err(ModelError::NonFinite { what, index, value });
        }
    }
    Ok(())
}

/// PCA scores `(x - mean) @ basis`, `[n, q]` row-major, skipping zero pixels.
fn project(data: &[f32], d: usize, mean: &[f64], basis: &[f64], q: usize) -> Vec<f64> {
    let mut mean_scores = vec![0.0f64; q];
    for (i, &m) in mean.iter().enumerate() {
        let row = &basis[i * q..(i + 1) * q];
        mean_scores
            .iter_mut()
            .zip(row)
            .for_each(|(s, &b)| *s += m * b);
    }
    let mut z = Vec::with_capacity(data.len() / d * q);
    for image in data.chunks_exact(d) {
        let mut scores: Vec<f64> = mean_scores.iter().map(|s| -s).collect();
        for (i, &x) in image.iter().enumerate().filter(|(_, x)| **x != 0.0) {
            let row = &basis[i * q..(i + 1) * q];
            let x = f64::from(x);
            scores.iter_mut().zip(row).for_each(|(s, &b)| *s += x * b);
        }
        z.extend(scores);
    }
    z
}

/// A fitted diagonal Gaussian mixture.
struct Gmm {
    means: Vec<f64>,
    variances: Vec<f64>,
    log_weights: Vec<f64>,
    log_likelihood: f64,
    iterations: usize,
    converged: bool,
    reseeded: usize,
}

/// Diagonal-covariance EM from the hard partition `labels`.
fn em(z: &[f64], q: usize, k: usize, labels: &[usize], max_iterations: usize) -> Gmm {
    let n = labels.len();
    let mut global_mean = vec![0.0; q];
    z.chunks_exact(q).for_each(|x| {
        global_mean
            .iter_mut()
            .zip(x)
            .for_each(|(m, &v)| *m += v / n as f64)
    });
    let mut global_var = vec![0.0; q];
    z.chunks_exact(q).for_each(|x| {
        for ((g, &v), m) in global_var.iter_mut().zip(x).zip(&global_mean) {
            *g += (v - m) * (v - m) / n as f64;
        }
    });
    let floor = 1e-6 + 1e-3 * global_var.iter().sum::<f64>() / q as f64;

    let mut resp = vec![0.0; n * k];
    labels
        .iter()
        .enumerate()
        .for_each(|(i, &l)| resp[i * k + l] = 1.0);
    let mut point_ll = vec![0.0f64; n];
    let mut g = Gmm {
        means: vec![0.0; k * q],
        variances: vec![0.0; k * q],
        log_weights: vec![0.0; k],
        log_likelihood: f64::NEG_INFINITY,
        iterations: 0,
        converged: false,
        reseeded: 0,
    };
    let mut previous: Option<f64> = None;
    while g.iterations < max_iterations.max(1) {
        g.iterations += 1;
        // M-step (empty clusters re-seeded at the worst-explained images).
        let mut mass: Vec<f64> = (0..k)
            .map(|c| (0..n).map(|i| resp[i * k + c]).sum())
            .collect();
        let mut worst: Vec<usize> = (0..n).collect();
        worst.sort_by(|&a, &b| point_ll[a].total_cmp(&point_ll[b]).then(a.cmp(&b)));
        let mut worst = worst.into_iter();
        for c in 0..k {
            if mass[c] < EMPTY_CLUSTER_MASS {
                let i = worst.next().expect("n >= k images");
                (0..k).for_each(|j| resp[i * k + j] = 0.0);
                resp[i * k + c] = 1.0;
                g.reseeded += 1;
            }
        }
        for c in 0..k {
            mass[c] = (0..n).map(|i| resp[i * k + c]).sum();
            let mean = &mut g.means[c * q..(c + 1) * q];
            mean.iter_mut().for_each(|m| *m = 0.0);
            for (x, r) in z.chunks_exact(q).zip(resp.chunks_exact(k)) {
                mean.iter_mut().zip(x).for_each(|(m, &v)| *m += r[c] * v);
            }
            mean.iter_mut().for_each(|m| *m /= mass[c]);
            let var = &mut g.variances[c * q..(c + 1) * q];
            var.iter_mut().for_each(|v| *v = 0.0);
            for (x, r) in z.chunks_exact(q).zip(resp.chunks_exact(k)) {
                for ((v, &xv), m) in var.iter_mut().zip(x).zip(&g.means[c * q..(c + 1) * q]) {
                    *v += r[c] * (xv - m) * (xv - m);
                }
            }
            var.iter_mut().for_each(|v| *v = *v / mass[c] + floor);
        }
        let total: f64 = mass.iter().sum();
        g.log_weights = mass.iter().map(|m| (m / total).ln()).collect();

        // E-step.
        let consts: Vec<f64> = (0..k)
            .map(|c| {
                g.log_weights[c]
                    - 0.5
                        * g.variances[c * q..(c + 1) * q]
                            .iter()
                            .map(|v| (2.0 * std::f64::consts::PI * v).ln())
                            .sum::<f64>()
            })
            .collect();
        let mut log_prob = vec![0.0; k];
        for (i, x) in z.chunks_exact(q).enumerate() {
            for c in 0..k {
                let mean = &g.means[c * q..(c + 1) * q];
                let var = &g.variances[c * q..(c + 1) * q];
                let maha: f64 = x
                    .iter()
                    .zip(mean)
                    .zip(var)
                    .map(|((xv, m), v)| (xv - m) * (xv - m) / v)
                    .sum();
                log_prob[c] = consts[c] - 0.5 * maha;
            }
            let top = log_prob.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = top + log_prob.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
            point_ll[i] = lse;
            for c in 0..k {
                resp[i * k + c] = (log_prob[c] - lse).exp();
            }
        }
        g.log_likelihood = point_ll.iter().sum::<f64>() / n as f64;
        if let Some(p) = previous
            && (g.log_likelihood - p).abs() <= EM_TOLERANCE * g.log_likelihood.abs().max(1.0)
        {
            g.converged = true;
            break;
        }
        previous = Some(g.log_likelihood);
    }
    g
}
