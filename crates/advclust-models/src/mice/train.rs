//! MiCE training on the shared runner: three augmented views per image (student experts,
//! teacher keys, gating), the ELBO, then after every optimiser step the momentum update of
//! the teacher and the FIFO enqueue of the batch's keys, and after every epoch the M-step that
//! re-estimates the expert prototypes.
//!
//! CPU version (see `TRAINING.md`): the backbone starts from the project's SimCLR pretext
//! (MiCE trains a ResNet-34 from scratch for 1,000 epochs), Adam instead of SGD at lr 1.0, a
//! faster teacher (momentum 0.99 instead of 0.999, for a run of about a thousand steps), and
//! prototypes that only the M-step moves (the reference also hands its uninitialised
//! prototype tensor to the optimiser, with weight decay).

use advclust_core::{ImageBatch, SeededRng, tensor_to_vec};
use advclust_metrics::ClusteringScores;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::error::{ModelError, Result};
use crate::mice::{MiceConfig, MiceModel, MiceNet};
use crate::norm::l2_normalize_host_rows;
use crate::pretext::Pretext;
use crate::runner::{
    Evaluation, RunConfig, RunReport, StepLoss, TrainingStep, gather_images, run_training,
};
use crate::scan::heads::check_pretext_data;
use crate::victim::TrainingSummary;

/// Everything a MiCE run needs besides the data and the pretext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiceTrainConfig {
    /// Name of the training set.
    pub dataset: String,
    /// Clusters (experts) `K`.
    pub num_clusters: usize,
    /// Size of every embedding (at least `K`).
    pub embedding_dim: usize,
    /// Entries of the negatives queue (more than the batch size).
    pub queue_size: usize,
    /// Expert temperature `tau`.
    pub tau: f32,
    /// Gating temperature `kappa`.
    pub kappa: f32,
    /// Momentum of the teacher's exponential moving average (0.999 in MiCE).
    pub momentum: f64,
    /// Augmentation of the three views.
    pub augment: AugmentConfig,
    /// The run.
    pub run: RunConfig,
}

impl MiceTrainConfig {
    /// MiCE's settings where they fit a CPU: 32-d embeddings, a queue of 2,048 (a fifth of a
    /// 10,000-image set, as MiCE's 16,384 of 60,000), `tau = kappa =
    /// 1`, teacher momentum 0.99, 30 epochs of batch 256 with Adam 1e-3.
    pub fn new(num_clusters: usize, channels: usize) -> Self {
        MiceTrainConfig {
            dataset: "unnamed".into(),
            num_clusters,
            embedding_dim: 32,
            queue_size: 2048,
            tau: 1.0,
            kappa: 1.0,
            momentum: 0.99,
            augment: AugmentConfig::for_channels(channels),
            run: RunConfig::new(30, 256, 1e-3),
        }
    }

    fn validate(&self, n: usize) -> Result<()> {
        if self.num_clusters < 2 || self.num_clusters > n {
            return Err(ModelError::invalid(
                "num_clusters",
                format!(
                    "need 2 <= K <= n, got K = {} for n = {n}",
                    self.num_clusters
                ),
            ));
        }
        if self.run.batch_size >= self.queue_size {
            return Err(ModelError::invalid(
                "queue_size",
                format!(
                    "the queue ({}) must hold more than a batch ({})",
                    self.queue_size, self.run.batch_size
                ),
            ));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(ModelError::invalid("momentum", "must be in [0, 1)"));
        }
        self.augment.validate()?;
        self.run.validate()
    }
}

/// The result of a MiCE run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiceTrainReport {
    /// The configuration used.
    pub config: MiceTrainConfig,
    /// The training stage.
    pub run: RunReport,
    /// Scores of the final model's posterior argmax (the MiCE prediction), given labels.
    pub final_scores: Option<ClusteringScores>,
    /// Scores of the argmax of the gating prior alone (MiCE's "PI cluster" accuracy).
    pub prior_scores: Option<ClusteringScores>,
    /// Images per predicted cluster of the final model.
    pub final_cluster_sizes: Vec<usize>,
}

/// `log sum_k pi_k phi_k` per row of the log prior and the experts' log likelihoods (`[N, K]`
/// each): MiCE's ELBO `sum_k r_k (log pi_k + log phi_k - log r_k)` at its exact posterior
/// `r = pi phi / sum pi phi`, where it equals the log evidence (value and gradient alike).
pub fn mice_log_evidence(log_prior: Tensor<2>, log_likelihood: Tensor<2>) -> Tensor<1> {
    let joint = log_prior + log_likelihood;
    let n = joint.dims()[0];
    let max = joint.clone().max_dim(1).detach();
    ((joint - max.clone()).exp().sum_dim(1).log() + max).reshape([n])
}

