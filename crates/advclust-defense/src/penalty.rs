//! The adaptive attack against SSD: the detector's score written as tensor operations, so that
//! the GAN's generator can be trained to keep `x_adv` below the detector's threshold while it
//! breaks the clustering ([`SsdPenalty`], a [`GeneratorPenalty`]), or the detector as a black
//! box the attacker can only query for scores ([`SsdQueryPenalty`], a [`QueryPenalty`] whose
//! gradient the query-only GAN estimates from the same perturbed copies as the victim's). A
//! detection defense is only credible against an attacker who knows it.

use std::fmt;

use advclust_core::ImageBatch;
use advclust_gan::{GeneratorPenalty, QueryPenalty};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};

use crate::error::{DefenseError, Result};
use crate::features::{FeatureExtractor, extract};
use crate::ssd::{SSD_EPSILON, SsdDetector};

/// One cluster of the detector as tensors: its mean and `V diag(1/sqrt(l))`.
struct ClusterTensors {
    mean: Tensor<1>,
    whitening: Tensor<2>,
}

/// Both penalties' parameters: a positive finite threshold, a non-negative finite weight.
fn check_penalty(threshold: f64, weight: f32) -> Result<()> {
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(DefenseError::invalid(
            "threshold",
            format!("{threshold} is not positive"),
        ));
    }
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(DefenseError::invalid(
            "weight",
            format!("{weight} is not a non-negative number"),
        ));
    }
    Ok(())
}

/// The name both penalties record in a checkpoint's fingerprint.
fn penalty_name(extractor: &dyn FeatureExtractor, clusters: usize, threshold: f64) -> String {
    format!(
        "ssd({}, k={clusters}, threshold {threshold})",
        extractor.name()
    )
}

/// `weight * mean_i relu(score(x_adv_i) - threshold) / threshold`: zero once every adversarial
/// image scores below the threshold, so the attacker pays only for the images SSD would flag.
pub struct SsdPenalty {
    extractor: Box<dyn FeatureExtractor>,
    feature_mean: Tensor<1>,
    feature_scale: Tensor<1>,
    clusters: Vec<ClusterTensors>,
    threshold: f64,
    weight: f32,
}

impl fmt::Debug for SsdPenalty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsdPenalty")
            .field("extractor", &self.extractor.name())
            .field("clusters", &self.clusters.len())
            .field("threshold", &self.threshold)
            .field("weight", &self.weight)
            .finish()
    }
}

impl SsdPenalty {
    /// The penalty of `detector` on the features of `extractor` (differentiable: e.g.
    /// [`crate::PretextFeatures::frozen`]), flagging at `threshold` (the 95th percentile of the
    /// clean scores in the protocol), with `weight` in the generator loss.
    pub fn new(
        detector: &SsdDetector,
        extractor: Box<dyn FeatureExtractor>,
        threshold: f64,
        weight: f32,
    ) -> Result<Self> {
        check_penalty(threshold, weight)?;
        let device = extractor.device().clone();
        let vector = |v: &[f64]| {
            let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::<1>::from_data(TensorData::new(data, [v.len()]), &device)
        };
        let d = detector.dim;
        let clusters = detector
            .clusters
            .iter()
            .map(|c| {
                let r = c.precision.values.len();
                let mut w = Vec::with_capacity(d * r);
                for i in 0..d {
                    for (j, l) in c.precision.values.iter().enumerate() {
                        w.push((c.precision.vectors[i * r + j] / l.abs().sqrt()) as f32);
                    }
                }
                if w.is_empty() {
                    // No direction kept (a zero covariance): every score is 0.
                    w = vec![0.0; d];
                }
                ClusterTensors {
                    mean: vector(&c.mean),
                    whitening: Tensor::<2>::from_data(TensorData::new(w, [d, r.max(1)]), &device),
                }
            })
            .collect();
        let scale: Vec<f64> = detector
            .feature_std
            .iter()
            .map(|s| 1.0 / (s + SSD_EPSILON))
            .collect();
        Ok(SsdPenalty {
            feature_mean: vector(&detector.feature_mean),
            feature_scale: vector(&scale),
            clusters,
            extractor,
            threshold,
            weight,
        })
    }

    /// SSD's score of every image, differentiable (equal to [`SsdDetector::score`] up to f32
    /// rounding).
    pub fn scores(&self, images: Tensor<4>) -> Tensor<1> {
        let f = self.extractor.features(images);
        let [n, _] = f.dims();
        let norm = f
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .sqrt()
            .add_scalar(SSD_EPSILON);
        let f = f / norm;
        let f = (f - self.feature_mean.clone().unsqueeze_dim::<2>(0))
            * self.feature_scale.clone().unsqueeze_dim::<2>(0);
        let per_cluster: Vec<Tensor<2>> = self
            .clusters
            .iter()
            .map(|c| {
                let centred = f.clone() - c.mean.clone().unsqueeze_dim::<2>(0);
                centred
                    .matmul(c.whitening.clone())
                    .powf_scalar(2.0)
                    .sum_dim(1)
            })
            .collect();
        Tensor::cat(per_cluster, 1).min_dim(1).reshape([n])
    }
}

