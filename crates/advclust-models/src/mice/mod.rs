//! MiCE (Tsai, Li, Zhu, ICLR 2021), "Mixture of Contrastive Experts": one backbone under `K`
//! expert heads (an L2-normalised embedding per cluster) and a gating head. The gating prior
//! `pi(k | x)` is a softmax of the gating embedding against `K` fixed Max-Mahalanobis
//! prototypes ([`max_mahalanobis_centres`]); each expert `k` is an instance-discrimination
//! model whose positive is the momentum teacher's embedding of the same image and whose
//! negatives are a queue of past teacher embeddings, both shifted by the expert's prototype
//! `mu_k`. The posterior `r(k | x)` combines the two; training maximises the ELBO, and an
//! M-step re-estimates every `mu_k` from the images assigned to `k` after each epoch.
//!
//! Memberships are the posterior `r` (the "MiCE" prediction); the attack's phi is the log
//! gating prior `log pi`, as the authors' attack reads it. Unlike the reference, whose forward
//! pass enqueues its keys even at evaluation (so its outputs depend on the history of calls),
//! inference here is a deterministic function of the image: the queue is frozen outside
//! training. The teacher, the queue and the prototypes are part of the module, so a saved
//! model and a checkpoint hold all of them.

pub mod train;

use advclust_core::SeededRng;
use advclust_core::{DifferentiableClusterModel, ParamGuard};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::norm::{
    add_layer, check_at_most, check_input_shape, check_normalization, check_num_clusters,
    l2_normalize_host_rows, l2_normalize_rows, normalize,
};
use crate::resnet::{ResNet, ResNetConfig, linear};
use crate::victim::{ClusterModelExt, TrainingSummary, VictimKind, VictimModel};

pub use train::{MiceTrainConfig, MiceTrainReport, finetune_mice, mice_log_evidence, train_mice};

/// Largest negatives queue a description may ask for (entries; each holds `K x d` values).
pub const MAX_QUEUE: usize = 1 << 20;

/// Everything needed to rebuild a [`MiceModel`] (saved as JSON next to its weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiceConfig {
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// Number of clusters (experts) `K`.
    pub num_clusters: usize,
    /// The ResNet backbone (student and teacher alike).
    pub backbone: ResNetConfig,
    /// Size `d` of every expert and gating embedding (128 in MiCE; at least `K`, which the
    /// Max-Mahalanobis construction needs).
    pub embedding_dim: usize,
    /// Entries `nu` of the negatives queue (16,384 in MiCE; must exceed the batch size).
    pub queue_size: usize,
    /// Temperature `tau` of the experts (1.0 in MiCE's commands).
    pub tau: f32,
    /// Temperature `kappa` of the gating prior (1.0 in MiCE's commands).
    pub kappa: f32,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by inside the model.
    pub std: Vec<f32>,
}

impl MiceConfig {
    /// MiCE for `[C, H, W]` images and `K` clusters on `backbone`: 32-d embeddings, a queue of
    /// 4,096, `tau = kappa = 1`, no normalisation.
    pub fn new(input_shape: [usize; 3], num_clusters: usize, backbone: ResNetConfig) -> Self {
        MiceConfig {
            input_shape,
            num_clusters,
            backbone,
            embedding_dim: 32,
            queue_size: 4096,
            tau: 1.0,
            kappa: 1.0,
            mean: vec![0.0; input_shape[0]],
            std: vec![1.0; input_shape[0]],
        }
    }

