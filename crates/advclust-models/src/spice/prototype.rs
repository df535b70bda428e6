//! SPICE-Self: the heads trained on prototype pseudo-labels over a frozen backbone.
//!
//! Before every epoch each head scores every (weakly augmented) image; per cluster, the mean
//! embedding of the `center_ratio * n / k` images the head scores highest is the cluster's
//! prototype, and the `n / k` images nearest that prototype are labelled with the cluster. The
//! epoch then trains each head on its own labelled set, strongly augmented, `repeats` times.

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, tensor_to_vec};
use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::error::{ModelError, Result};
use crate::norm::normalize;
use crate::resnet::ResNet;
use crate::runner::{Evaluation, RunConfig, StepLoss, TrainingStep, epoch_rng, gather_images};
use crate::spice::SpiceHeads;

/// Salt of the weak augmentation's per-epoch RNG (distinct from the runner's step RNG).
const WEAK_SALT: u64 = 0x5350_4943_4557_4541;

/// SPICE-Self's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrototypeConfig {
    /// Fraction of `n / k` top-scored images averaged into each prototype (0.5 in SPICE).
    pub center_ratio: f64,
    /// Passes over the labelled set per epoch (8 in SPICE).
    pub repeats: usize,
    /// Augmentation of the scoring pass.
    pub weak: AugmentConfig,
    /// Augmentation of the training images.
    pub strong: AugmentConfig,
    /// Epochs, batch, optimiser (SPICE: Adam 5e-3, no weight decay, batches of 128).
    pub run: RunConfig,
}

impl PrototypeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.center_ratio > 0.0 && self.center_ratio <= 1.0) {
            return Err(ModelError::invalid("center_ratio", "must be in (0, 1]"));
        }
        if !(1..=64).contains(&self.repeats) {
            return Err(ModelError::invalid("repeats", "must be in 1..=64"));
        }
        self.weak.validate()?;
        self.strong.validate()?;
        self.run.validate()
    }
}

/// Images labelled per head and epoch: `n / k` per cluster.
pub(crate) fn labelled_count(n: usize, k: usize) -> usize {
    (n / k) * k
}

/// SPICE's prototype pseudo-labels from one head's scores `[n, k]` and the unit embeddings
/// `[n, d]` (both row-major): `(image, cluster)` pairs, `n / k` per cluster, cluster by
/// cluster (an image may be picked by several clusters, as in SPICE).
pub fn prototype_labels(
    scores: &[f32],
    embeddings: &[f32],
    n: usize,
    k: usize,
    center_ratio: f64,
) -> Vec<(usize, usize)> {
    let d = embeddings.len() / n.max(1);
    let per = n / k;
    let m = ((center_ratio * per as f64) as usize).max(1);
    let mut out = Vec::with_capacity(per * k);
    let mut order: Vec<usize> = (0..n).collect();
    let mut proto = vec![0.0f32; d];
    for c in 0..k {
        // The m images this head scores highest for c (ties to the lower index).
        let by_score = |a: &usize, b: &usize| {
            scores[*b * k + c]
                .total_cmp(&scores[*a * k + c])
                .then(a.cmp(b))
        };
        order.select_nth_unstable_by(m - 1, by_score);
        proto.iter_mut().for_each(|v| *v = 0.0);
        for &i in &order[..m] {
            proto
                .iter_mut()
                .zip(&embeddings[i * d..(i + 1) * d])
                .for_each(|(p, e)| *p += e / m as f32);
        }
        let sim: Vec<f32> = (0..n)
            .map(|i| {
                embeddings[i * d..(i + 1) * d]
                    .iter()
                    .zip(&proto)
                    .map(|(e, p)| e * p)
                    .sum()
            })
            .collect();
        let by_sim = |a: &usize, b: &usize| sim[*b].total_cmp(&sim[*a]).then(a.cmp(b));
        order.select_nth_unstable_by(per - 1, by_sim);
        let mut chosen = order[..per].to_vec();
        chosen.sort_unstable();
        out.extend(chosen.into_iter().map(|i| (i, c)));
    }
    out
}

/// Mean cross-entropy of `logits` `[B, k]` against hard `targets`, each row weighted by
/// `weights` (1 when `None`), divided by `B`.
pub(crate) fn hard_cross_entropy(
    logits: Tensor<2>,
    targets: &[usize],
    weights: Option<&[f32]>,
    device: &Device,
) -> Tensor<1> {
    let [b, k] = logits.dims();
    let mut onehot = vec![0.0f32; b * k];
    for (i, &t) in targets.iter().enumerate() {
        onehot[i * k + t] = weights.map_or(1.0, |w| w[i]);
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, k]), device);
    (log_softmax(logits, 1) * onehot)
        .sum()
        .div_scalar(b.max(1) as f64)
        .neg()
}

/// Backbone features of host images on the backbone's (non-autodiff) device, row-major.
pub(crate) fn frozen_features(
    backbone: &ResNet,
    mean: &[f32],
    std: &[f32],
    images: Vec<f32>,
    dims: [usize; 4],
    device: &Device,
) -> Result<Vec<f32>> {
    let x = Tensor::<4>::from_data(TensorData::new(images, dims), device);
    Ok(tensor_to_vec(
        backbone.forward(normalize(x, mean, std)).into_data(),
    )?)
}

/// Every head's softmax on features `[n, d]` (host, row-major), in evaluation mode.
pub(crate) fn head_scores(
    heads: &SpiceHeads,
    features: &[f32],
    n: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let device = device.clone().inner();
    let heads = heads.valid().to_device(&device);
    let d = features.len() / n.max(1);
    let f = Tensor::<2>::from_data(TensorData::new(features.to_vec(), [n, d]), &device);
    heads
        .forward(f)
        .into_iter()
        .map(|l| Ok(tensor_to_vec(softmax(l, 1).into_data())?))
        .collect()
}

