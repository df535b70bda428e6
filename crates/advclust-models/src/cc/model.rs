//! CC (Contrastive Clustering, Li et al., AAAI 2021): backbone, instance head, cluster head.

use advclust_core::SeededRng;
use advclust_core::{DifferentiableClusterModel, ParamGuard};
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::norm::{
    add_layer, check_input_shape, check_normalization, check_num_clusters, l2_normalize_rows,
    normalize,
};
use crate::resnet::{MlpHead, ResNet, ResNetConfig};
use crate::victim::{ClusterModelExt, TrainingSummary, VictimKind, VictimModel};

/// Everything needed to rebuild a [`CcModel`] (saved as JSON next to its weights).
///
/// The model works in `[0, 1]` pixel space: images are normalised with `mean` / `std`
/// (one value per channel) inside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CcConfig {
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// Number of clusters `k` (output size of the cluster head).
    pub num_clusters: usize,
    /// The ResNet backbone.
    pub backbone: ResNetConfig,
    /// Hidden size of both MLP heads (CC uses the backbone's feature size).
    pub head_hidden: usize,
    /// Size of the L2-normalised instance embedding (128 in CC).
    pub instance_dim: usize,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by inside the model.
    pub std: Vec<f32>,
}

impl CcConfig {
    /// A CC model for `[C, H, W]` images and `k` clusters with a ResNet of stage widths
    /// `widths` (one BasicBlock per stage), heads of the backbone's feature size, a 128-d
    /// instance embedding, and no normalisation (mean 0, std 1).
    pub fn new(input_shape: [usize; 3], num_clusters: usize, widths: &[usize]) -> Self {
        let backbone = ResNetConfig::new(input_shape[0], widths, 1);
        CcConfig {
            input_shape,
            num_clusters,
            head_hidden: backbone.feature_dim(),
            backbone,
            instance_dim: 128,
            mean: vec![0.0; input_shape[0]],
            std: vec![1.0; input_shape[0]],
        }
    }

    /// Replaces the backbone (and sets the heads' hidden size to its feature size).
    pub fn with_backbone(mut self, backbone: ResNetConfig) -> Self {
        self.head_hidden = backbone.feature_dim();
        self.backbone = backbone;
        self
    }

    /// Sets the per-channel normalisation applied inside the model.
    pub fn with_normalization(mut self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        self.mean = mean;
        self.std = std;
        self
    }

    /// Validates the architecture and counts its parameters (weights and biases, BatchNorm
    /// statistics included), with checked arithmetic and every size bounded, before anything
    /// is allocated.
    pub fn parameter_count(&self) -> Result<u64> {
        check_input_shape(self.input_shape)?;
        check_num_clusters(self.num_clusters)?;
        if self.head_hidden == 0 || self.instance_dim == 0 {
            return Err(ModelError::invalid(
                "head_hidden / instance_dim",
                "head sizes must be at least 1",
            ));
        }
        check_normalization(&self.mean, &self.std, self.input_shape[0])?;
        let mut total = self.backbone.parameter_count()?;
        let f = self.backbone.feature_dim();
        add_layer(&mut total, "head_hidden", f, self.head_hidden)?;
        add_layer(
            &mut total,
            "instance_dim",
            self.head_hidden,
            self.instance_dim,
        )?;
        add_layer(&mut total, "head_hidden", f, self.head_hidden)?;
        add_layer(
            &mut total,
            "num_clusters",
            self.head_hidden,
            self.num_clusters,
        )?;
        self.backbone.validate(self.input_shape)?;
        Ok(total)
    }
}

crate::error::validated_architecture!(CcConfig);

/// The outputs of one CC forward pass.
#[derive(Debug, Clone)]
pub struct CcOutput {
    /// L2-normalised instance embeddings `[N, instance_dim]`.
    pub instance: Tensor<2>,
    /// Soft cluster assignments `[N, k]` (softmax of the cluster head).
    pub clusters: Tensor<2>,
}

