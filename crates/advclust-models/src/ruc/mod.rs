//! RUC (Park et al., CVPR 2021), "Improving Unsupervised Image Clustering With Robust
//! Learning": an add-on that retrains a clustering model as two co-trained networks on its own
//! noisy pseudo-labels. A base model (a trained SCAN) labels every image; the images it is
//! confident about *and* whose pretext-embedding neighbours mostly share its label form the
//! clean set, the rest are treated as unlabelled. Each network learns the clean set with label
//! refurbishing (its label blended with the peer's prediction), the noisy set with sharpened
//! guesses of both networks (MixMatch-style MixUp), and a label-smoothed loss on strongly
//! augmented clean images; images a network becomes confident about join its clean set.
//!
//! The prediction is the argmax of the sum of both networks' logits; memberships are its
//! softmax and the attack's phi the summed logits (the authors attack `net(x) + net2(x)`).

mod mixup;
mod split;
pub mod train;

use advclust_core::DifferentiableClusterModel;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::scan::{ScanConfig, ScanModel};
use crate::victim::{TrainingSummary, VictimKind, VictimModel};

pub use split::{CleanSplit, clean_split};
pub use train::{RucTrainConfig, RucTrainReport, finetune_ruc, train_ruc};

/// RUC's saved architecture: that of each of its two networks (SCAN's, one head). Saved as
/// the bare `ScanConfig`; its parameter count is both networks', so the loader's check that
/// the weights can hold the model counts what it will build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RucConfig(pub ScanConfig);

impl RucConfig {
    /// Validates the architecture and counts the parameters of both networks.
    pub fn parameter_count(&self) -> Result<u64> {
        self.0
            .parameter_count()?
            .checked_mul(2)
            .ok_or_else(|| ModelError::invalid("RUC networks", "parameter count overflows"))
    }
}

crate::error::validated_architecture!(RucConfig);

/// A RUC model: two networks of SCAN's architecture (one head each) whose logits add up.
#[derive(Module, Debug)]
pub struct RucModel {
    first: ScanModel,
    second: ScanModel,
    /// `first`'s architecture in RUC's description form, kept so that
    /// `VictimModel::victim_config` can lend it (always equal to `first.config()`).
    #[module(skip)]
    config: RucConfig,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

impl RucModel {
    /// Two fresh networks of one architecture (`config` must have one head), drawn from `seed`
    /// and `seed + 1`.
    pub fn new(config: &ScanConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::from_nets(
            ScanModel::new(config, seed, device)?,
            ScanModel::new(config, seed.wrapping_add(1), device)?,
        )
    }

    /// The model of two trained networks (one head each, one architecture).
    pub fn from_nets(first: ScanModel, second: ScanModel) -> Result<Self> {
        if first.config() != second.config() || first.config().num_heads != 1 {
            return Err(ModelError::invalid(
                "RUC networks",
                "the two networks must share one architecture with one head",
            ));
        }
        Ok(RucModel {
            config: RucConfig(first.config().clone()),
            first,
            second,
            training: None,
        })
    }

    /// The architecture of each network.
    pub fn config(&self) -> &ScanConfig {
        self.first.config()
    }

    /// The two networks.
    pub fn nets(&self) -> [&ScanModel; 2] {
        [&self.first, &self.second]
    }

    /// The summed logits `[N, k]` of `[0, 1]` images.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.first.logits(images.clone()) + self.second.logits(images)
    }

    /// The first network's backbone features `[N, feature_dim]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.first.features(images)
    }
}

impl VictimModel for RucModel {
    const KIND: VictimKind = VictimKind::Ruc;
    type Config = RucConfig;

    fn victim_config(&self) -> &RucConfig {
        &self.config
    }

    fn from_config(config: &RucConfig, device: &Device) -> Result<Self> {
        RucModel::new(&config.0, 0, device)
    }

    fn channel_std(&self) -> &[f32] {
        &self.first.config().std
    }

    fn training(&self) -> Option<&TrainingSummary> {
        self.training.as_ref()
    }

    fn with_training(mut self, training: Option<TrainingSummary>) -> Self {
        self.training = training;
        self
    }
}

impl DifferentiableClusterModel for RucModel {
    fn num_clusters(&self) -> usize {
        self.first.num_clusters()
    }

    fn input_shape(&self) -> [usize; 3] {
        self.first.input_shape()
    }

    /// Softmax of the summed logits.
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.logits(images), 1)
    }

    /// The summed logits (the authors' phi).
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        self.logits(images)
    }

    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let logits = self.logits(images);
        (softmax(logits.clone(), 1), logits)
    }
}
