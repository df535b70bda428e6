//! NNM (Dang et al., CVPR 2021), "Nearest Neighbour Matching": SCAN's architecture (a backbone
//! from the SimCLR pretext and linear cluster heads, three of them) trained with three
//! neighbourhoods at once: a mined neighbour (SCAN's consistency), the nearest other image of
//! the same batch, and each image's nearest neighbour in the whole set under the current model
//! (a table refreshed every epoch); each with a consistency term and a cluster-level contrast
//! between the columns of the two assignment matrices, plus SCAN's entropy term.
//!
//! Memberships are the softmax of the head selected by the unsupervised loss; the attack's phi is
//! the raw logits of every head (the authors' loss runs over NNM's three heads).

pub mod train;

use advclust_core::DifferentiableClusterModel;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::scan::{ScanConfig, ScanModel};
use crate::victim::{TrainingSummary, VictimKind, VictimModel};

pub use train::{
    NnmTrainConfig, NnmTrainReport, cluster_contrast, finetune_nnm, nnm_head_loss, train_nnm,
};

/// An NNM clustering model: SCAN's backbone-and-heads architecture ([`ScanConfig`]) under its
/// own kind, trained by [`train_nnm`].
#[derive(Module, Debug)]
pub struct NnmModel {
    heads: ScanModel,
}

impl NnmModel {
    /// A model with fresh weights drawn from `seed`.
    pub fn new(config: &ScanConfig, seed: u64, device: &Device) -> Result<Self> {
        Ok(NnmModel {
            heads: ScanModel::new(config, seed, device)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ScanConfig {
        self.heads.config()
    }

    /// The backbone and heads (features, per-head logits).
    pub fn heads(&self) -> &ScanModel {
        &self.heads
    }

    pub(crate) fn from_heads(heads: ScanModel) -> Self {
        NnmModel { heads }
    }
}

impl VictimModel for NnmModel {
    const KIND: VictimKind = VictimKind::Nnm;
    type Config = ScanConfig;

    fn victim_config(&self) -> &ScanConfig {
        self.heads.config()
    }

    fn from_config(config: &ScanConfig, device: &Device) -> Result<Self> {
        NnmModel::new(config, 0, device)
    }

    fn channel_std(&self) -> &[f32] {
        &self.heads.config().std
    }

    fn training(&self) -> Option<&TrainingSummary> {
        self.heads.training()
    }

    fn with_training(self, training: Option<TrainingSummary>) -> Self {
        NnmModel {
            heads: self.heads.with_training(training),
        }
    }
}

impl DifferentiableClusterModel for NnmModel {
    fn num_clusters(&self) -> usize {
        self.heads.num_clusters()
    }

    fn input_shape(&self) -> [usize; 3] {
        self.heads.input_shape()
    }

    /// Softmax of the selected head.
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        self.heads.memberships(images)
    }

    /// Raw logits of every head side by side, `[N, num_heads * k]` (the authors' phi).
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        self.heads.attack_output(images)
    }

    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.heads.memberships_and_attack_output(images)
    }
}