impl GeneratorPenalty for SsdPenalty {
    fn name(&self) -> String {
        penalty_name(self.extractor.as_ref(), self.clusters.len(), self.threshold)
    }

    fn weight(&self) -> f32 {
        self.weight
    }

    fn penalty(&self, x_adv: Tensor<4>) -> Tensor<1> {
        let x_adv = x_adv.to_device(self.extractor.device());
        relu(self.scores(x_adv).sub_scalar(self.threshold))
            .div_scalar(self.threshold)
            .mean()
    }
}

/// SSD behind an interface that only returns scores: per image
/// `relu(score(x) - threshold) / threshold`, the per-image term of [`SsdPenalty`], computed by
/// the detector itself (`extractor` needs no gradient: e.g. [`crate::PretextFeatures::new`]).
/// The query-only GAN ([`advclust_gan::AttackTrainer::with_query_penalty`]) estimates its
/// gradient from the scores of the perturbed copies it already sends to the victim.
pub struct SsdQueryPenalty<'a> {
    detector: &'a SsdDetector,
    extractor: &'a dyn FeatureExtractor,
    threshold: f64,
    weight: f32,
}

impl fmt::Debug for SsdQueryPenalty<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsdQueryPenalty")
            .field("extractor", &self.extractor.name())
            .field("clusters", &self.detector.clusters.len())
            .field("threshold", &self.threshold)
            .field("weight", &self.weight)
            .finish()
    }
}

impl<'a> SsdQueryPenalty<'a> {
    /// `detector` scoring the features of `extractor`, flagging at `threshold`, with `weight` in
    /// the generator loss.
    pub fn new(
        detector: &'a SsdDetector,
        extractor: &'a dyn FeatureExtractor,
        threshold: f64,
        weight: f32,
    ) -> Result<Self> {
        check_penalty(threshold, weight)?;
        Ok(SsdQueryPenalty {
            detector,
            extractor,
            threshold,
            weight,
        })
    }

    /// The detector's score of every image of `batch`.
    pub fn scores(&self, batch: &ImageBatch) -> Result<Vec<f64>> {
        self.detector.score(&extract(self.extractor, batch)?)
    }
}

impl QueryPenalty for SsdQueryPenalty<'_> {
    fn name(&self) -> String {
        penalty_name(self.extractor, self.detector.clusters.len(), self.threshold)
    }

    fn weight(&self) -> f32 {
        self.weight
    }

    fn penalties(
        &self,
        batch: &ImageBatch,
    ) -> std::result::Result<Vec<f64>, Box<dyn std::error::Error + Send + Sync>> {
        let t = self.threshold;
        Ok(self
            .scores(batch)?
            .into_iter()
            .map(|s| (s - t).max(0.0) / t)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{VictimFeatures, extract};
    use crate::ssd::SsdConfig;
    use advclust_core::{ImageBatch, ParamGuard, SeededRng};
    use rand::SeedableRng;

    #[test]
    fn tensor_scores_equal_the_detector_and_the_penalty_has_a_gradient() {
        let device = burn::tensor::Device::default();
        let victim = advclust_models::pretrained_cc_mnist(&device).unwrap();
        let victim = advclust_models::Victim::from(victim);
        let mut rng = SeededRng::seed_from_u64(0);
        let noise = advclust_core::standard_normal(&mut rng, 48 * 784);
        let data: Vec<f32> = noise
            .iter()
            .map(|v| (0.5 + 0.2 * v).clamp(0.0, 1.0))
            .collect();
        let images = ImageBatch::unit(data, [48, 1, 28, 28]).unwrap();
        let plain = VictimFeatures::new(&victim, &device);
        let features = extract(&plain, &images).unwrap();
        let ssd = SsdDetector::fit(&features, &SsdConfig::new(2).check().unwrap()).unwrap();
        let expected = ssd.score(&features).unwrap();
        let frozen = Box::new(VictimFeatures::frozen(&victim, &device));
        let penalty = SsdPenalty::new(&ssd, frozen, 1.0, 2.0).unwrap();
        let x = images.to_tensor(&device.clone().autodiff()).require_grad();
        let scores: Vec<f32> =
            advclust_core::tensor_to_vec(penalty.scores(x.clone()).into_data()).unwrap();
        for (a, b) in scores.iter().zip(&expected) {
            assert!(
                (f64::from(*a) - b).abs() <= 1e-3 * b.abs().max(1.0),
                "{a} vs {b}"
            );
        }
        let grads = penalty.penalty(x.clone()).backward();
        let g = x.grad(&grads).expect("a gradient reaches the images");
        let g: Vec<f32> = advclust_core::tensor_to_vec(g.into_data()).unwrap();
        assert!(g.iter().any(|v| *v != 0.0));
        assert!(SsdPenalty::new(&ssd, Box::new(plain), 0.0, 1.0).is_err());
    }
}