/// A Contrastive Clustering model: ResNet backbone, instance head and cluster head.
///
/// Images go in as `[N, C, H, W]` in `[0, 1]`; the per-channel normalisation of the
/// [`CcConfig`] is applied inside. The cluster head's softmax is the soft membership, and its
/// argmax the predicted cluster. Implements [`DifferentiableClusterModel`], so
/// [`advclust_core::ModelOracle`] makes it a black-box oracle.
#[derive(Module, Debug)]
pub struct CcModel {
    backbone: ResNet,
    instance_head: MlpHead,
    cluster_head: MlpHead,
    #[module(skip)]
    config: CcConfig,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

impl CcModel {
    /// A freshly initialised model (weights drawn from a `SeededRng` seeded with `seed`, so the
    /// same seed gives the same model on every backend).
    pub fn new(config: &CcConfig, seed: u64, device: &Device) -> Result<Self> {
        let config = config.check_ref()?.clone();
        let mut rng = SeededRng::seed_from_u64(seed);
        let feat = config.backbone.feature_dim();
        let backbone = config.backbone.init(&mut rng, device);
        let instance_head = MlpHead::new(
            feat,
            config.head_hidden,
            config.instance_dim,
            &mut rng,
            device,
        );
        let cluster_head = MlpHead::new(
            feat,
            config.head_hidden,
            config.num_clusters,
            &mut rng,
            device,
        );
        Ok(CcModel {
            backbone,
            instance_head,
            cluster_head,
            config,
            training: None,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &CcConfig {
        &self.config
    }

    /// How the model was trained, if known.
    pub fn training_summary(&self) -> Option<&TrainingSummary> {
        self.training.as_ref()
    }

    /// Attaches a training summary (saved with the model).
    pub fn with_training_summary(mut self, summary: TrainingSummary) -> Self {
        self.training = Some(summary);
        self
    }

    fn normalize(&self, images: Tensor<4>) -> Tensor<4> {
        normalize(images, &self.config.mean, &self.config.std)
    }

    /// Backbone features `[N, feature_dim]` of `[0, 1]` images.
    ///
    /// Panics on a wrong input shape (use [`ClusterModelExt::check_input`] first).
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let dims = images.dims();
        assert!(
            self.check_input(dims).is_ok(),
            "CcModel takes [N, {:?}] images, got {dims:?}",
            self.config.input_shape
        );
        self.backbone.forward(self.normalize(images))
    }

    /// Both heads: L2-normalised instance embeddings and soft cluster assignments.
    ///
    /// Panics on a wrong input shape (use [`CcModel::try_forward`] for a typed error).
    pub fn forward(&self, images: Tensor<4>) -> CcOutput {
        let h = self.features(images);
        CcOutput {
            instance: l2_normalize_rows(self.instance_head.forward(h.clone())),
            clusters: softmax(self.cluster_head.forward(h), 1),
        }
    }

    /// [`CcModel::forward`] with a typed error for a wrong input shape.
    pub fn try_forward(&self, images: Tensor<4>) -> Result<CcOutput> {
        self.check_input(images.dims())?;
        Ok(self.forward(images))
    }

    /// Raw cluster-head logits `[N, k]`.
    pub fn cluster_logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.cluster_head.forward(self.features(images))
    }

    /// Soft memberships `[N, k]` with a typed error for a wrong input shape.
    pub fn try_memberships(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        self.check_input(images.dims())?;
        Ok(softmax(self.cluster_logits(images), 1))
    }
}

impl VictimModel for CcModel {
    const KIND: VictimKind = VictimKind::Cc;
    type Config = CcConfig;

    fn victim_config(&self) -> &CcConfig {
        &self.config
    }

    fn from_config(config: &CcConfig, device: &Device) -> Result<Self> {
        CcModel::new(config, 0, device)
    }

    fn channel_std(&self) -> &[f32] {
        &self.config.std
    }

    fn training(&self) -> Option<&TrainingSummary> {
        self.training.as_ref()
    }

    fn with_training(mut self, training: Option<TrainingSummary>) -> Self {
        self.training = training;
        self
    }
}

impl DifferentiableClusterModel for CcModel {
    fn num_clusters(&self) -> usize {
        self.config.num_clusters
    }

    fn input_shape(&self) -> [usize; 3] {
        self.config.input_shape
    }

    /// Softmax of the cluster head. Panics on a wrong input shape (the oracle checks first).
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.cluster_logits(images), 1)
    }

    /// phi is the memberships themselves: one pass.
    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let m = self.memberships(images);
        (m.clone(), m)
    }
}