/// Collects every float tensor of a module (parameters and running statistics), flattened,
/// in visiting order.
struct CollectFloats(Vec<Tensor<1>>);

impl ModuleVisitor for CollectFloats {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().detach().flatten::<1>(0, D - 1));
    }
}

/// `teacher <- m teacher + (1 - m) student`, tensor by tensor in visiting order.
struct MomentumUpdate {
    student: std::vec::IntoIter<Tensor<1>>,
    momentum: f64,
}

impl ModuleMapper for MomentumUpdate {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(s) = self.student.next() else {
            return param;
        };
        let m = self.momentum;
        param.map(|t| {
            let shape = t.shape();
            (t.detach().mul_scalar(m) + s.reshape(shape).mul_scalar(1.0 - m)).detach()
        })
    }
}

/// The momentum update of `teacher` towards `student` (two nets of one architecture).
pub(crate) fn momentum_update(teacher: MiceNet, student: &MiceNet, momentum: f64) -> MiceNet {
    let mut collect = CollectFloats(Vec::new());
    student.visit(&mut collect);
    teacher.map(&mut MomentumUpdate {
        student: collect.0.into_iter(),
        momentum,
    })
}

/// One evaluation-mode pass: posterior and prior (row-major `[N, K]`) and teacher keys
/// (`[N, K, d]`), in chunks of 500.
struct PosteriorPass {
    posterior: Vec<f32>,
    prior: Vec<f32>,
    keys: Vec<f32>,
}

impl PosteriorPass {
    fn of(model: &MiceModel, images: &ImageBatch, device: &Device) -> Result<Self> {
        let device = device.clone().inner();
        let model = model.valid().to_device(&device);
        let mut pass = PosteriorPass {
            posterior: Vec::new(),
            prior: Vec::new(),
            keys: Vec::new(),
        };
        for chunk in images.chunks(500) {
            let x = chunk.to_tensor(&device);
            let s = model.student_embeddings(x.clone());
            let v = model.teacher_keys(x);
            let log_pi = model.log_prior(s.gating);
            let log_phi = model.log_expert_likelihood(s.experts, v.clone());
            let log_r = burn::tensor::activation::log_softmax(log_pi.clone() + log_phi, 1);
            pass.posterior
                .extend(tensor_to_vec(log_r.exp().into_data())?);
            pass.prior.extend(tensor_to_vec(log_pi.exp().into_data())?);
            pass.keys.extend(tensor_to_vec(v.into_data())?);
        }
        Ok(pass)
    }

    /// MiCE's M-step: `mu_k = normalise(sum of the keys v_ik of the images whose posterior
    /// argmax is k)`; a cluster with no image keeps its prototype (`previous`, row-major).
    fn prototypes(&self, k: usize, d: usize, previous: &[f32]) -> Vec<f32> {
        let assigned = advclust_core::argmax_rows(&self.posterior, k);
        let mut sums = vec![0.0f32; k * d];
        let mut counts = vec![0usize; k];
        for (i, &c) in assigned.iter().enumerate() {
            counts[c] += 1;
            let key = &self.keys[(i * k + c) * d..(i * k + c + 1) * d];
            sums[c * d..(c + 1) * d]
                .iter_mut()
                .zip(key)
                .for_each(|(s, v)| *s += v);
        }
        for c in 0..k {
            if counts[c] == 0 {
                sums[c * d..(c + 1) * d].copy_from_slice(&previous[c * d..(c + 1) * d]);
            }
        }
        l2_normalize_host_rows(&mut sums, d);
        sums
    }
}

struct MiceStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    config: &'a MiceTrainConfig,
    /// The teacher keys of the last step, enqueued after its optimiser step.
    pending_keys: Option<Tensor<3>>,
}

