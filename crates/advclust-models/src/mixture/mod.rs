//! Classical soft-clustering victims on a PCA projection: a diagonal-covariance Gaussian
//! mixture ([`MixtureKind::Gmm`]) and soft k-means ([`MixtureKind::SoftKmeans`]), as burn
//! modules whose memberships are differentiable in the input, fitted on the host
//! ([`fit_mixture`]).
//!
//! With `z = (x_flat - mean) @ basis` (the `q` PCA scores of an image), the membership of
//! cluster `k` is the softmax over clusters of
//!
//! ```text
//! log w_k + 0.5 * sum_q log p_kq - 0.5 * sum_q p_kq * (z_q - mu_kq)^2
//! ```
//!
//! (the Gaussian posterior with diagonal precisions `p_kq`; the `2 pi` term cancels). Soft
//! k-means is the same formula with `log w_k = 0` and `p_kq = 2`, so its logits are
//! `-||z - c_k||^2` up to a constant.
//!
//! ```
//! use advclust_core::ImageBatch;
//! use advclust_models::{ClusterModelExt, MixtureConfig, MixtureKind, fit_mixture};
//! use burn::tensor::Device;
//!
//! let device = Device::flex();
//! // Two kinds of 1 x 4 x 4 images: dark and bright.
//! let data: Vec<f32> = (0..20).flat_map(|i| vec![if i % 2 == 0 { 0.1 } else { 0.9 }; 16]).collect();
//! let images = ImageBatch::unit(data, [20, 1, 4, 4])?;
//! let config = MixtureConfig::new(MixtureKind::Gmm, [1, 4, 4], 2, 2);
//! let (model, report) = fit_mixture(&images, &config, 0, &device)?;
//! let labels: Vec<usize> = (0..20).map(|i| i % 2).collect();
//! assert!(model.evaluate(&images, &labels, &device)?.nmi > 0.99);
//! assert!(report.explained_variance_ratio > 0.99);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fit;
mod pca;
#[cfg(test)]
mod tests;

use advclust_core::{DifferentiableClusterModel, ParamGuard};
use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::norm::{add_layer, check_input_shape, check_num_clusters};
use crate::victim::{ClusterModelExt, TrainingSummary, VictimKind, VictimModel};

pub use fit::{
    EM_MAX_ITERATIONS, EM_TOLERANCE, KMEANS_MAX_ITERATIONS, MixtureFitReport, PCA_MAX_ITERATIONS,
    fit_mixture, fit_mixture_flat,
};

/// Which classical model a [`MixtureModel`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MixtureKind {
    /// Gaussian mixture with diagonal covariances, fitted by EM from a k-means start.
    Gmm,
    /// Soft k-means: softmax of the negative squared distances to the k-means centroids.
    SoftKmeans,
}

impl MixtureKind {
    /// The tag (`gmm`, `soft-kmeans`).
    pub fn name(self) -> &'static str {
        match self {
            MixtureKind::Gmm => "gmm",
            MixtureKind::SoftKmeans => "soft-kmeans",
        }
    }
}