/// SPICE's head choice: per head, the cross-entropy of its clean scores against its own
/// prototype labels of the clean images; returns every head's loss and the lowest one's index
/// with its scores.
pub(crate) fn select_spice_head(
    heads: &SpiceHeads,
    features: &[f32],
    embeddings: &[f32],
    n: usize,
    k: usize,
    center_ratio: f64,
    device: &Device,
) -> Result<(Vec<f64>, usize, Vec<f32>)> {
    let mut scores = head_scores(heads, features, n, device)?;
    let losses: Vec<f64> = scores
        .iter()
        .map(|s| {
            let pairs = prototype_labels(s, embeddings, n, k, center_ratio);
            let sum: f64 = pairs
                .iter()
                .map(|&(i, c)| -(s[i * k + c].max(1e-30) as f64).ln())
                .sum();
            sum / pairs.len().max(1) as f64
        })
        .collect();
    let best = losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok((losses, best, scores.swap_remove(best)))
}

/// The SPICE-Self step: items are `repeats` passes over the `n / k * k` labelled slots; slot
/// `s` of head `h` is the `s`-th pair of that head's prototype labels.
pub(crate) struct PrototypeStep<'a> {
    pub(crate) images: &'a ImageBatch,
    pub(crate) labels: Option<&'a [usize]>,
    /// The frozen backbone, on the non-autodiff device.
    pub(crate) backbone: &'a ResNet,
    pub(crate) mean: &'a [f32],
    pub(crate) std: &'a [f32],
    /// Clean backbone features `[n, d]` and their L2-normalised copies.
    pub(crate) features: &'a [f32],
    pub(crate) embeddings: &'a [f32],
    pub(crate) config: &'a PrototypeConfig,
    pub(crate) k: usize,
    /// Per head, this epoch's `(image, cluster)` pairs.
    pub(crate) selections: Vec<Vec<(usize, usize)>>,
}

impl PrototypeStep<'_> {
    /// Backbone features of host images, on the training device (constants: the backbone is
    /// frozen).
    fn features_on(
        &self,
        images: Vec<f32>,
        dims: [usize; 4],
        device: &Device,
    ) -> Result<Tensor<2>> {
        let b = dims[0];
        let f = frozen_features(
            self.backbone,
            self.mean,
            self.std,
            images,
            dims,
            &device.clone().inner(),
        )?;
        let d = f.len() / b.max(1);
        Ok(Tensor::<2>::from_data(TensorData::new(f, [b, d]), device))
    }
}

impl TrainingStep<SpiceHeads> for PrototypeStep<'_> {
    fn begin_epoch(&mut self, heads: &SpiceHeads, epoch: usize, device: &Device) -> Result<()> {
        let [n, c, h, w] = self.images.dims();
        let len = c * h * w;
        let mut rng = epoch_rng(self.config.run.seed ^ WEAK_SALT, epoch as u64);
        let mut features = Vec::with_capacity(self.features.len());
        let inner = device.clone().inner();
        for start in (0..n).step_by(500) {
            let idx: Vec<usize> = (start..(start + 500).min(n)).collect();
            let dims = [idx.len(), c, h, w];
            let weak = augment_batch(
                &gather_images(self.images.data(), len, &idx),
                dims,
                &self.config.weak,
                &mut rng,
            )?;
            features.extend(frozen_features(
                self.backbone,
                self.mean,
                self.std,
                weak,
                dims,
                &inner,
            )?);
        }
        let scores = head_scores(heads, &features, n, device)?;
        self.selections = scores
            .iter()
            .map(|s| prototype_labels(s, self.embeddings, n, self.k, self.config.center_ratio))
            .collect();
        Ok(())
    }

    fn loss(
        &mut self,
        heads: &SpiceHeads,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let [_, c, h, w] = self.images.dims();
        let b = batch.len();
        let num_heads = self.selections.len();
        let mut idx = Vec::with_capacity(num_heads * b);
        let mut targets = Vec::with_capacity(num_heads * b);
        for sel in &self.selections {
            for &t in batch {
                let (i, cluster) = sel[t % sel.len()];
                idx.push(i);
                targets.push(cluster);
            }
        }
        let dims = [idx.len(), c, h, w];
        let strong = augment_batch(
            &gather_images(self.images.data(), c * h * w, &idx),
            dims,
            &self.config.strong,
            rng,
        )?;
        let f = self.features_on(strong, dims, device)?;
        let mut total: Option<Tensor<1>> = None;
        for head in 0..num_heads {
            let logits = heads.forward_head(head, f.clone().narrow(0, head * b, b));
            let ce = hard_cross_entropy(logits, &targets[head * b..(head + 1) * b], None, device);
            total = Some(total.map_or(ce.clone(), |t| t + ce));
        }
        let total = total.ok_or_else(|| ModelError::invalid("num_heads", "no head"))?;
        Ok(StepLoss {
            total: total.clone(),
            parts: vec![("pseudo-label CE", total)],
        })
    }

    fn evaluate(&mut self, heads: &SpiceHeads, device: &Device) -> Result<Option<Evaluation>> {
        let n = self.images.len();
        let (losses, best, scores) = select_spice_head(
            heads,
            self.features,
            self.embeddings,
            n,
            self.k,
            self.config.center_ratio,
            device,
        )?;
        let clusters = Evaluation::of_memberships(&scores, self.k, self.labels)?;
        Ok(Some(Evaluation {
            metrics: vec![
                ("best head".into(), best as f64),
                ("selection loss".into(), losses[best]),
            ],
            ..clusters
        }))
    }
}
