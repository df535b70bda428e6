//! The saddle-point trainer: one discriminator and one generator step per batch.

use std::io::IsTerminal;
use std::time::Instant;

use advclust_core::SeededRng;
use advclust_core::{
    Budgeted, ClusterId, ClusterOracle, CoreError, DifferentiableClusterModel, ImageBatch,
    ModelOracle, NormKind, QueryBudget, QueryCounts, QueryLedger, ThreatModel, ValueBox,
    answer_all, argmax_rows, derive_seed, per_sample_l2, tensor_to_vec,
};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::attack::{GeneratorSnapshot, TrainedAttack};
use crate::config::{
    AdvDistance, AttackSettings, CheckedAttackConfig, GradientSource, NORM_EPS, Stopping,
};
use crate::error::{AttackError, Result};
use crate::estimate::{AdvObjective, QueryEstimator, estimate_with_penalty};
use crate::nets::{Discriminator, Generator, check_image_shape};
use crate::report::{AttackReport, ConvergenceInfo, EpochStats};

mod checkpoint;
mod provider;
mod trainer;

pub use checkpoint::CheckpointPolicy;
pub use trainer::{AttackTrainer, train_backprop, train_query_only};

/// Sub-seed streams derived from the configuration seed.
const STREAM_GENERATOR: u64 = 1;
const STREAM_DISCRIMINATOR: u64 = 2;
const STREAM_SHUFFLE: u64 = 3;
const STREAM_ESTIMATOR: u64 = 4;

/// A progress bar, drawn only when enabled and stderr is a terminal.
pub(crate) fn progress_bar(len: u64, enabled: bool, prefix: &'static str) -> ProgressBar {
    if !(enabled && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(prefix);
    bar
}

/// `L_adv` between victim outputs `out` and reference outputs, as a differentiable scalar.
pub(crate) fn distance_tensor(
    out: Tensor<2>,
    reference: Tensor<2>,
    kind: AdvDistance,
) -> Tensor<1> {
    let n = out.dims()[0];
    let sq = (out - reference).powf_scalar(2.0).sum_dim(1);
    match kind {
        AdvDistance::HalfSquaredSum => sq.sum().mul_scalar(0.5),
        AdvDistance::L2Mean => sq.add_scalar(NORM_EPS).sqrt().sum().div_scalar(n as f64),
    }
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().into_scalar::<f32>() as f64
}

/// A differentiable victim moved to an autodiff device and frozen: no parameter gradients,
/// evaluation behaviour (BatchNorm running statistics, no dropout), gradients reach the input.
#[derive(Debug, Clone)]
pub struct FrozenVictim<M> {
    model: M,
}

impl<M: DifferentiableClusterModel> FrozenVictim<M> {
    /// Freezes a copy of `model` on the autodiff version of `device`.
    pub fn new(model: &M, device: &Device) -> Self {
        let ad = device.clone().autodiff();
        FrozenVictim {
            model: model.clone().to_device(&ad).freeze(),
        }
    }

    /// The frozen model.
    pub fn model(&self) -> &M {
        &self.model
    }
}

/// An extra term of the generator loss, minimised together with the GAN's own: what an
/// adaptive attacker adds to evade a defense it knows (e.g. a differentiable detector's score
/// of `x_adv` above its threshold). Object-safe; stateless between steps, so a resumed run
/// with the same penalty equals an uninterrupted one.
pub trait GeneratorPenalty: std::fmt::Debug {
    /// A short name, recorded in checkpoints' fingerprints.
    fn name(&self) -> String;
    /// Its weight in the generator loss.
    fn weight(&self) -> f32;
    /// The penalty of a batch of adversarial images `[N, C, H, W]` (on the autodiff device),
    /// a scalar differentiable with respect to them.
    fn penalty(&self, x_adv: Tensor<4>) -> Tensor<1>;
}

/// An extra term of the generator loss that the attacker can only query, not differentiate: a
/// value per image (e.g. how far a detector behind an API scores an image above its
/// threshold), minimised as its mean over the batch. Its gradient is estimated by the run's
/// query-only gradient source from the same perturbed copies as `L_adv`: each copy is sent to the
/// penalty once, in the same calls as to the victim (counted apart, as
/// [`crate::AttackReport::penalty_queries`]). Object-safe; stateless between steps.
pub trait QueryPenalty: std::fmt::Debug {
    /// A short name, recorded in checkpoints' fingerprints.
    fn name(&self) -> String;
    /// Its weight in the generator loss.
    fn weight(&self) -> f32;
    /// The penalty of every image of `batch`, one finite value per image.
    fn penalties(
        &self,
        batch: &ImageBatch,
    ) -> std::result::Result<Vec<f64>, Box<dyn std::error::Error + Send + Sync>>;
}

pub(crate) use provider::{AdvProvider, StepCtx};
use provider::{BackpropProvider, QueryProvider, check_clusters};

/// Losses and perturbation statistics of one training step.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct StepStats {
    /// Discriminator loss.
    pub d_loss: f64,
    /// Generator loss (with the `L_adv` value, exact or estimated).
    pub g_loss: f64,
    /// Generator GAN term `mean((D(x_adv)-1)^2)`.
    pub gan_loss: f64,
    /// `L_adv`.
    pub l_adv: f64,
    /// `L_pert`.
    pub l_pert: f64,
    /// Hinge `L_constraint` (0 when its weight is 0).
    pub l_constraint: f64,
    /// The weighted [`GeneratorPenalty`] (0 without one).
    #[serde(default)]
    pub l_penalty: f64,
    /// Sum over the batch of per-sample L2 norms of `x_adv - x`.
    pub sum_l2: f64,
    /// Largest per-sample L-infinity norm of `x_adv - x`.
    pub max_linf: f64,
    /// Images of the batch counted as attack successes (see [`EpochStats::success_rate`]).
    pub successes: usize,
    /// Images in the batch.
    pub images: usize,
}

