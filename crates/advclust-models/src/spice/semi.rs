//! SPICE-Semi: FixMatch with the reliable images as the labelled set. Each step takes a batch
//! of unlabelled images (every image of the set) and `batch / uratio` labelled ones; the loss is
//! the labelled cross-entropy plus `lambda_u` times the cross-entropy of the strongly augmented
//! unlabelled images against the predictions on their weak views, where those are confident.

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, argmax_rows, tensor_to_vec};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::error::{ModelError, Result};
use crate::runner::{Evaluation, RunConfig, StepLoss, TrainingStep, gather_images};
use crate::spice::SpiceModel;
use crate::spice::prototype::hard_cross_entropy;
use crate::spice::reliable::ReliableSet;

/// SPICE-Semi's FixMatch settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemiConfig {
    /// Confidence of the weak view above which an unlabelled image counts (0.95 in SPICE).
    pub p_cutoff: f64,
    /// Weight of the unlabelled term (1.0 in SPICE).
    pub lambda_u: f64,
    /// Unlabelled images per labelled image in a step (7 in SPICE).
    pub uratio: usize,
    /// Weak augmentation (labelled images, pseudo-label views).
    pub weak: AugmentConfig,
    /// Strong augmentation of the unlabelled images.
    pub strong: AugmentConfig,
    /// The run; its batch size counts the unlabelled images of a step.
    pub run: RunConfig,
}

impl SemiConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.p_cutoff.is_finite() && self.p_cutoff > 0.0 && self.p_cutoff < 1.0) {
            return Err(ModelError::invalid("semi.p_cutoff", "must be in (0, 1)"));
        }
        if !(self.lambda_u.is_finite() && self.lambda_u >= 0.0) {
            return Err(ModelError::invalid(
                "semi.lambda_u",
                "must be finite and >= 0",
            ));
        }
        if self.uratio == 0 || self.uratio > self.run.batch_size {
            return Err(ModelError::invalid(
                "semi.uratio",
                "must be in 1..=batch_size (a step needs one labelled image)",
            ));
        }
        self.weak.validate()?;
        self.strong.validate()?;
        self.run.validate()
    }
}

/// The FixMatch step on a one-head [`SpiceModel`].
pub(crate) struct SemiStep<'a> {
    pub(crate) images: &'a ImageBatch,
    pub(crate) labels: Option<&'a [usize]>,
    pub(crate) reliable: &'a ReliableSet,
    pub(crate) config: &'a SemiConfig,
}

impl TrainingStep<SpiceModel> for SemiStep<'_> {
    fn loss(
        &mut self,
        model: &SpiceModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let [_, c, h, w] = self.images.dims();
        let len = c * h * w;
        let k = model.config().num_clusters;
        let u = batch.len();
        let l = (u / self.config.uratio).max(1);
        let picks: Vec<usize> = (0..l)
            .map(|_| rng.random_range(0..self.reliable.indices.len()))
            .collect();
        let lab_idx: Vec<usize> = picks.iter().map(|&p| self.reliable.indices[p]).collect();
        let lab_targets: Vec<usize> = picks.iter().map(|&p| self.reliable.labels[p]).collect();
        let unl = gather_images(self.images.data(), len, batch);
        let mut views = augment_batch(
            &gather_images(self.images.data(), len, &lab_idx),
            [l, c, h, w],
            &self.config.weak,
            rng,
        )?;
        views.extend(augment_batch(&unl, [u, c, h, w], &self.config.weak, rng)?);
        views.extend(augment_batch(&unl, [u, c, h, w], &self.config.strong, rng)?);
        // One forward pass over all three parts, as FixMatch (BatchNorm sees them together).
        let x = Tensor::<4>::from_data(TensorData::new(views, [l + 2 * u, c, h, w]), device);
        let logits = model.logits(x);
        let supervised =
            hard_cross_entropy(logits.clone().narrow(0, 0, l), &lab_targets, None, device);
        let weak = tensor_to_vec(softmax(logits.clone().narrow(0, l, u).detach(), 1).into_data())?;
        let pseudo = argmax_rows(&weak, k);
        let mask: Vec<f32> = pseudo
            .iter()
            .enumerate()
            .map(|(i, &p)| f32::from(weak[i * k + p] as f64 >= self.config.p_cutoff))
            .collect();
        let fraction = mask.iter().sum::<f32>() / u as f32;
        let unsupervised =
            hard_cross_entropy(logits.narrow(0, l + u, u), &pseudo, Some(&mask), device);
        let total = supervised.clone() + unsupervised.clone().mul_scalar(self.config.lambda_u);
        let fraction = Tensor::<1>::from_data(TensorData::new(vec![fraction], [1]), device);
        Ok(StepLoss {
            total,
            parts: vec![
                ("supervised", supervised),
                ("unsupervised", unsupervised),
                ("mask", fraction),
            ],
        })
    }

    fn evaluate(&mut self, model: &SpiceModel, device: &Device) -> Result<Option<Evaluation>> {
        Evaluation::of_clusters(model, self.images, self.labels, device).map(Some)
    }
}