    /// Validates the architecture and counts its values (student, teacher, prototypes and
    /// queue), with checked arithmetic and every size bounded, before anything is allocated.
    pub fn parameter_count(&self) -> Result<u64> {
        check_input_shape(self.input_shape)?;
        check_num_clusters(self.num_clusters)?;
        check_normalization(&self.mean, &self.std, self.input_shape[0])?;
        let (k, d) = (self.num_clusters, self.embedding_dim);
        if d < k {
            return Err(ModelError::invalid(
                "embedding_dim",
                format!("the Max-Mahalanobis prototypes need d >= K, got d = {d} for K = {k}"),
            ));
        }
        check_at_most("queue_size", self.queue_size, MAX_QUEUE)?;
        if self.queue_size < 2 {
            return Err(ModelError::invalid(
                "queue_size",
                "need at least 2 negatives",
            ));
        }
        for (name, t) in [("tau", self.tau), ("kappa", self.kappa)] {
            if !(t.is_finite() && t > 0.0) {
                return Err(ModelError::invalid(name, "must be finite and positive"));
            }
        }
        let f = self.backbone.feature_dim();
        let expert_width = k
            .checked_mul(d)
            .ok_or_else(|| ModelError::invalid("embedding_dim", "K x d overflows"))?;
        let mut net = self.backbone.parameter_count()?;
        add_layer(&mut net, "embedding_dim", f, expert_width)?;
        add_layer(&mut net, "embedding_dim", f, d)?;
        let mut total = net
            .checked_add(net)
            .ok_or_else(|| ModelError::invalid("backbone", "parameter count overflows"))?;
        // Prototypes `[K, d]` and the queue `[nu, K, d]`.
        add_layer(&mut total, "embedding_dim", k, d)?;
        let queue = (self.queue_size as u64)
            .checked_mul(expert_width as u64)
            .filter(|&q| q <= crate::norm::MAX_PARAMETERS)
            .ok_or_else(|| ModelError::invalid("queue_size", "the queue is too large"))?;
        total = total
            .checked_add(queue)
            .filter(|&t| t <= crate::norm::MAX_PARAMETERS)
            .ok_or_else(|| ModelError::invalid("queue_size", "the model is too large"))?;
        self.backbone.validate(self.input_shape)?;
        Ok(total)
    }
}

crate::error::validated_architecture!(MiceConfig);

/// The `K` Max-Mahalanobis centres in `R^d` (row-major `[K, d]`): unit vectors with pairwise
/// dot products `-1 / (K - 1)`, the most separated `K` points on the sphere (MiCE's fixed
/// gating prototypes). Row 1 is `e1`; row `i` takes, for every earlier row `j`, the entry that
/// makes their dot product `-1/(K-1)`, then entry `i` completes its norm to 1.
///
/// Errors: `K < 2` or `d < K`.
pub fn max_mahalanobis_centres(k: usize, d: usize) -> Result<Vec<f64>> {
    if k < 2 || d < k {
        return Err(ModelError::invalid(
            "embedding_dim",
            format!("Max-Mahalanobis centres need 2 <= K <= d, got K = {k}, d = {d}"),
        ));
    }
    let target = -1.0 / (k as f64 - 1.0);
    let mut rows = vec![0.0f64; k * d];
    rows[0] = 1.0;
    for i in 1..k {
        for j in 0..i {
            let dot: f64 = (0..j).map(|t| rows[i * d + t] * rows[j * d + t]).sum();
            rows[i * d + j] = (target - dot) / rows[j * d + j];
        }
        let norm2: f64 = (0..i).map(|t| rows[i * d + t].powi(2)).sum();
        rows[i * d + i] = (1.0 - norm2).max(0.0).sqrt();
    }
    Ok(rows)
}

/// One MiCE network (the student, or the momentum teacher): backbone, the `K` expert heads as
/// one `feature -> K x d` layer, and the gating head `feature -> d`.
#[derive(Module, Debug)]
pub struct MiceNet {
    backbone: ResNet,
    experts: Linear,
    gating: Linear,
}

/// The L2-normalised outputs of a [`MiceNet`].
#[derive(Debug, Clone)]
pub struct MiceEmbeddings {
    /// Expert embeddings `[N, K, d]`, each unit length.
    pub experts: Tensor<3>,
    /// Gating embedding `[N, d]`, unit length.
    pub gating: Tensor<2>,
}

impl MiceNet {
    fn new(config: &MiceConfig, backbone: ResNet, rng: &mut SeededRng, device: &Device) -> Self {
        let f = config.backbone.feature_dim();
        let (k, d) = (config.num_clusters, config.embedding_dim);
        MiceNet {
            backbone,
            experts: linear(f, k * d, rng, device),
            gating: linear(f, d, rng, device),
        }
    }

    /// Backbone features `[N, feature_dim]` of normalised images.
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(x)
    }

    fn embed_features(&self, h: Tensor<2>, k: usize) -> MiceEmbeddings {
        let n = h.dims()[0];
        let e = self.experts.forward(h.clone());
        let d = e.dims()[1] / k;
        let e = e.reshape([n, k, d]);
        let norm = e.clone().square().sum_dim(2).sqrt().clamp_min(1e-12);
        MiceEmbeddings {
            experts: e / norm,
            gating: l2_normalize_rows(self.gating.forward(h)),
        }
    }
}

