//! The saddle-point trainer: one discriminator and one generator step per batch.

use std::io::IsTerminal;
use std::time::Instant;

use advclust_core::{
    Budgeted, ClusterId, ClusterOracle, CoreError, DifferentiableClusterModel, ImageBatch,
    ModelOracle, NormKind, QueryBudget, QueryCounts, QueryLedger, ThreatModel, ValueBox,
    argmax_rows, per_sample_l2, tensor_to_vec,
};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::attack::TrainedAttack;
use crate::config::{
    AdvDistance, AttackSettings, CheckedAttackConfig, GradientSource, NORM_EPS, Stopping,
};
use crate::error::{AttackError, Result};
use crate::estimate::{AdvObjective, estimate_adv_gradient};
use crate::nets::{Discriminator, Generator, check_image_shape};
use crate::report::{AttackReport, ConvergenceInfo, EpochStats};

/// Sub-seed streams derived from the configuration seed.
const STREAM_GENERATOR: u64 = 1;
const STREAM_DISCRIMINATOR: u64 = 2;
const STREAM_SHUFFLE: u64 = 3;
const STREAM_ESTIMATOR: u64 = 4;

/// Derives an independent seed for one random stream (SplitMix64 of seed and stream).
pub(crate) fn sub_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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

/// Where one step's `L_adv` term comes from.
pub(crate) struct AdvTerm {
    /// Scalar whose gradient with respect to `x_adv` is `dL_adv / dx_adv`.
    term: Tensor<1>,
    /// Value of `L_adv` (exact for backprop, estimated for query-only sources).
    l_adv: f64,
    /// Adversarial cluster of each image of the batch.
    adv_clusters: Vec<ClusterId>,
    /// Clean cluster of each image (untargeted attacks).
    clean_clusters: Option<Vec<ClusterId>>,
}

/// Position of a step, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCtx {
    epoch: usize,
    step: u64,
}

impl StepCtx {
    fn non_finite(self, what: &'static str) -> AttackError {
        AttackError::NonFinite {
            what,
            epoch: self.epoch,
            step: self.step,
        }
    }
}

/// Supplies the `L_adv` term of a step and counts victim queries.
pub(crate) trait AdvProvider {
    fn num_clusters(&self) -> usize;
    fn counts(&self) -> QueryCounts;
    fn adv_term(
        &mut self,
        indices: &[usize],
        x: &Tensor<4>,
        x_adv: &Tensor<4>,
        x_adv_host: &ImageBatch,
        ctx: StepCtx,
    ) -> Result<AdvTerm>;
}

/// Backprop through a frozen victim; every victim evaluation is charged to a ledger first.
struct BackpropProvider<'a, M> {
    victim: &'a FrozenVictim<M>,
    ledger: QueryLedger,
    k: usize,
    distance: AdvDistance,
    target: Option<ClusterId>,
}

fn check_output(t: &Tensor<2>, n: usize, k: usize) -> Result<()> {
    let dims = t.dims();
    if dims != [n, k] {
        return Err(AttackError::VictimOutputShape {
            expected: [n, k],
            actual: dims,
        });
    }
    Ok(())
}

/// A victim needs at least one cluster, and a target must be one of them.
fn check_clusters(k: usize, target: Option<ClusterId>) -> Result<()> {
    if k == 0 {
        return Err(CoreError::EmptyDimension("number of clusters").into());
    }
    match target {
        Some(t) if t >= k => Err(AttackError::TargetOutOfRange { target: t, k }),
        _ => Ok(()),
    }
}

/// The argmax clusters of victim output `out` (`n x k`), read back to the host; non-finite
/// values are an error.
fn host_clusters(
    out: &Tensor<2>,
    k: usize,
    ctx: StepCtx,
    what: &'static str,
) -> Result<Vec<ClusterId>> {
    let host = tensor_to_vec(out.clone().detach().into_data())?;
    if host.iter().any(|v| !v.is_finite()) {
        return Err(ctx.non_finite(what));
    }
    Ok(argmax_rows(&host, k))
}

fn one_hot(n: usize, k: usize, t: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; n * k];
    for row in v.chunks_mut(k) {
        row[t] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [n, k]), device)
}