impl TrainingStep<MiceModel> for MiceStep<'_> {
    fn loss(
        &mut self,
        model: &MiceModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let [_, c, h, w] = self.images.dims();
        let b = batch.len();
        let dims = [b, c, h, w];
        let host = gather_images(self.images.data(), c * h * w, batch);
        let aug = &self.config.augment;
        // x1 (student experts) and x3 (gating) go through the student together; x2 to the teacher.
        let mut student_views = augment_batch(&host, dims, aug, rng)?;
        let teacher_view = augment_batch(&host, dims, aug, rng)?;
        student_views.extend(augment_batch(&host, dims, aug, rng)?);
        let xs = Tensor::<4>::from_data(TensorData::new(student_views, [2 * b, c, h, w]), device);
        let xt = Tensor::<4>::from_data(TensorData::new(teacher_view, dims), device);
        let s = model.student_embeddings(xs);
        let v = model.teacher_keys(xt).detach();
        let f = s.experts.narrow(0, 0, b);
        let log_pi = model.log_prior(s.gating.narrow(0, b, b));
        let log_phi = model.log_expert_likelihood(f, v.clone());
        let evidence = mice_log_evidence(log_pi.clone(), log_phi);
        let mean_prior = log_pi.detach().exp().mean_dim(0).clamp_min(1e-12);
        let prior_entropy = (mean_prior.clone() * mean_prior.log()).sum().neg();
        self.pending_keys = Some(v);
        Ok(StepLoss {
            total: evidence.mean().neg(),
            parts: vec![("entropy of the mean prior", prior_entropy)],
        })
    }

    fn after_step(&mut self, model: MiceModel, _device: &Device) -> Result<MiceModel> {
        let teacher = momentum_update(
            model.teacher().clone(),
            model.student(),
            self.config.momentum,
        );
        let model = model.with_teacher(teacher);
        let Some(keys) = self.pending_keys.take() else {
            return Ok(model);
        };
        let queue = model.queue();
        let (nu, b) = (queue.dims()[0], keys.dims()[0]);
        let queue = Tensor::cat(vec![keys, queue.narrow(0, 0, nu - b)], 0);
        Ok(model.with_queue(queue))
    }

    fn end_epoch(&mut self, model: MiceModel, _epoch: usize, device: &Device) -> Result<MiceModel> {
        let pass = PosteriorPass::of(&model, self.images, device)?;
        let (k, d) = (model.config().num_clusters, model.config().embedding_dim);
        let previous = tensor_to_vec(model.prototype_values().into_data())?;
        let mu = pass.prototypes(k, d, &previous);
        Ok(model.with_prototypes(Tensor::from_data(TensorData::new(mu, [k, d]), device)))
    }

    fn evaluate(&mut self, model: &MiceModel, device: &Device) -> Result<Option<Evaluation>> {
        self.labels
            .map(|l| {
                let pass = PosteriorPass::of(model, self.images, device)?;
                let k = model.config().num_clusters;
                let mut e = Evaluation::of_memberships(&pass.posterior, k, Some(l))?;
                if let Some(p) = Evaluation::of_memberships(&pass.prior, k, Some(l))?.scores {
                    e.metrics.push(("prior NMI".into(), p.nmi));
                }
                Ok(e)
            })
            .transpose()
    }
}

/// The MiCE stage from `model` (on the training device) on `images`.
fn run_mice(
    stage: &str,
    model: MiceModel,
    config: &MiceTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    finetuned: bool,
    device_train: &Device,
) -> Result<(MiceModel, RunReport)> {
    let mut step = MiceStep {
        images,
        labels,
        config,
        pending_keys: None,
    };
    let fingerprint = serde_json::json!({
        "model": model.config(), "augment": config.augment, "momentum": config.momentum,
        "finetuned": finetuned,
    });
    run_training(
        stage,
        model,
        images.len(),
        &config.run,
        fingerprint,
        &mut step,
        device_train,
        &mut |_| {},
    )
}

/// Fine-tunes a trained MiCE model with its own ELBO and M-step (teacher, queue and prototypes
/// continue from the model's) on `images`: the stage of [`train_mice`] started from `model`.
/// Adversarial retraining uses it on clean + perturbed images. The architecture is the
/// model's; `config`'s architecture fields are ignored.
pub fn finetune_mice(
    model: &MiceModel,
    config: &MiceTrainConfig,
    images: &ImageBatch,
    device: &Device,
) -> Result<MiceModel> {
    config.validate(images.len())?;
    crate::pretext::check_images(images, model.config().input_shape)?;
    let device_train = config.run.training_device(device);
    let start = model
        .valid()
        .to_device(&device_train)
        .unfreeze()
        .train()
        .for_training();
    let (tuned, _) = run_mice(
        "mice-finetune",
        start,
        config,
        images,
        None,
        true,
        &device_train,
    )?;
    Ok(tuned.valid())
}