/// The generator, the discriminator and their Adam optimisers: the state of an attack being
/// trained, advanced one batch at a time.
///
/// [`train_backprop`] and [`train_query_only`] drive it; use it directly for a custom loop or to
/// time a step.
pub struct AttackGan {
    generator: Option<Generator>,
    discriminator: Option<Discriminator>,
    opt_g: ModuleOptimizer,
    opt_d: ModuleOptimizer,
    adam: AdamConfig,
    settings: AttackSettings,
    threat: ThreatModel,
    image_shape: [usize; 3],
    device: Device,
    lr_factor: f64,
}

impl std::fmt::Debug for AttackGan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttackGan")
            .field("image_shape", &self.image_shape)
            .field("threat", &self.threat)
            .field("lr_factor", &self.lr_factor)
            .finish_non_exhaustive()
    }
}

impl AttackGan {
    /// Fresh networks (seeded from the configuration) for `[C, H, W]` images in `value_box`,
    /// trained on the autodiff version of `device`.
    pub fn new(
        config: &CheckedAttackConfig,
        image_shape: [usize; 3],
        value_box: ValueBox,
        device: &Device,
    ) -> Result<Self> {
        check_image_shape(image_shape)?;
        let device = device.clone().autodiff();
        let o = &config.optimizer;
        let adam = AdamConfig::new()
            .with_beta_1(o.beta1)
            .with_beta_2(o.beta2)
            .with_epsilon(o.epsilon);
        let c = image_shape[0];
        Ok(AttackGan {
            generator: Some(Generator::new(
                c,
                derive_seed(config.seed, STREAM_GENERATOR),
                &device,
            )),
            discriminator: Some(Discriminator::new(
                c,
                derive_seed(config.seed, STREAM_DISCRIMINATOR),
                &device,
            )),
            opt_g: adam.init(),
            opt_d: adam.init(),
            adam,
            settings: config.settings().clone(),
            threat: config.threat_model(value_box)?,
            image_shape,
            device,
            lr_factor: 1.0,
        })
    }