impl<M: DifferentiableClusterModel> AdvProvider for BackpropProvider<'_, M> {
    fn num_clusters(&self) -> usize {
        self.k
    }

    fn counts(&self) -> QueryCounts {
        self.ledger.counts()
    }

    fn adv_term(
        &mut self,
        _indices: &[usize],
        x: &Tensor<4>,
        x_adv: &Tensor<4>,
        x_adv_host: &ImageBatch,
        ctx: StepCtx,
    ) -> Result<AdvTerm> {
        let (n, k) = (x_adv_host.len(), self.k);
        let device = x_adv.device();
        let model = self.victim.model();
        let (reference, clean_clusters) = match self.target {
            None => {
                self.ledger.charge(n)?;
                let clean = model.attack_output(x.clone()).detach();
                check_output(&clean, n, k)?;
                let clusters = host_clusters(&clean, k, ctx, "clean victim output")?;
                (clean, Some(clusters))
            }
            Some(t) => (one_hot(n, k, t, &device), None),
        };
        self.ledger.charge(n)?;
        let out = match self.target {
            None => model.attack_output(x_adv.clone()),
            Some(_) => model.memberships(x_adv.clone()),
        };
        check_output(&out, n, k)?;
        let adv_clusters = host_clusters(&out, k, ctx, "adversarial victim output")?;
        let dist = distance_tensor(out, reference, self.distance);
        let term = match self.target {
            None => dist,
            Some(_) => dist.mul_scalar(-1.0),
        };
        let l_adv = scalar(&term);
        Ok(AdvTerm {
            term,
            l_adv,
            adv_clusters,
            clean_clusters,
        })
    }
}

/// Zeroth-order estimates from oracle queries; clean memberships are queried once per training
/// image and cached.
struct QueryProvider<'a> {
    oracle: Budgeted<&'a mut dyn ClusterOracle>,
    train: &'a ImageBatch,
    clean: Vec<f32>,
    known: Vec<bool>,
    k: usize,
    source: GradientSource,
    distance: AdvDistance,
    target: Option<ClusterId>,
    max_images_per_call: Option<usize>,
    rng: StdRng,
}

impl QueryProvider<'_> {
    fn ensure_clean(&mut self, indices: &[usize]) -> Result<()> {
        let missing: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| !self.known[i])
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let chunk = self.max_images_per_call.unwrap_or(missing.len());
        let k = self.k;
        for part in missing.chunks(chunk) {
            let batch = self.train.select(part)?;
            // Budgeted checks the answer has one row of k per image.
            let m = self.oracle.memberships(&batch)?;
            for (values, &i) in m.data().chunks(k).zip(part) {
                self.clean[i * k..(i + 1) * k].copy_from_slice(values);
                self.known[i] = true;
            }
        }
        Ok(())
    }
}

impl AdvProvider for QueryProvider<'_> {
    fn num_clusters(&self) -> usize {
        self.k
    }

    fn counts(&self) -> QueryCounts {
        self.oracle.counts()
    }

    fn adv_term(
        &mut self,
        indices: &[usize],
        _x: &Tensor<4>,
        x_adv: &Tensor<4>,
        x_adv_host: &ImageBatch,
        ctx: StepCtx,
    ) -> Result<AdvTerm> {
        let k = self.k;
        let (rows, clean_clusters) = match self.target {
            None => {
                self.ensure_clean(indices)?;
                let mut rows = Vec::with_capacity(indices.len() * k);
                for &i in indices {
                    rows.extend_from_slice(&self.clean[i * k..(i + 1) * k]);
                }
                let clusters = argmax_rows(&rows, k);
                (rows, Some(clusters))
            }
            Some(_) => (Vec::new(), None),
        };
        let objective = match self.target {
            None => AdvObjective::Away(&rows),
            Some(t) => AdvObjective::Toward(t),
        };
        let est = estimate_adv_gradient(
            &mut self.oracle,
            x_adv_host,
            objective,
            self.distance,
            self.source,
            self.max_images_per_call,
            &mut self.rng,
        )?;
        if est.gradient.iter().any(|v| !v.is_finite()) {
            return Err(ctx.non_finite("estimated gradient"));
        }
        let l_adv = est.l_adv();
        let adv_clusters = est.clusters();
        let g = Tensor::<4>::from_data(
            TensorData::new(est.gradient, x_adv_host.dims()),
            &x_adv.device(),
        );
        // d/dx_adv of sum(x_adv * g) is exactly g.
        let term = (x_adv.clone() * g).sum();
        Ok(AdvTerm {
            term,
            l_adv,
            adv_clusters,
            clean_clusters,
        })
    }
}