/// Trains MiCE on `images` (values in `[0, 1]`), its backbone starting from `pretext` (trained
/// on the same images; its normalisation is kept). `labels` (optional) only score it.
///
/// Errors: a pretext for another image shape or set ([`ModelError::PretextMismatch`]),
/// `K < 2` or `K > n`, an embedding smaller than `K`, a queue not larger than a batch, a
/// momentum outside `[0, 1)`, a diverged loss (the last checkpoint is kept).
pub fn train_mice(
    config: &MiceTrainConfig,
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(MiceModel, MiceTrainReport)> {
    let n = images.len();
    config.validate(n)?;
    check_pretext_data(pretext, images, labels)?;
    let pc = pretext.model.config();
    let model_config = MiceConfig {
        embedding_dim: config.embedding_dim,
        queue_size: config.queue_size,
        tau: config.tau,
        kappa: config.kappa,
        mean: pc.mean.clone(),
        std: pc.std.clone(),
        ..MiceConfig::new(pc.input_shape, config.num_clusters, pc.backbone.clone())
    };
    model_config.parameter_count()?;
    let device_train = config.run.training_device(device);
    let mut rng = SeededRng::seed_from_u64(config.run.seed);
    let backbone = crate::artifact::load_weights(
        model_config.backbone.init(&mut rng, &device_train),
        crate::artifact::weights_bytes(pretext.model.backbone())?,
        "pretext backbone",
    )?;
    let model = MiceModel::with_backbone(&model_config, backbone, &mut rng, &device_train)?;
    let (model, run) = run_mice("mice", model, config, images, labels, false, &device_train)?;
    let model = model.valid();
    let pass = PosteriorPass::of(&model, images, device)?;
    let k = config.num_clusters;
    let final_eval = Evaluation::of_memberships(&pass.posterior, k, labels)?;
    let prior_eval = Evaluation::of_memberships(&pass.prior, k, labels)?;
    let summary = TrainingSummary::of_run(
        &config.dataset,
        n,
        &config.run,
        run.train_seconds,
        final_eval.scores,
    );
    let model = crate::victim::VictimModel::with_training(model, Some(summary));
    let report = MiceTrainReport {
        config: config.clone(),
        run,
        final_scores: final_eval.scores,
        prior_scores: prior_eval.scores,
        final_cluster_sizes: final_eval.cluster_sizes.unwrap_or_default(),
    };
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::ResNetConfig;

    fn tiny(device: &Device) -> MiceModel {
        let mut config = MiceConfig::new([1, 8, 8], 3, ResNetConfig::new(1, &[4, 8], 1));
        config.embedding_dim = 4;
        config.queue_size = 16;
        MiceModel::new(&config, 7, device).unwrap()
    }

    #[test]
    fn log_evidence_equals_the_elbo_at_the_posterior() {
        let device = Device::flex();
        let lp = Tensor::<2>::from_data(
            TensorData::new(vec![-0.2f32, -1.9, -3.0, -1.0, -0.7, -2.1], [2, 3]),
            &device,
        );
        let ll = Tensor::<2>::from_data(
            TensorData::new(vec![-4.0f32, -2.5, -0.3, -1.1, -6.0, -2.2], [2, 3]),
            &device,
        );
        let got = tensor_to_vec(mice_log_evidence(lp.clone(), ll.clone()).into_data()).unwrap();
        let lp = tensor_to_vec(lp.into_data()).unwrap();
        let ll = tensor_to_vec(ll.into_data()).unwrap();
        for i in 0..2 {
            let joint: Vec<f64> = (0..3)
                .map(|k| (lp[i * 3 + k] + ll[i * 3 + k]) as f64)
                .collect();
            let z: f64 = joint.iter().map(|j| j.exp()).sum();
            let elbo: f64 = joint
                .iter()
                .map(|j| {
                    let r = j.exp() / z;
                    r * (j - r.ln())
                })
                .sum();
            assert!((got[i] as f64 - elbo).abs() < 1e-5, "{} vs {elbo}", got[i]);
        }
    }

    #[test]
    fn momentum_update_moves_the_teacher_a_fraction_of_the_way() {
        let device = Device::flex();
        let a = tiny(&device);
        let b = MiceModel::new(a.config(), 8, &device).unwrap();
        let floats = |net: &MiceNet| {
            let mut c = CollectFloats(Vec::new());
            net.visit(&mut c);
            c.0.into_iter()
                .flat_map(|t| tensor_to_vec(t.into_data()).unwrap())
                .collect::<Vec<f32>>()
        };
        let (t0, s) = (floats(a.teacher()), floats(b.student()));
        let moved = floats(&momentum_update(a.teacher().clone(), b.student(), 0.9));
        assert_eq!(moved.len(), t0.len());
        for ((m, t), s) in moved.iter().zip(&t0).zip(&s) {
            assert!((m - (0.9 * t + 0.1 * s)).abs() < 1e-6);
        }
    }

    #[test]
    fn m_step_averages_the_keys_of_each_cluster() {
        // Two images in cluster 1, none in cluster 0 (keeps its prototype), d = 2, K = 2.
        let pass = PosteriorPass {
            posterior: vec![0.1, 0.9, 0.2, 0.8],
            prior: vec![0.5; 4],
            keys: vec![9.0, 9.0, 1.0, 0.0, 9.0, 9.0, 0.0, 1.0],
        };
        let mu = pass.prototypes(2, 2, &[0.0, 1.0, 0.0, 0.0]);
        let h = 0.5f32.sqrt();
        assert_eq!(&mu[..2], &[0.0, 1.0]);
        assert!((mu[2] - h).abs() < 1e-6 && (mu[3] - h).abs() < 1e-6);
    }
}
