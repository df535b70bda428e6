//! SSD (Sehwag, Chiang, Mittal, ICLR 2021): an outlier detector that scores a sample by its
//! squared Mahalanobis distance to the clean training features, as the public SSD code does:
//! features L2-normalised row by row, standardised with the training statistics (NumPy's
//! `std`, `ddof = 0`), then `(f - mu)^T pinv(Sigma) (f - mu)` with `Sigma` the biased
//! covariance of the training features (the pseudo-inverse handles a singular covariance, e.g.
//! fewer training samples than dimensions). With `k > 1` clusters the training features are
//! clustered by k-means and a sample's score is its distance to the nearest cluster.
//!
//! ```
//! use advclust_core::ParamGuard;
//! use advclust_defense::{FeatureMatrix, SsdConfig, SsdDetector};
//! // Clean features on a noisy circle; an outlier far from its direction pattern.
//! let rows: Vec<f64> = (0..64)
//!     .flat_map(|i| {
//!         let t = i as f64 * 0.1;
//!         [t.cos(), t.sin(), 0.1 * (3.0 * t).sin()]
//!     })
//!     .collect();
//! let train = FeatureMatrix::new(rows, 64, 3).unwrap();
//! let ssd = SsdDetector::fit(&train, &SsdConfig::new(1).check().unwrap()).unwrap();
//! let candidates = FeatureMatrix::new(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 2, 3).unwrap();
//! let scores = ssd.score(&candidates).unwrap();
//! assert!(scores[1] > scores[0]);
//! ```

use std::path::Path;

use advclust_core::{ParamGuard, SeededRng};
use faer::Mat;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{DefenseError, Result};
use crate::features::FeatureMatrix;
use crate::linalg::PinvForm;

/// SSD's additive guard in the L2 normalisation and the standardisation.
pub const SSD_EPSILON: f64 = 1e-10;
/// The `format` tag of a saved detector.
pub const SSD_FORMAT: &str = "advclust-ssd";
/// The version of the saved detector.
pub const SSD_VERSION: u32 = 1;
/// Largest saved detector read (bytes).
pub const MAX_DETECTOR_BYTES: u64 = 512 * 1024 * 1024;
/// Largest feature dimension a detector is fitted on or loaded with.
pub const MAX_FEATURE_DIM: usize = 8192;

/// The checked parameters of an SSD fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdSettings {
    /// Clusters of the training features (`k = 1` is SSD's and the paper's choice).
    pub clusters: usize,
    /// Most Lloyd iterations of the k-means (`niter = 100` in SSD).
    pub kmeans_iterations: usize,
    /// Seed of the k-means seeding.
    pub seed: u64,
}

/// Parameters of an SSD fit, unchecked; [`ParamGuard::check`] validates them.
#[derive(Debug, Clone, PartialEq)]
pub struct SsdConfig(SsdSettings);

impl SsdConfig {
    /// SSD with `clusters` clusters, 100 k-means iterations, seed 0.
    pub fn new(clusters: usize) -> Self {
        SsdConfig(SsdSettings {
            clusters,
            kmeans_iterations: 100,
            seed: 0,
        })
    }

    /// Sets the most k-means iterations.
    pub fn kmeans_iterations(mut self, iterations: usize) -> Self {
        self.0.kmeans_iterations = iterations;
        self
    }

    /// Sets the seed of the k-means.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
}

impl ParamGuard for SsdConfig {
    type Checked = SsdSettings;
    type Error = DefenseError;

    fn check_ref(&self) -> Result<&SsdSettings> {
        if self.0.clusters == 0 {
            return Err(DefenseError::invalid("clusters", "must be at least 1"));
        }
        if self.0.kmeans_iterations == 0 {
            return Err(DefenseError::invalid(
                "kmeans_iterations",
                "must be at least 1",
            ));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<SsdSettings> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// One Gaussian of the detector: a mean and the pseudo-inverse of its covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdCluster {
    /// Training features in it.
    pub size: usize,
    /// Mean, in standardised feature space.
    pub mean: Vec<f64>,
    /// `x -> x^T pinv(Sigma) x` of its biased covariance.
    pub precision: PinvForm,
}

/// A fitted SSD detector (saved as JSON by [`SsdDetector::save`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdDetector {
    /// [`SSD_FORMAT`].
    pub format: String,
    /// [`SSD_VERSION`].
    pub version: u32,
    /// Feature dimension.
    pub dim: usize,
    /// Training-feature mean after L2 normalisation (the standardisation's centre).
    pub feature_mean: Vec<f64>,
    /// Training-feature standard deviation after L2 normalisation (`ddof = 0`).
    pub feature_std: Vec<f64>,
    /// The clusters (at least one).
    pub clusters: Vec<SsdCluster>,
    /// Clusters of the k-means left out because they held fewer than two training features
    /// (a zero covariance would score every sample 0 and make the minimum meaningless).
    pub dropped_clusters: usize,
    /// The settings it was fitted with.
    pub settings: SsdSettings,
}

fn l2_normalize(features: &FeatureMatrix) -> Vec<f64> {
    let mut out = features.values.clone();
    for row in out.chunks_exact_mut(features.dim) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm + SSD_EPSILON);
    }
    out
}