/// A MiCE clustering model: student, momentum teacher, expert prototypes `mu` and the frozen
/// negatives queue.
///
/// Images go in as `[N, C, H, W]` in `[0, 1]` (normalised inside). Implements
/// [`DifferentiableClusterModel`]: memberships = the posterior `r` (student experts and gating,
/// teacher keys, queue fixed), phi = the log gating prior.
#[derive(Module, Debug)]
pub struct MiceModel {
    student: MiceNet,
    teacher: MiceNet,
    /// Expert prototypes `mu` `[K, d]`, unit rows, set by the M-step (no gradient).
    prototypes: Param<Tensor<2>>,
    /// Teacher expert embeddings of past batches `[nu, K, d]`, newest first (no gradient).
    queue: Param<Tensor<3>>,
    #[module(skip)]
    config: MiceConfig,
    /// The fixed Max-Mahalanobis gating centres, row-major `[K, d]` (derived from the config).
    #[module(skip)]
    centres: Vec<f32>,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

fn random_unit_rows(rng: &mut SeededRng, rows: usize, d: usize) -> Vec<f32> {
    let mut v = advclust_core::standard_normal(rng, rows * d);
    l2_normalize_host_rows(&mut v, d);
    v
}

impl MiceModel {
    /// A freshly initialised model (student from a `SeededRng` seeded with `seed`, the teacher
    /// a copy of it, random unit prototypes and queue entries).
    pub fn new(config: &MiceConfig, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = SeededRng::seed_from_u64(seed);
        let backbone = config.backbone.init(&mut rng, device);
        Self::with_backbone(config, backbone, &mut rng, device)
    }

