//! SCAN (Van Gansbeke et al., ECCV 2020): a backbone initialised from the SimCLR pretext,
//! `num_heads` linear cluster heads trained so that an image and one of its mined neighbours
//! get the same cluster (with an entropy term that keeps clusters balanced), the head with the
//! lowest unsupervised loss selected, then self-labelling on confident predictions.
//!
//! Memberships are the softmax of the selected head; the attack's phi is the raw logits of
//! every head (the paper authors' `_loss` reads `forward_pass='return_all'`).

pub(crate) mod heads;
pub mod train;

use advclust_core::SeededRng;
use advclust_core::{DifferentiableClusterModel, ParamGuard};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::norm::{
    add_layer, check_input_shape, check_normalization, check_num_clusters, normalize,
};
use crate::resnet::{ResNet, ResNetConfig, linear};
use crate::victim::{TrainingSummary, VictimKind, VictimModel};

pub use train::{
    ScanTrainConfig, ScanTrainReport, SelfLabelConfig, finetune_scan, scan_loss, train_scan,
};

/// Largest number of cluster heads (SCAN uses 1 on CIFAR, 10 on ImageNet).
pub const MAX_HEADS: usize = 64;

/// The SCAN model's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanConfig {
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// Number of clusters `k` of every head.
    pub num_clusters: usize,
    /// The ResNet backbone (the pretext's).
    pub backbone: ResNetConfig,
    /// Linear cluster heads on the backbone features.
    pub num_heads: usize,
    /// The head whose softmax is the memberships (chosen by the unsupervised loss).
    pub selected_head: usize,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by inside the model.
    pub std: Vec<f32>,
}

impl ScanConfig {
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
        check_normalization(&self.mean, &self.std, self.input_shape[0])?;
        let mut total = self.backbone.parameter_count()?;
        for _ in 0..self.num_heads {
            add_layer(
                &mut total,
                "num_clusters",
                self.backbone.feature_dim(),
                self.num_clusters,
            )?;
        }
        self.backbone.validate(self.input_shape)?;
        Ok(total)
    }
}

crate::error::validated_architecture!(ScanConfig);

/// A SCAN clustering model: ResNet backbone and linear cluster heads.
#[derive(Module, Debug)]
pub struct ScanModel {
    backbone: ResNet,
    heads: Vec<Linear>,
    #[module(skip)]
    config: ScanConfig,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

impl ScanModel {
    /// A model with a fresh backbone and heads (weights from a `SeededRng` seeded with `seed`).
    pub fn new(config: &ScanConfig, seed: u64, device: &Device) -> Result<Self> {
        let config = config.check_ref()?.clone();
        let mut rng = SeededRng::seed_from_u64(seed);
        let backbone = config.backbone.init(&mut rng, device);
        Ok(Self::with_backbone(backbone, config, &mut rng, device))
    }

    /// A model on a given (pretrained) backbone with fresh heads drawn from `rng`.
    pub(crate) fn with_backbone(
        backbone: ResNet,
        config: ScanConfig,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Self {
        let d = config.backbone.feature_dim();
        let heads = (0..config.num_heads)
            .map(|_| linear(d, config.num_clusters, rng, device))
            .collect();
        ScanModel {
            backbone,
            heads,
            config,
            training: None,
        }
    }

    /// The architecture.
    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    /// Selects the head whose softmax is the memberships.
    pub fn with_selected_head(mut self, head: usize) -> Result<Self> {
        let mut config = self.config.clone();
        config.selected_head = head;
        self.config = config.check()?;
        Ok(self)
    }

    /// The backbone.
    pub fn backbone(&self) -> &ResNet {
        &self.backbone
    }

    /// Backbone features `[N, feature_dim]` of `[0, 1]` images.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone
            .forward(normalize(images, &self.config.mean, &self.config.std))
    }

    /// Raw logits `[N, k]` of every head.
    pub fn head_logits(&self, images: Tensor<4>) -> Vec<Tensor<2>> {
        self.logits_of_features(self.features(images))
    }

    /// Raw logits `[N, k]` of every head on backbone features `[N, feature_dim]`.
    pub fn logits_of_features(&self, features: Tensor<2>) -> Vec<Tensor<2>> {
        self.heads
            .iter()
            .map(|head| head.forward(features.clone()))
            .collect()
    }

    /// Raw logits `[N, k]` of the selected head.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let h = self.features(images);
        self.heads[self.config.selected_head].forward(h)
    }
}

impl VictimModel for ScanModel {
    const KIND: VictimKind = VictimKind::Scan;
    type Config = ScanConfig;

    fn victim_config(&self) -> &ScanConfig {
        &self.config
    }

    fn from_config(config: &ScanConfig, device: &Device) -> Result<Self> {
        ScanModel::new(config, 0, device)
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

impl DifferentiableClusterModel for ScanModel {
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

    /// Raw logits of every head side by side, `[N, num_heads * k]`: the squared distance of two
    /// such outputs is the sum over heads of the per-head squared distances, the authors' phi.
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        Tensor::cat(self.head_logits(images), 1)
    }

    /// One backbone pass for both: the selected head's softmax and every head's logits.
    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let logits = self.head_logits(images);
        let m = softmax(logits[self.config.selected_head].clone(), 1);
        (m, Tensor::cat(logits, 1))
    }
}