impl std::fmt::Display for MixtureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Everything needed to rebuild a [`MixtureModel`] (saved as JSON next to its weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureConfig {
    /// Gaussian mixture or soft k-means.
    pub kind: MixtureKind,
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// Number of clusters `k` (at least 2).
    pub num_clusters: usize,
    /// Number of PCA components `q` (1 to `C * H * W`).
    pub components: usize,
}

impl MixtureConfig {
    /// A `kind` model of `[C, H, W]` images with `num_clusters` clusters on `components` PCA
    /// components (checked when a model is built or fitted).
    pub fn new(
        kind: MixtureKind,
        input_shape: [usize; 3],
        num_clusters: usize,
        components: usize,
    ) -> Self {
        MixtureConfig {
            kind,
            input_shape,
            num_clusters,
            components,
        }
    }

    /// `C * H * W`, the length of a flattened image.
    pub fn input_dim(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Validates the architecture and counts its parameters (weights and biases, BatchNorm
    /// statistics included), with checked arithmetic and every size bounded, before anything
    /// is allocated.
    pub fn parameter_count(&self) -> Result<u64> {
        check_input_shape(self.input_shape)?;
        check_num_clusters(self.num_clusters)?;
        let d = self.input_dim();
        if self.components == 0 || self.components > d {
            return Err(ModelError::invalid(
                "components",
                format!(
                    "need 1 to C * H * W = {d} PCA components, got {}",
                    self.components
                ),
            ));
        }
        // PCA basis d x q, centres and precisions k x q (plus the means and weights).
        let mut total = 0u64;
        add_layer(&mut total, "components", d, self.components)?;
        add_layer(
            &mut total,
            "num_clusters",
            2 * self.components,
            self.num_clusters,
        )?;
        Ok(total)
    }
}

crate::error::validated_architecture!(MixtureConfig);

/// A PCA projection followed by a Gaussian mixture (or soft k-means) posterior.
///
/// Images go in as `[N, C, H, W]` in `[0, 1]`; no normalisation besides the PCA centring.
/// Every parameter is a [`Param`] (saved and loaded with the weights); an attack can
/// backpropagate through [`DifferentiableClusterModel::memberships`]. Fit one with
/// [`fit_mixture`] or build one from known values with [`MixtureModel::from_parts`].
#[derive(Module, Debug)]
pub struct MixtureModel {
    /// PCA mean `[d]`.
    mean: Param<Tensor<1>>,
    /// PCA basis `[d, q]` (orthonormal columns).
    basis: Param<Tensor<2>>,
    /// Cluster centres `[k, q]` in PCA space.
    centres: Param<Tensor<2>>,
    /// Diagonal precisions `[k, q]` (2 for soft k-means).
    precisions: Param<Tensor<2>>,
    /// Log mixture weights `[k]` (0 for soft k-means).
    log_weights: Param<Tensor<1>>,
    #[module(skip)]
    config: MixtureConfig,
    #[module(skip)]
    channel_std: Vec<f32>,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

/// Host values of a [`MixtureModel`]'s parameters, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureParts {
    /// PCA mean, `d` values.
    pub mean: Vec<f32>,
    /// PCA basis `[d, q]`.
    pub basis: Vec<f32>,
    /// Centres `[k, q]`.
    pub centres: Vec<f32>,
    /// Diagonal precisions `[k, q]`, positive.
    pub precisions: Vec<f32>,
    /// Log mixture weights, `k` values.
    pub log_weights: Vec<f32>,
}

impl MixtureParts {
    fn check(&self, config: &MixtureConfig) -> Result<()> {
        let (d, q, k) = (config.input_dim(), config.components, config.num_clusters);
        let fields: [(&'static str, &[f32], usize); 5] = [
            ("mean", &self.mean, d),
            ("basis", &self.basis, d * q),
            ("centres", &self.centres, k * q),
            ("precisions", &self.precisions, k * q),
            ("log_weights", &self.log_weights, k),
        ];
        for (what, values, len) in fields {
            if values.len() != len {
                return Err(ModelError::invalid(
                    "mixture parameters",
                    format!("{what} needs {len} values, got {}", values.len()),
                ));
            }
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFinite {
                    what,
                    index,
                    value: f64::from(values[index]),
                });
            }
        }
        if let Some(index) = self.precisions.iter().position(|&p| p <= 0.0) {
            return Err(ModelError::invalid(
                "precisions",
                format!(
                    "precisions must be positive, got {} at index {index}",
                    self.precisions[index]
                ),
            ));
        }
        Ok(())
    }
}

impl MixtureModel {
    /// A model of `config` with the given parameter values (checked: lengths, finiteness,
    /// positive precisions), on `device`.
    pub fn from_parts(
        config: &MixtureConfig,
        parts: MixtureParts,
        device: &Device,
    ) -> Result<Self> {
        let config = config.check_ref()?.clone();
        parts.check(&config)?;
        let (d, q, k) = (config.input_dim(), config.components, config.num_clusters);
        let p1 = |v: Vec<f32>, n: usize| Param::from_data(TensorData::new(v, [n]), device);
        let p2 =
            |v: Vec<f32>, shape: [usize; 2]| Param::from_data(TensorData::new(v, shape), device);
        Ok(MixtureModel {
            mean: p1(parts.mean, d),
            basis: p2(parts.basis, [d, q]),
            centres: p2(parts.centres, [k, q]),
            precisions: p2(parts.precisions, [k, q]),
            log_weights: p1(parts.log_weights, k),
            channel_std: vec![1.0; config.input_shape[0]],
            config,
            training: None,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &MixtureConfig {
        &self.config
    }

    /// The parameter values, read back to the host.
    pub fn parts(&self) -> Result<MixtureParts> {
        let host = |t: TensorData| advclust_core::tensor_to_vec(t).map_err(ModelError::from);
        Ok(MixtureParts {
            mean: host(self.mean.val().into_data())?,
            basis: host(self.basis.val().into_data())?,
            centres: host(self.centres.val().into_data())?,
            precisions: host(self.precisions.val().into_data())?,
            log_weights: host(self.log_weights.val().into_data())?,
        })
    }

    /// Attaches a training summary (saved with the model).
    pub fn with_training_summary(mut self, summary: TrainingSummary) -> Self {
        self.training = Some(summary);
        self
    }

    /// PCA scores `z = (x_flat - mean) @ basis`, `[N, q]`.
    ///
    /// # Panics
    /// On images that are not `[N, C, H, W]` of the config (use
    /// [`ClusterModelExt::check_input`] first, or [`MixtureModel::try_memberships`]).
    pub fn project(&self, images: Tensor<4>) -> Tensor<2> {
        let dims = images.dims();
        assert!(
            self.check_input(dims).is_ok(),
            "MixtureModel takes [N, {:?}] images, got {dims:?}",
            self.config.input_shape
        );
        let x = images.reshape([dims[0], self.config.input_dim()]);
        let mean = self.mean.val().unsqueeze_dim::<2>(0);
        (x - mean).matmul(self.basis.val())
    }

    /// Cluster logits `[N, k]`: `log w_k + 0.5 sum log p_k - 0.5 sum p_k (z - mu_k)^2`.
    ///
    /// # Panics
    /// On a wrong input shape, as [`MixtureModel::project`].
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let z = self.project(images);
        let n = z.dims()[0];
        let k = self.config.num_clusters;
        let precisions = self.precisions.val();
        let diff = z.unsqueeze_dim::<3>(1) - self.centres.val().unsqueeze_dim::<3>(0);
        let mahalanobis = (diff.square() * precisions.clone().unsqueeze_dim::<3>(0))
            .sum_dim(2)
            .reshape([n, k]);
        let log_det = precisions.log().sum_dim(1).reshape([1, k]);
        let log_weights = self.log_weights.val().unsqueeze_dim::<2>(0);
        log_weights + (log_det - mahalanobis).mul_scalar(0.5)
    }

    /// Soft memberships `[N, k]` with a typed error for a wrong input shape.
    pub fn try_memberships(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        self.check_input(images.dims())?;
        Ok(softmax(self.logits(images), 1))
    }
}

impl VictimModel for MixtureModel {
    const KIND: VictimKind = VictimKind::Mixture;
    type Config = MixtureConfig;

    fn victim_config(&self) -> &MixtureConfig {
        &self.config
    }

    /// Zero centres, unit precisions, uniform weights, a zero basis (the loader fills them).
    fn from_config(config: &MixtureConfig, device: &Device) -> Result<Self> {
        let config = config.check_ref()?;
        let (d, q, k) = (config.input_dim(), config.components, config.num_clusters);
        let parts = MixtureParts {
            mean: vec![0.0; d],
            basis: vec![0.0; d * q],
            centres: vec![0.0; k * q],
            precisions: vec![1.0; k * q],
            log_weights: vec![0.0; k],
        };
        MixtureModel::from_parts(config, parts, device)
    }

    fn channel_std(&self) -> &[f32] {
        &self.channel_std
    }

    fn training(&self) -> Option<&TrainingSummary> {
        self.training.as_ref()
    }

    fn with_training(mut self, training: Option<TrainingSummary>) -> Self {
        self.training = training;
        self
    }
}

impl DifferentiableClusterModel for MixtureModel {
    fn num_clusters(&self) -> usize {
        self.config.num_clusters
    }

    fn input_shape(&self) -> [usize; 3] {
        self.config.input_shape
    }

    /// Softmax of [`MixtureModel::logits`]. Panics on a wrong input shape (the oracle checks
    /// first).
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.logits(images), 1)
    }

    /// phi is the memberships themselves: one pass.
    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let m = self.memberships(images);
        (m.clone(), m)
    }
}