    /// The generator being trained.
    pub fn generator(&self) -> &Generator {
        self.generator
            .as_ref()
            .expect("generator present between steps")
    }

    /// The discriminator being trained.
    pub fn discriminator(&self) -> &Discriminator {
        self.discriminator
            .as_ref()
            .expect("discriminator present between steps")
    }

    /// The threat model.
    pub fn threat_model(&self) -> ThreatModel {
        self.threat
    }

    /// Current learning rates `(generator, discriminator)`.
    pub fn learning_rates(&self) -> (f64, f64) {
        let o = &self.settings.optimizer;
        (
            o.lr_generator * self.lr_factor,
            o.lr_discriminator * self.lr_factor,
        )
    }

    /// Applies the schedule for `epoch` (1-based): the milestone factor, and a fresh Adam state
    /// when a milestone starts at this epoch and the configuration resets state.
    pub fn begin_epoch(&mut self, epoch: usize) {
        let o = &self.settings.optimizer;
        self.lr_factor = o.factor_at(epoch);
        if o.reset_state && o.is_milestone(epoch) {
            self.opt_g = self.adam.init();
            self.opt_d = self.adam.init();
        }
    }

    /// Continues epoch `epoch` after a resume: its learning-rate factor, without the fresh
    /// Adam state a milestone starting there gave when the epoch began.
    pub(crate) fn continue_epoch(&mut self, epoch: usize) {
        self.lr_factor = self.settings.optimizer.factor_at(epoch);
    }

    /// Gives the trained generator back.
    pub fn into_generator(self) -> Generator {
        self.generator.expect("generator present between steps")
    }

    /// One discriminator and one generator step on `batch`, with the attack gradient
    /// backpropagated through `victim` (charged to an unlimited throwaway ledger).
    pub fn step_backprop<M: DifferentiableClusterModel>(
        &mut self,
        victim: &FrozenVictim<M>,
        batch: &ImageBatch,
    ) -> Result<StepStats> {
        batch.expect_image_shape(victim.model().input_shape())?;
        check_clusters(victim.model().num_clusters(), self.settings.target)?;
        let mut provider = BackpropProvider {
            victim,
            ledger: QueryLedger::new(QueryBudget::UNLIMITED),
            k: victim.model().num_clusters(),
            distance: self.settings.distance,
            loss: self.settings.loss,
            target: self.settings.target,
        };
        let indices: Vec<usize> = (0..batch.len()).collect();
        let ctx = StepCtx { epoch: 0, step: 0 };
        Ok(self.step(batch, &indices, &mut provider, None, ctx)?.0)
    }