/// Column means and population standard deviations of row-major `[n, d]` values.
fn column_stats(values: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (values.len() / d) as f64;
    let mut mean = vec![0.0; d];
    values
        .chunks_exact(d)
        .for_each(|r| mean.iter_mut().zip(r).for_each(|(m, v)| *m += v));
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; d];
    values.chunks_exact(d).for_each(|r| {
        for ((s, v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    });
    (mean, var.into_iter().map(|s| (s / n).sqrt()).collect())
}

impl SsdDetector {
    /// Fits the detector on clean training features (finite, at least `clusters` rows; a
    /// single row is enough for one cluster but gives a zero covariance).
    pub fn fit(train: &FeatureMatrix, settings: &SsdSettings) -> Result<Self> {
        let (n, d) = (train.rows, train.dim);
        if n == 0 {
            return Err(DefenseError::Empty("the training features"));
        }
        if d > MAX_FEATURE_DIM {
            return Err(DefenseError::invalid(
                "features",
                format!("dimension {d} is above the limit of {MAX_FEATURE_DIM}"),
            ));
        }
        if settings.clusters > n {
            return Err(DefenseError::invalid(
                "clusters",
                format!("{} clusters of {n} training features", settings.clusters),
            ));
        }
        let normalized = l2_normalize(train);
        let (feature_mean, feature_std) = column_stats(&normalized, d);
        let standardized = standardize(&normalized, &feature_mean, &feature_std);

        let labels = if settings.clusters == 1 {
            vec![0; n]
        } else {
            let mut rng = SeededRng::seed_from_u64(settings.seed);
            advclust_models::kmeans::kmeans(
                &standardized,
                d,
                settings.clusters,
                settings.kmeans_iterations,
                &mut rng,
            )
            .labels
        };
        let mut clusters = Vec::new();
        let mut dropped_clusters = 0;
        for c in 0..settings.clusters {
            let members: Vec<usize> = (0..n).filter(|&i| labels[i] == c).collect();
            if members.len() < 2 && settings.clusters > 1 {
                dropped_clusters += 1;
                continue;
            }
            clusters.push(fit_cluster(&standardized, d, &members)?);
        }
        Ok(SsdDetector {
            format: SSD_FORMAT.into(),
            version: SSD_VERSION,
            dim: d,
            feature_mean,
            feature_std,
            clusters,
            dropped_clusters,
            settings: settings.clone(),
        })
    }

    /// Scores of the candidate features (higher = more anomalous): the smallest squared
    /// Mahalanobis distance to a cluster.
    pub fn score(&self, candidates: &FeatureMatrix) -> Result<Vec<f64>> {
        if candidates.dim != self.dim {
            return Err(DefenseError::ShapeMismatch(format!(
                "the detector was fitted on {}-dimensional features, these have {}",
                self.dim, candidates.dim
            )));
        }
        let standardized = standardize(
            &l2_normalize(candidates),
            &self.feature_mean,
            &self.feature_std,
        );
        let n = candidates.rows;
        let mut best = vec![f64::INFINITY; n];
        for cluster in &self.clusters {
            let centred = Mat::from_fn(n, self.dim, |i, j| {
                standardized[i * self.dim + j] - cluster.mean[j]
            });
            for (b, s) in best.iter_mut().zip(cluster.precision.quadratic(&centred)) {
                *b = b.min(s);
            }
        }
        Ok(best)
    }

    /// Saves the detector as JSON at `path`, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_vec(self).map_err(|e| DefenseError::BadDetector {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        advclust_core::write_atomic(path, &json).map_err(|source| DefenseError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Loads a detector saved by [`SsdDetector::save`], bounded in size and checked for
    /// consistency (dimensions, finite values, nonzero eigenvalues) before use.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let bytes = advclust_core::read_bounded(path, MAX_DETECTOR_BYTES).map_err(|source| {
            DefenseError::Io {
                path: origin.clone(),
                source,
            }
        })?;
        Self::from_json(&bytes, &origin)
    }

    /// Parses and validates a saved detector from `bytes` (`origin` names it in errors).
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |message: String| DefenseError::BadDetector {
            origin: origin.to_string(),
            message,
        };
        let detector: SsdDetector =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if detector.format != SSD_FORMAT || detector.version != SSD_VERSION {
            return Err(bad(format!(
                "format {:?} version {} (expected {SSD_FORMAT:?} version {SSD_VERSION})",
                detector.format, detector.version
            )));
        }
        let d = detector.dim;
        if d == 0 || d > MAX_FEATURE_DIM {
            return Err(bad(format!(
                "dimension {d} is not in 1..={MAX_FEATURE_DIM}"
            )));
        }
        if detector.feature_mean.len() != d || detector.feature_std.len() != d {
            return Err(bad("the standardisation does not have the dimension".into()));
        }
        if detector.clusters.is_empty() {
            return Err(bad("no cluster".into()));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&detector.feature_mean) || !finite(&detector.feature_std) {
            return Err(bad("a non-finite standardisation value".into()));
        }
        for (c, cluster) in detector.clusters.iter().enumerate() {
            let p = &cluster.precision;
            let r = p.values.len();
            if cluster.mean.len() != d
                || p.dim != d
                || r > d
                || p.vectors.len() != d * r
                || !finite(&cluster.mean)
                || !finite(&p.vectors)
                || !p.values.iter().all(|v| v.is_finite() && *v != 0.0)
            {
                return Err(bad(format!("cluster {c} is inconsistent or not finite")));
            }
        }
        Ok(detector)
    }
}