/// Losses and perturbation statistics of one training step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
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
                sub_seed(config.seed, STREAM_GENERATOR),
                &device,
            )),
            discriminator: Some(Discriminator::new(
                c,
                sub_seed(config.seed, STREAM_DISCRIMINATOR),
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
            target: self.settings.target,
        };
        let indices: Vec<usize> = (0..batch.len()).collect();
        let ctx = StepCtx { epoch: 0, step: 0 };
        Ok(self.step(batch, &indices, &mut provider, ctx)?.0)
    }

    /// One step: forward G, query the `L_adv` term (before any update, so that a refused query
    /// leaves G and D as they were), update D, then update G.
    pub(crate) fn step(
        &mut self,
        batch: &ImageBatch,
        indices: &[usize],
        provider: &mut dyn AdvProvider,
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
        let (gan_v, l_pert_v) = (scalar(&gan), scalar(&l_pert));
        let g_loss_v = gan_v + s.lambda_pert as f64 * l_pert_v - s.lambda_adv as f64 * adv.l_adv
            + s.hinge_weight as f64 * l_constraint_v;
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
            sum_l2,
            max_linf,
            successes,
            images: batch.len(),
        };
        Ok((stats, adv.adv_clusters))
    }
}

/// Trains attacks: holds the configuration, the device and optional ground-truth labels (for
/// the per-epoch NMI curve).
#[derive(Debug, Clone)]
pub struct AttackTrainer<'a> {
    config: &'a CheckedAttackConfig,
    device: Device,
    labels: Option<&'a [usize]>,
}

/// Running sums of an epoch: the steps' stats added up (`max_linf` is the maximum).
#[derive(Default)]
struct EpochAcc {
    steps: usize,
    sum: StepStats,
}

impl EpochAcc {
    fn add(&mut self, s: &StepStats) {
        self.steps += 1;
        let t = &mut self.sum;
        t.images += s.images;
        t.d_loss += s.d_loss;
        t.g_loss += s.g_loss;
        t.gan_loss += s.gan_loss;
        t.l_adv += s.l_adv;
        t.l_pert += s.l_pert;
        t.l_constraint += s.l_constraint;
        t.sum_l2 += s.sum_l2;
        t.max_linf = t.max_linf.max(s.max_linf);
        t.successes += s.successes;
    }
}

/// Plateau detector of [`Stopping::Convergence`].
struct Plateau {
    best: Option<f64>,
    stalled: usize,
}

impl Plateau {
    /// Feeds an epoch's mean generator loss; true when converged.
    fn update(&mut self, loss: f64, epoch: usize, rule: Stopping) -> bool {
        let Stopping::Convergence {
            min_epochs,
            tolerance,
            patience,
            ..
        } = rule
        else {
            return false;
        };
        match self.best {
            Some(best) if (best - loss) / best.abs().max(1e-12) > tolerance => {
                self.best = Some(loss);
                self.stalled = 0;
            }
            Some(best) => {
                self.stalled += 1;
                self.best = Some(best.min(loss));
            }
            None => self.best = Some(loss),
        }
        self.stalled >= patience && epoch >= min_epochs
    }
}

impl<'a> AttackTrainer<'a> {
    /// A trainer for `config` on `device` (training runs on its autodiff version).
    pub fn new(config: &'a CheckedAttackConfig, device: &Device) -> Self {
        AttackTrainer {
            config,
            device: device.clone(),
            labels: None,
        }
    }