    /// A model on a given (pretrained) backbone, fresh heads drawn from `rng`.
    pub(crate) fn with_backbone(
        config: &MiceConfig,
        backbone: ResNet,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<Self> {
        let config = config.check_ref()?.clone();
        let (k, d, nu) = (config.num_clusters, config.embedding_dim, config.queue_size);
        let centres = max_mahalanobis_centres(k, d)?
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let student = MiceNet::new(&config, backbone, rng, device);
        let teacher = student.clone().no_grad();
        let prototypes =
            Param::from_data(TensorData::new(random_unit_rows(rng, k, d), [k, d]), device)
                .set_require_grad(false);
        let queue = random_unit_rows(rng, nu * k, d);
        let queue =
            Param::from_data(TensorData::new(queue, [nu, k, d]), device).set_require_grad(false);
        Ok(MiceModel {
            student,
            teacher,
            prototypes,
            queue,
            config,
            centres,
            training: None,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &MiceConfig {
        &self.config
    }

    /// Student backbone features `[N, feature_dim]` of `[0, 1]` images.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.student.features(self.normalize(images))
    }

    fn normalize(&self, images: Tensor<4>) -> Tensor<4> {
        let dims = images.dims();
        assert!(
            self.check_input(dims).is_ok(),
            "MiceModel takes [N, {:?}] images, got {dims:?}",
            self.config.input_shape
        );
        normalize(images, &self.config.mean, &self.config.std)
    }

    /// Student embeddings of `[0, 1]` images.
    pub fn student_embeddings(&self, images: Tensor<4>) -> MiceEmbeddings {
        let h = self.student.features(self.normalize(images));
        self.student.embed_features(h, self.config.num_clusters)
    }

    /// Teacher expert embeddings `[N, K, d]` of `[0, 1]` images.
    pub fn teacher_keys(&self, images: Tensor<4>) -> Tensor<3> {
        let h = self.teacher.features(self.normalize(images));
        self.teacher
            .embed_features(h, self.config.num_clusters)
            .experts
    }

    /// Log gating prior `log pi` `[N, K]` of gating embeddings `[N, d]`.
    pub fn log_prior(&self, gating: Tensor<2>) -> Tensor<2> {
        let (k, d) = (self.config.num_clusters, self.config.embedding_dim);
        let centres = Tensor::<2>::from_data(
            TensorData::new(self.centres.clone(), [k, d]),
            &gating.device(),
        );
        log_softmax(
            gating
                .matmul(centres.transpose())
                .div_scalar(self.config.kappa),
            1,
        )
    }

    /// Each expert's log likelihood `log phi_k` `[N, K]` of its positive pair (expert
    /// embeddings `f` and teacher keys `v`, both `[N, K, d]`) against the queue, with the
    /// prototypes `mu` shifting both sides (MiCE's `(f.v + v.mu) / tau` against
    /// `(q.f + q.mu) / tau`).
    pub fn log_expert_likelihood(&self, f: Tensor<3>, v: Tensor<3>) -> Tensor<2> {
        let [n, k, d] = f.dims();
        let tau = self.config.tau;
        let mu = l2_normalize_rows(self.prototypes.val()).reshape([1, k, d]);
        let pos = ((f.clone() * v.clone()).sum_dim(2) + (v * mu.clone()).sum_dim(2))
            .reshape([n, k])
            .div_scalar(tau);
        let queue = self.queue.val();
        let nu = queue.dims()[0];
        // [K, N, d] x [K, d, nu] -> [K, N, nu]
        let fq = f.swap_dims(0, 1).matmul(queue.clone().permute([1, 2, 0]));
        let qmu = (queue * mu)
            .sum_dim(2)
            .reshape([nu, k])
            .transpose()
            .reshape([k, 1, nu]);
        let neg = (fq + qmu).div_scalar(tau).swap_dims(0, 1); // [N, K, nu]
        let all = Tensor::cat(vec![pos.clone().reshape([n, k, 1]), neg], 2);
        let max = all.clone().max_dim(2).detach();
        let lse = (all - max.clone()).exp().sum_dim(2).log() + max;
        pos - lse.reshape([n, k])
    }

    /// The log posterior `log r` `[N, K]` and the log prior `log pi` of `[0, 1]` images, every
    /// view the image itself (MiCE's evaluation).
    pub fn log_posterior_and_prior(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let s = self.student_embeddings(images.clone());
        let v = self.teacher_keys(images);
        let log_pi = self.log_prior(s.gating);
        let joint = log_pi.clone() + self.log_expert_likelihood(s.experts, v);
        (log_softmax(joint, 1), log_pi)
    }

    /// [`MiceModel::log_posterior_and_prior`] with a typed error for a wrong input shape.
    pub fn try_posterior(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        self.check_input(images.dims())?;
        Ok(self.log_posterior_and_prior(images).0.exp())
    }

    pub(crate) fn teacher(&self) -> &MiceNet {
        &self.teacher
    }

    pub(crate) fn student(&self) -> &MiceNet {
        &self.student
    }

    /// The model with only the student trainable (after `unfreeze`: the teacher, queue and
    /// prototypes are moved by the training step, never by the optimiser).
    pub(crate) fn for_training(mut self) -> Self {
        self.teacher = self.teacher.no_grad();
        self.queue = self.queue.set_require_grad(false);
        self.prototypes = self.prototypes.set_require_grad(false);
        self
    }

    pub(crate) fn with_teacher(mut self, teacher: MiceNet) -> Self {
        self.teacher = teacher;
        self
    }

    pub(crate) fn with_queue(mut self, queue: Tensor<3>) -> Self {
        self.queue = self.queue.map(|_| queue.detach());
        self
    }

    pub(crate) fn with_prototypes(mut self, prototypes: Tensor<2>) -> Self {
        self.prototypes = self.prototypes.map(|_| prototypes.detach());
        self
    }

    pub(crate) fn prototype_values(&self) -> Tensor<2> {
        self.prototypes.val()
    }

    pub(crate) fn queue(&self) -> Tensor<3> {
        self.queue.val()
    }
}

impl VictimModel for MiceModel {
    const KIND: VictimKind = VictimKind::Mice;
    type Config = MiceConfig;

    fn victim_config(&self) -> &MiceConfig {
        &self.config
    }

    fn from_config(config: &MiceConfig, device: &Device) -> Result<Self> {
        MiceModel::new(config, 0, device)
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

impl DifferentiableClusterModel for MiceModel {
    fn num_clusters(&self) -> usize {
        self.config.num_clusters
    }

    fn input_shape(&self) -> [usize; 3] {
        self.config.input_shape
    }

    /// The posterior `r` (queue frozen). Panics on a wrong input shape (the oracle checks).
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        self.log_posterior_and_prior(images).0.exp()
    }

    /// The log gating prior `log pi` (the authors' phi).
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        self.log_prior(self.student_embeddings(images).gating)
    }

    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let (log_r, log_pi) = self.log_posterior_and_prior(images);
        (log_r.exp(), log_pi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_mahalanobis_centres_are_unit_and_equiangular() {
        for (k, d) in [(2, 2), (10, 10), (10, 128), (15, 32), (20, 20)] {
            let c = max_mahalanobis_centres(k, d).unwrap();
            for i in 0..k {
                for j in 0..k {
                    let dot: f64 = (0..d).map(|t| c[i * d + t] * c[j * d + t]).sum();
                    let want = if i == j { 1.0 } else { -1.0 / (k as f64 - 1.0) };
                    assert!((dot - want).abs() < 1e-9, "K={k} d={d} ({i},{j}): {dot}");
                }
            }
        }
        assert!(max_mahalanobis_centres(10, 9).is_err());
        assert!(max_mahalanobis_centres(1, 9).is_err());
    }
}