    /// One step: forward G, query the `L_adv` term (before any update, so that a refused query
    /// leaves G and D as they were), update D, then update G.
    pub(crate) fn step(
        &mut self,
        batch: &ImageBatch,
        indices: &[usize],
        provider: &mut dyn AdvProvider,
        penalty: Option<&dyn GeneratorPenalty>,
        ctx: StepCtx,
    ) -> Result<(StepStats, Vec<ClusterId>)> {
        batch.expect_image_shape(self.image_shape)?;
        let s = self.settings.clone();
        let (lr_g, lr_d) = self.learning_rates();
        let x = batch.to_tensor(&self.device);
        let delta = self.generator().forward(x.clone());
        let x_adv = self.threat.apply(x.clone(), delta.clone());
        let x_adv_host = ImageBatch::from_tensor(x_adv.clone().detach(), batch.value_box())
            .map_err(|e| match e {
                CoreError::NonFinite { .. } => ctx.non_finite("generator output"),
                other => other.into(),
            })?;
        let adv = provider.adv_term(indices, &x, &x_adv, &x_adv_host, ctx)?;

        // Discriminator: least squares on sigmoid outputs.
        let d = self.discriminator();
        let real = d.forward(x.clone()).sub_scalar(1.0).powf_scalar(2.0).mean();
        let fake = d.forward(x_adv.clone().detach()).powf_scalar(2.0).mean();
        let d_loss = real + fake;
        let d_loss_v = scalar(&d_loss);
        if !d_loss_v.is_finite() {
            return Err(ctx.non_finite("discriminator loss"));
        }
        let grads = GradientsParams::from_grads(d_loss.backward(), self.discriminator());
        let d = self.discriminator.take().expect("discriminator present");
        self.discriminator = Some(self.opt_d.step(lr_d, d, grads));

        // Generator.
        let gan = self
            .discriminator()
            .forward(x_adv.clone())
            .sub_scalar(1.0)
            .powf_scalar(2.0)
            .mean();
        let pert_src = match s.pert_clip {
            Some(c) => delta.clone().clamp(-c, c),
            None => delta.clone(),
        };
        let l_pert = per_sample_l2(pert_src).mean();
        let mut loss = gan.clone() + l_pert.clone().mul_scalar(s.lambda_pert)
            - adv.term.mul_scalar(s.lambda_adv);
        let mut l_constraint_v = 0.0;
        if s.hinge_weight > 0.0 {
            let norms = match s.norm {
                NormKind::L2 => per_sample_l2(delta),
                NormKind::Linf => delta
                    .abs()
                    .flatten::<2>(1, 3)
                    .max_dim(1)
                    .squeeze_dim::<1>(1),
            };
            let constraint = relu(norms.sub_scalar(s.epsilon)).mean();
            l_constraint_v = scalar(&constraint);
            loss = loss + constraint.mul_scalar(s.hinge_weight);
        }
        let mut l_penalty_v = 0.0;
        if let Some(p) = penalty {
            let term = p.penalty(x_adv.clone());
            l_penalty_v = p.weight() as f64 * scalar(&term);
            loss = loss + term.mul_scalar(p.weight());
        }
        if let Some(p) = adv.penalty {
            l_penalty_v += p.value;
            loss = loss + p.term;
        }
        let (gan_v, l_pert_v) = (scalar(&gan), scalar(&l_pert));
        let g_loss_v = gan_v + s.lambda_pert as f64 * l_pert_v - s.lambda_adv as f64 * adv.l_adv
            + s.hinge_weight as f64 * l_constraint_v
            + l_penalty_v;
        if !g_loss_v.is_finite() {
            return Err(ctx.non_finite("generator loss"));
        }
        let grads = GradientsParams::from_grads(loss.backward(), self.generator());
        let g = self.generator.take().expect("generator present");
        self.generator = Some(self.opt_g.step(lr_g, g, grads));

        // Perturbation norms and successes.
        let norms = ThreatModel::norms(batch, &x_adv_host)?;
        let sum_l2: f64 = norms.iter().map(|p| f64::from(p.l2)).sum();
        let max_linf = norms.iter().map(|p| f64::from(p.linf)).fold(0.0, f64::max);
        let successes = match (&adv.clean_clusters, s.target) {
            (_, Some(t)) => adv.adv_clusters.iter().filter(|&&c| c == t).count(),
            (Some(clean), None) => adv
                .adv_clusters
                .iter()
                .zip(clean)
                .filter(|(a, c)| a != c)
                .count(),
            (None, None) => 0,
        };
        let stats = StepStats {
            d_loss: d_loss_v,
            g_loss: g_loss_v,
            gan_loss: gan_v,
            l_adv: adv.l_adv,
            l_pert: l_pert_v,
            l_constraint: l_constraint_v,
            l_penalty: l_penalty_v,
            sum_l2,
            max_linf,
            successes,
            images: batch.len(),
        };
        Ok((stats, adv.adv_clusters))
    }
}
