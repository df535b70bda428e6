//! SPICE (Niu, Shan, Wang, 2021), "Semantic Pseudo-labeling for Image Clustering": a backbone
//! from the contrastive pretext, frozen, under `num_heads` MLP cluster heads trained on
//! prototype pseudo-labels (SPICE-Self: each cluster's prototype is the mean embedding of the
//! images its head scores highest; the images nearest each prototype become that cluster's
//! labelled examples); then the *reliable* images (confident, and agreeing with almost all of
//! their embedding neighbours) label a semi-supervised FixMatch run of the whole network with
//! the selected head (SPICE-Semi).
//!
//! Memberships are the softmax of the selected head; the attack's phi is its raw logits (the
//! authors attack SPICE-Semi's logits).

pub mod prototype;
pub mod reliable;
pub mod semi;
pub mod train;

use advclust_core::SeededRng;
use advclust_core::{DifferentiableClusterModel, ParamGuard};
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::norm::{
    add_layer, check_input_shape, check_normalization, check_num_clusters, normalize,
};
use crate::resnet::{MlpHead, ResNet, ResNetConfig};
use crate::scan::MAX_HEADS;
use crate::victim::{TrainingSummary, VictimKind, VictimModel};

pub use train::{SpiceTrainConfig, SpiceTrainReport, finetune_spice, train_spice};

/// Which SPICE stage produced the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpiceStage {
    /// SPICE-Self: frozen backbone, heads trained on prototype pseudo-labels.
    #[serde(rename = "self")]
    SelfTrained,
    /// SPICE-Semi: the whole network trained by FixMatch on the reliable images.
    Semi,
}

/// The SPICE model's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpiceConfig {
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// Number of clusters `k` of every head.
    pub num_clusters: usize,
    /// The ResNet backbone (the pretext's).
    pub backbone: ResNetConfig,
    /// Width of each head's hidden layer (SPICE: the feature width).
    pub hidden: usize,
    /// MLP cluster heads (`features -> hidden -> k`).
    pub num_heads: usize,
    /// The head whose softmax is the memberships.
    pub selected_head: usize,
    /// The stage that produced the weights.
    pub stage: SpiceStage,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by inside the model.
    pub std: Vec<f32>,
}

impl SpiceConfig {
    /// Validates the architecture and counts its parameters (weights and biases, BatchNorm
    /// statistics included), with checked arithmetic and every size bounded, before anything
    /// is allocated.
    pub fn parameter_count(&self) -> Result<u64> {
        check_input_shape(self.input_shape)?;
        check_num_clusters(self.num_clusters)?;
        if !(1..=MAX_HEADS).contains(&self.num_heads) {
            return Err(ModelError::invalid(
                "num_heads",
                format!("must be in 1..={MAX_HEADS}, got {}", self.num_heads),
            ));
        }
        if self.selected_head >= self.num_heads {
            return Err(ModelError::invalid(
                "selected_head",
                format!(
                    "{} is not below num_heads {}",
                    self.selected_head, self.num_heads
                ),
            ));
        }
        if !(1..=4096).contains(&self.hidden) {
            return Err(ModelError::invalid("hidden", "must be in 1..=4096"));
        }
        check_normalization(&self.mean, &self.std, self.input_shape[0])?;
        let mut total = self.backbone.parameter_count()?;
        for _ in 0..self.num_heads {
            add_layer(
                &mut total,
                "hidden",
                self.backbone.feature_dim(),
                self.hidden,
            )?;
            add_layer(&mut total, "num_clusters", self.hidden, self.num_clusters)?;
        }
        self.backbone.validate(self.input_shape)?;
        Ok(total)
    }
}

crate::error::validated_architecture!(SpiceConfig);

/// SPICE's cluster heads, a module of their own so that SPICE-Self trains them alone.
#[derive(Module, Debug)]
pub struct SpiceHeads {
    heads: Vec<MlpHead>,
}

impl SpiceHeads {
    /// `num_heads` heads `d -> hidden -> k` drawn from `rng`.
    pub fn new(
        d: usize,
        hidden: usize,
        k: usize,
        num_heads: usize,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Self {
        SpiceHeads {
            heads: (0..num_heads)
                .map(|_| MlpHead::new(d, hidden, k, rng, device))
                .collect(),
        }
    }

    /// Raw logits `[N, k]` of every head on features `[N, d]`.
    pub fn forward(&self, features: Tensor<2>) -> Vec<Tensor<2>> {
        self.heads
            .iter()
            .map(|h| h.forward(features.clone()))
            .collect()
    }

    /// Raw logits of head `head` (callers pass an index below the head count: the selected
    /// head of a validated config, or a loop over the heads).
    pub(crate) fn forward_head(&self, head: usize, features: Tensor<2>) -> Tensor<2> {
        self.heads[head].forward(features)
    }

    /// Keeps only head `head` (SPICE-Semi trains the selected head alone).
    pub(crate) fn only(mut self, head: usize) -> Self {
        let kept = self.heads.swap_remove(head);
        SpiceHeads { heads: vec![kept] }
    }
}

/// A SPICE clustering model: ResNet backbone and MLP cluster heads.
#[derive(Module, Debug)]
pub struct SpiceModel {
    backbone: ResNet,
    heads: SpiceHeads,
    #[module(skip)]
    config: SpiceConfig,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

impl SpiceModel {
    /// A model with fresh weights drawn from a `SeededRng` seeded with `seed`.
    pub fn new(config: &SpiceConfig, seed: u64, device: &Device) -> Result<Self> {
        let config = config.check_ref()?.clone();
        let mut rng = SeededRng::seed_from_u64(seed);
        let backbone = config.backbone.init(&mut rng, device);
        let heads = SpiceHeads::new(
            config.backbone.feature_dim(),
            config.hidden,
            config.num_clusters,
            config.num_heads,
            &mut rng,
            device,
        );
        Ok(SpiceModel {
            backbone,
            heads,
            config,
            training: None,
        })
    }

    /// A model from its parts (the config must describe them).
    pub(crate) fn from_parts(backbone: ResNet, heads: SpiceHeads, config: SpiceConfig) -> Self {
        SpiceModel {
            backbone,
            heads,
            config,
            training: None,
        }
    }

    /// The architecture.
    pub fn config(&self) -> &SpiceConfig {
        &self.config
    }

    /// The backbone.
    pub fn backbone(&self) -> &ResNet {
        &self.backbone
    }

    /// The cluster heads.
    pub fn heads(&self) -> &SpiceHeads {
        &self.heads
    }

    /// Backbone features `[N, feature_dim]` of `[0, 1]` images.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone
            .forward(normalize(images, &self.config.mean, &self.config.std))
    }

    /// Raw logits `[N, k]` of the selected head.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.heads
            .forward_head(self.config.selected_head, self.features(images))
    }
}

impl VictimModel for SpiceModel {
    const KIND: VictimKind = VictimKind::Spice;
    type Config = SpiceConfig;

    fn victim_config(&self) -> &SpiceConfig {
        &self.config
    }

    fn from_config(config: &SpiceConfig, device: &Device) -> Result<Self> {
        SpiceModel::new(config, 0, device)
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

impl DifferentiableClusterModel for SpiceModel {
    fn num_clusters(&self) -> usize {
        self.config.num_clusters
    }

    fn input_shape(&self) -> [usize; 3] {
        self.config.input_shape
    }

    /// Softmax of the selected head.
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.logits(images), 1)
    }

    /// Raw logits of the selected head (SPICE-Semi's logits, the authors' phi).
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        self.logits(images)
    }

    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let logits = self.logits(images);
        (softmax(logits.clone(), 1), logits)
    }
}