    /// Ground-truth labels of the training images, for the per-epoch NMI curve (no queries).
    pub fn with_labels(mut self, labels: &'a [usize]) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Trains against a differentiable victim. With [`GradientSource::Backprop`] the attack
    /// gradient is backpropagated through the frozen model; with a query-only source the model
    /// is only queried (through a [`ModelOracle`]), exactly as [`Self::fit_oracle`] would.
    pub fn fit_model<M: DifferentiableClusterModel>(
        &self,
        model: &M,
        train: &ImageBatch,
    ) -> Result<TrainedAttack> {
        train.expect_image_shape(model.input_shape())?;
        if self.config.gradient_source.is_query_only() {
            let mut oracle = ModelOracle::new(model, &self.device);
            return self.fit_oracle(&mut oracle, train);
        }
        let victim = FrozenVictim::new(model, &self.device);
        let provider = BackpropProvider {
            victim: &victim,
            ledger: QueryLedger::new(self.config.budget),
            k: model.num_clusters(),
            distance: self.config.distance,
            target: self.config.target,
        };
        self.run(provider, train)
    }

    /// Trains from oracle queries only (the configuration's source must be query-only).
    pub fn fit_oracle(
        &self,
        oracle: &mut dyn ClusterOracle,
        train: &ImageBatch,
    ) -> Result<TrainedAttack> {
        if !self.config.gradient_source.is_query_only() {
            return Err(AttackError::invalid(
                "gradient_source",
                "Backprop needs a differentiable model (use fit_model / train_backprop); \
                 choose Nes or Spsa for an oracle",
            ));
        }
        if let Some(shape) = oracle.input_shape() {
            train.expect_image_shape(shape)?;
        }
        let k = oracle.num_clusters();
        let provider = QueryProvider {
            oracle: Budgeted::new(oracle, self.config.budget),
            train,
            clean: vec![0.0; train.len() * k],
            known: vec![false; train.len()],
            k,
            source: self.config.gradient_source,
            distance: self.config.distance,
            target: self.config.target,
            max_images_per_call: self.config.max_images_per_call,
            rng: StdRng::seed_from_u64(sub_seed(self.config.seed, STREAM_ESTIMATOR)),
        };
        self.run(provider, train)
    }

    fn run<P: AdvProvider>(&self, mut provider: P, train: &ImageBatch) -> Result<TrainedAttack> {
        let cfg = self.config;
        let shape = train.image_shape();
        check_image_shape(shape)?;
        let k = provider.num_clusters();
        check_clusters(k, cfg.target)?;
        if let Some(labels) = self.labels
            && labels.len() != train.len()
        {
            return Err(CoreError::SampleCountMismatch {
                expected: train.len(),
                actual: labels.len(),
            }
            .into());
        }
        let threat = cfg.threat_model(train.value_box())?;
        let mut gan = AttackGan::new(cfg, shape, train.value_box(), &self.device)?;
        let mut report = AttackReport {
            gradient_source: cfg.gradient_source,
            threat_model: threat,
            bound: cfg.bound_description(),
            image_shape: shape,
            num_clusters: k,
            train_images: train.len(),
            epochs: 0,
            steps: 0,
            training_queries: QueryCounts::default(),
            converged: None,
            interrupted: None,
            training_wall_time_s: 0.0,
            curves: Vec::new(),
            clean_scores: None,
            adversarial_scores: None,
            changed_fraction: None,
            delta_norms: None,
            evaluated_images: 0,
            evaluation_queries: QueryCounts::default(),
            evaluation_wall_time_s: 0.0,
        };
        let started = Instant::now();
        let result = self.epochs(&mut gan, &mut provider, train, &mut report, started);
        report.training_queries = provider.counts();
        report.training_wall_time_s = started.elapsed().as_secs_f64();
        let failure = result.err();
        if let Some(e) = &failure {
            report.interrupted = Some(e.to_string());
        }
        let attack = TrainedAttack::new(
            gan.into_generator(),
            cfg.clone(),
            report,
            shape,
            threat,
            &self.device,
        );
        let save_result = cfg
            .output_dir
            .as_ref()
            .map(|dir| attack.save(dir).map(|()| dir.clone()));
        match (failure, save_result) {
            (None, None | Some(Ok(_))) => Ok(attack),
            (None, Some(Err(save_err))) => Err(AttackError::Interrupted {
                source: Box::new(save_err),
                partial: Box::new(attack),
                saved_to: None,
            }),
            (Some(e), saved) => Err(AttackError::Interrupted {
                source: Box::new(e),
                partial: Box::new(attack),
                saved_to: saved.and_then(|r| r.ok()),
            }),
        }
    }

    fn epochs(
        &self,
        gan: &mut AttackGan,
        provider: &mut dyn AdvProvider,
        train: &ImageBatch,
        report: &mut AttackReport,
        started: Instant,
    ) -> Result<()> {
        let cfg = self.config;
        let n = train.len();
        let bs = cfg.batch_size.min(n);
        let steps_per_epoch = n.div_ceil(bs);
        let max_epochs = cfg.stopping.max_epochs();
        let mut order: Vec<usize> = (0..n).collect();
        let mut shuffle_rng = StdRng::seed_from_u64(sub_seed(cfg.seed, STREAM_SHUFFLE));
        let mut plateau = Plateau {
            best: None,
            stalled: 0,
        };
        let bar = progress_bar(
            (max_epochs * steps_per_epoch) as u64,
            cfg.progress,
            "attack",
        );
        let mut adv_clusters = vec![0usize; n];
        for epoch in 1..=max_epochs {
            gan.begin_epoch(epoch);
            if cfg.shuffle {
                order.shuffle(&mut shuffle_rng);
            }
            let mut acc = EpochAcc::default();
            for indices in order.chunks(bs) {
                let batch = train.select(indices)?;
                let ctx = StepCtx {
                    epoch,
                    step: report.steps + 1,
                };
                let (stats, clusters) = gan.step(&batch, indices, provider, ctx)?;
                report.steps += 1;
                acc.add(&stats);
                for (&i, c) in indices.iter().zip(clusters) {
                    adv_clusters[i] = c;
                }
                bar.inc(1);
            }
            let steps = acc.steps.max(1) as f64;
            let sums = &acc.sum;
            let (lr_g, lr_d) = gan.learning_rates();
            let scores = match self.labels {
                Some(labels) => Some(advclust_metrics::clustering_scores(labels, &adv_clusters)?),
                None => None,
            };
            let stats = EpochStats {
                epoch,
                lr_generator: lr_g,
                lr_discriminator: lr_d,
                d_loss: sums.d_loss / steps,
                g_loss: sums.g_loss / steps,
                gan_loss: sums.gan_loss / steps,
                l_adv: sums.l_adv / steps,
                l_pert: sums.l_pert / steps,
                l_constraint: sums.l_constraint / steps,
                mean_l2: sums.sum_l2 / sums.images.max(1) as f64,
                max_linf: sums.max_linf,
                success_rate: sums.successes as f64 / sums.images.max(1) as f64,
                scores,
                queries: provider.counts(),
                steps: report.steps,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            bar.set_message(format!(
                "epoch {epoch}: D {:.4} G {:.4} L_adv {:.4} success {:.3}",
                stats.d_loss, stats.g_loss, stats.l_adv, stats.success_rate
            ));
            let g_loss = stats.g_loss;
            report.curves.push(stats);
            report.epochs = epoch;
            if plateau.update(g_loss, epoch, cfg.stopping) {
                report.converged = Some(ConvergenceInfo {
                    epoch,
                    steps: report.steps,
                    queries: provider.counts(),
                });
                break;
            }
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// Trains an attack against a differentiable victim (see [`AttackTrainer::fit_model`]).
pub fn train_backprop<M: DifferentiableClusterModel>(
    config: &CheckedAttackConfig,
    model: &M,
    train: &ImageBatch,
    device: &Device,
) -> Result<TrainedAttack> {
    AttackTrainer::new(config, device).fit_model(model, train)
}

/// Trains an attack from oracle queries only (see [`AttackTrainer::fit_oracle`]).
pub fn train_query_only(
    config: &CheckedAttackConfig,
    oracle: &mut dyn ClusterOracle,
    train: &ImageBatch,
    device: &Device,
) -> Result<TrainedAttack> {
    AttackTrainer::new(config, device).fit_oracle(oracle, train)
}