fn standardize(values: &[f64], mean: &[f64], std: &[f64]) -> Vec<f64> {
    let d = mean.len();
    values
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .zip(mean)
                .zip(std)
                .map(|((v, m), s)| (v - m) / (s + SSD_EPSILON))
        })
        .collect()
}

/// Mean and pseudo-inverse covariance (biased, divided by the member count) of `members`.
fn fit_cluster(values: &[f64], d: usize, members: &[usize]) -> Result<SsdCluster> {
    let m = members.len() as f64;
    let mut mean = vec![0.0; d];
    for &i in members {
        mean.iter_mut()
            .zip(&values[i * d..(i + 1) * d])
            .for_each(|(a, v)| *a += v);
    }
    mean.iter_mut().for_each(|a| *a /= m);
    let centred = Mat::from_fn(members.len(), d, |r, j| {
        values[members[r] * d + j] - mean[j]
    });
    let cov = centred.transpose() * centred.as_ref();
    let cov_rows: Vec<f64> = (0..d * d).map(|k| cov[(k / d, k % d)] / m).collect();
    Ok(SsdCluster {
        size: members.len(),
        mean,
        precision: PinvForm::of_symmetric(&cov_rows, d)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: usize, d: usize, seed: u64) -> FeatureMatrix {
        let mut rng = SeededRng::seed_from_u64(seed);
        let v = advclust_core::standard_normal(&mut rng, n * d);
        FeatureMatrix::new(v.into_iter().map(f64::from).collect(), n, d).unwrap()
    }

    #[test]
    fn one_cluster_score_is_the_squared_mahalanobis_distance() {
        let train = cloud(500, 4, 0);
        let ssd = SsdDetector::fit(&train, &SsdConfig::new(1).check().unwrap()).unwrap();
        // Over the training features, the mean squared Mahalanobis distance with the biased
        // covariance is trace(pinv(S) S), the rank: 4 (L2 normalisation and standardisation
        // keep the rank of a 4-D Gaussian cloud).
        let scores = ssd.score(&train).unwrap();
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        assert!((mean - 4.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn fewer_samples_than_dimensions_is_handled_by_the_pseudo_inverse() {
        let train = cloud(5, 16, 1);
        let ssd = SsdDetector::fit(&train, &SsdConfig::new(1).check().unwrap()).unwrap();
        assert!(ssd.clusters[0].precision.values.len() <= 4);
        assert!(
            ssd.score(&cloud(3, 16, 2))
                .unwrap()
                .iter()
                .all(|s| s.is_finite())
        );
    }

    #[test]
    fn k_clusters_take_the_nearest_and_bad_parameters_are_typed() {
        let train = cloud(300, 3, 3);
        let settings = SsdConfig::new(10).seed(4).check().unwrap();
        let ssd = SsdDetector::fit(&train, &settings).unwrap();
        assert_eq!(ssd.clusters.len() + ssd.dropped_clusters, 10);
        assert_eq!(ssd.score(&cloud(7, 3, 5)).unwrap().len(), 7);
        assert!(SsdConfig::new(0).check().is_err());
        let too_many = SsdConfig::new(301).check().unwrap();
        assert!(matches!(
            SsdDetector::fit(&train, &too_many),
            Err(DefenseError::InvalidParameter {
                name: "clusters",
                ..
            })
        ));
        assert!(matches!(
            ssd.score(&cloud(2, 4, 0)),
            Err(DefenseError::ShapeMismatch(_))
        ));
        assert!(FeatureMatrix::new(vec![f64::NAN, 0.0], 1, 2).is_err());
    }

    #[test]
    fn save_and_load_round_trip_and_bad_files_are_refused() {
        let train = cloud(100, 3, 6);
        let ssd = SsdDetector::fit(&train, &SsdConfig::new(2).check().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("advclust-ssd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ssd.json");
        ssd.save(&path).unwrap();
        assert_eq!(SsdDetector::load(&path).unwrap(), ssd);
        let mut broken = ssd.clone();
        broken.clusters[0].mean.pop();
        let json = serde_json::to_vec(&broken).unwrap();
        assert!(matches!(
            SsdDetector::from_json(&json, "x"),
            Err(DefenseError::BadDetector { .. })
        ));
        assert!(SsdDetector::from_json(b"{", "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
