//! Attack configuration: plain serde settings, an unchecked builder and its validated form.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

use advclust_core::{ClusterId, NormKind, ParamGuard, QueryBudget, ThreatModel, ValueBox};
use serde::{Deserialize, Serialize};

use crate::error::{AttackError, Result};
use crate::objective::AdvLoss;

/// Largest `batch_size` a configuration may ask for (2^20 images a batch; a saved attack's
/// config is checked against it on load).
pub const MAX_BATCH_SIZE: usize = 1 << 20;
/// Largest number of NES / SPSA direction pairs a step may draw (each costs two query images
/// per training image).
pub const MAX_ESTIMATOR_SAMPLES: usize = 1 << 16;

/// How `L_adv` measures the distance between the victim's clean and adversarial outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdvDistance {
    /// The reference code's `sum_i 0.5 * ||phi(x_adv_i) - phi(x_i)||^2` (a sum over the batch).
    #[default]
    HalfSquaredSum,
    /// The paper's `mean_i ||phi(x_adv_i) - phi(x_i)||_2`.
    L2Mean,
}

impl AdvDistance {
    /// The contribution of one sample whose squared output distance is `sq`, in a batch of `n`.
    pub fn per_sample(self, sq: f64, n: usize) -> f64 {
        match self {
            AdvDistance::HalfSquaredSum => 0.5 * sq,
            AdvDistance::L2Mean => (sq + NORM_EPS).sqrt() / n as f64,
        }
    }
}

/// Added under the square root of [`AdvDistance::L2Mean`] so its gradient is finite at zero.
pub(crate) const NORM_EPS: f64 = 1e-12;

/// Where the generator's attack gradient `dL_adv/dx_adv` comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum GradientSource {
    /// Backpropagation through a frozen differentiable victim (the reference code's mode).
    #[default]
    Backprop,
    /// NES: `samples` antithetic pairs of Gaussian directions with smoothing radius `sigma`,
    /// estimated from oracle queries only.
    Nes {
        /// Antithetic pairs per image and step (each pair costs 2 image queries).
        samples: usize,
        /// Finite-difference radius.
        sigma: f32,
    },
    /// SPSA: `samples` pairs of Rademacher (+-1) directions with step `delta`, from oracle
    /// queries only.
    Spsa {
        /// Direction pairs per image and step (each pair costs 2 image queries).
        samples: usize,
        /// Finite-difference step.
        delta: f32,
    },
}

impl GradientSource {
    /// Short display name: `backprop`, `NES` or `SPSA`.
    pub fn name(&self) -> &'static str {
        match self {
            GradientSource::Backprop => "backprop",
            GradientSource::Nes { .. } => "NES",
            GradientSource::Spsa { .. } => "SPSA",
        }
    }

    /// True for the query-only estimators ([`GradientSource::Nes`], [`GradientSource::Spsa`]).
    pub fn is_query_only(&self) -> bool {
        !matches!(self, GradientSource::Backprop)
    }
}

/// When training stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Stopping {
    /// A fixed number of epochs.
    Epochs {
        /// Number of epochs.
        epochs: usize,
    },
    /// Generator-loss plateau: stop after `patience` consecutive epochs whose mean generator
    /// loss does not improve on the best epoch so far by more than `tolerance` (relative), but
    /// not before `min_epochs` nor after `max_epochs`.
    Convergence {
        /// Hard upper bound on epochs.
        max_epochs: usize,
        /// Epochs always run before convergence may be declared.
        min_epochs: usize,
        /// Relative improvement `(best - current) / |best|` below which an epoch counts as stalled.
        tolerance: f64,
        /// Consecutive stalled epochs that declare convergence.
        patience: usize,
    },
}

impl Stopping {
    /// The largest number of epochs this rule can run.
    pub fn max_epochs(&self) -> usize {
        match *self {
            Stopping::Epochs { epochs } => epochs,
            Stopping::Convergence { max_epochs, .. } => max_epochs,
        }
    }
}

/// From epoch `epoch` (1-based) on, the learning rates are the base rates times `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrMilestone {
    /// First epoch (1-based) with the new rate.
    pub epoch: usize,
    /// Multiplier of the base learning rates (not cumulative).
    pub factor: f64,
}

/// Adam settings for the generator and the discriminator and the step schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimizerConfig {
    /// Base learning rate of the generator (reference 1e-3).
    pub lr_generator: f64,
    /// Base learning rate of the discriminator (reference 1e-3).
    pub lr_discriminator: f64,
    /// Adam beta1 (0.9).
    pub beta1: f32,
    /// Adam beta2 (0.999).
    pub beta2: f32,
    /// Adam epsilon (1e-8 as in PyTorch; burn's own default is 1e-5).
    pub epsilon: f32,
    /// Learning-rate milestones in increasing epoch order (reference: x0.1 from epoch 50,
    /// x0.01 from epoch 80).
    pub milestones: Vec<LrMilestone>,
    /// Reset the Adam state at each milestone (the reference re-creates its optimisers).
    pub reset_state: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            lr_generator: 1e-3,
            lr_discriminator: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            milestones: vec![
                LrMilestone {
                    epoch: 50,
                    factor: 0.1,
                },
                LrMilestone {
                    epoch: 80,
                    factor: 0.01,
                },
            ],
            reset_state: true,
        }
    }
}

impl OptimizerConfig {
    /// The multiplier of the base rates in `epoch` (1-based).
    pub fn factor_at(&self, epoch: usize) -> f64 {
        self.milestones
            .iter()
            .rev()
            .find(|m| m.epoch <= epoch)
            .map_or(1.0, |m| m.factor)
    }

    /// True when a milestone starts at `epoch`.
    pub fn is_milestone(&self, epoch: usize) -> bool {
        self.milestones.iter().any(|m| m.epoch == epoch)
    }
}

/// Every setting of an attack, as plain data (the JSON form). The defaults are the ones the
/// `advclust` command line uses too: L-inf eps 0.1 in `[0, 1]` pixels, lambda_adv 5,
/// lambda_pert 1, batch 256, 12 epochs, query-only estimates sent in calls of 256 images (so a
/// call is the unit the paper counts) with directions on 2 x 2 tiles.
/// [`AttackSettings::reference_cc`] has the reference code's values for CC (eps 0.07, 120
/// epochs, one call per estimate, per-pixel directions).
///
/// Build an [`AttackConfig`] from it (or use the builder methods there) and validate with
/// [`ParamGuard::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttackSettings {
    /// Norm of the threat model: `Linf` (hard clip, the reference) or `L2` (projection).
    pub norm: NormKind,
    /// Radius of the threat model.
    pub epsilon: f32,
    /// Weight of `L_adv` (maximised).
    pub lambda_adv: f32,
    /// Weight of `L_pert`, the mean per-sample L2 norm of the raw generator output.
    pub lambda_pert: f32,
    /// Weight of the paper's hinge `L_constraint`: `mean_i max(||G(x_i)|| - eps, 0)` in the
    /// threat model's norm, on the raw generator output (0 = off, as in the reference code).
    pub hinge_weight: f32,
    /// Clip the raw generator output to `[-c, c]` before `L_pert` (the reference's RUC notebook
    /// uses 0.2); `None` = no clip.
    pub pert_clip: Option<f32>,
    /// Distance of `L_adv` (for [`AdvLoss::OutputDistance`]).
    pub distance: AdvDistance,
    /// What `L_adv` measures: the paper's output distance or the soft mutual information.
    pub loss: AdvLoss,
    /// Adam settings and learning-rate schedule.
    pub optimizer: OptimizerConfig,
    /// Stopping rule.
    pub stopping: Stopping,
    /// Training batch size.
    pub batch_size: usize,
    /// Where the attack gradient comes from.
    pub gradient_source: GradientSource,
    /// Seed of every random choice (initial weights, shuffles, estimator directions).
    pub seed: u64,
    /// Targeted attack towards this cluster (paper footnote 9): `L_adv` becomes minus the
    /// distance between the adversarial memberships and the one-hot vector of the target.
    pub target: Option<ClusterId>,
    /// Hard limit on training queries (batch calls and/or images).
    pub budget: QueryBudget,
    /// Largest number of images per oracle call of a query-only estimator (`None`: all
    /// perturbed copies of a batch in one call).
    pub max_images_per_call: Option<usize>,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
    /// Save the trained (or interrupted) attack here.
    pub output_dir: Option<PathBuf>,
    /// Show progress bars (only ever drawn when stderr is a terminal).
    pub progress: bool,
    /// Query-only estimators: draw each direction on a grid this many times coarser than the
    /// image, constant over `tile x tile` blocks (a data prior; 1: one value per pixel). The
    /// default 2 measured best on CC / MNIST-test (`docs/results/baselines.md`).
    pub direction_tile: usize,
    /// Query-only estimators: weight of an image's previous estimate in its current one (a time
    /// prior, as Bandits': `g <- m * g_prev + (1 - m) * g_new`, per training image; 0: none).
    pub estimate_momentum: f32,
    /// Training batch calls at which to keep a copy of the generator
    /// ([`crate::TrainedAttack::snapshots`]): the copy at `c` is the generator after the last
    /// step that ended within `c` calls, i.e. what a run with a budget of `c` calls returns.
    pub snapshot_calls: Vec<u64>,
}

impl Default for AttackSettings {
    fn default() -> Self {
        AttackSettings {
            norm: NormKind::Linf,
            epsilon: 0.1,
            lambda_adv: 5.0,
            lambda_pert: 1.0,
            hinge_weight: 0.0,
            pert_clip: None,
            distance: AdvDistance::HalfSquaredSum,
            loss: AdvLoss::OutputDistance,
            optimizer: OptimizerConfig::default(),
            stopping: Stopping::Epochs { epochs: 12 },
            batch_size: 256,
            gradient_source: GradientSource::Backprop,
            seed: 0,
            target: None,
            budget: QueryBudget::UNLIMITED,
            max_images_per_call: Some(256),
            shuffle: true,
            output_dir: None,
            progress: true,
            direction_tile: 2,
            estimate_momentum: 0.0,
            snapshot_calls: Vec::new(),
        }
    }
}

impl AttackSettings {
    /// The reference code's settings for CC: eps 0.07, 120 epochs, every perturbed copy of a
    /// query-only estimate in one call; the rest as [`Default`].
    pub fn reference_cc() -> Self {
        AttackSettings {
            epsilon: 0.07,
            stopping: Stopping::Epochs { epochs: 120 },
            max_images_per_call: None,
            direction_tile: 1,
            ..AttackSettings::default()
        }
    }

    /// Validates every field (the target cluster is checked against the victim at training).
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |name: &'static str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(AttackError::invalid(
                    name,
                    format!("must be finite and >= 0, got {v}"),
                ))
            }
        };
        let finite_pos = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(AttackError::invalid(
                    name,
                    format!("must be finite and > 0, got {v}"),
                ))
            }
        };
        finite_nonneg("epsilon", self.epsilon)?;
        if self.loss != AdvLoss::OutputDistance && self.target.is_some() {
            return Err(AttackError::invalid(
                "loss",
                format!(
                    "the {} objective is untargeted; use the output distance with a target",
                    self.loss.name()
                ),
            ));
        }
        finite_nonneg("lambda_adv", self.lambda_adv)?;
        finite_nonneg("lambda_pert", self.lambda_pert)?;
        finite_nonneg("hinge_weight", self.hinge_weight)?;
        if let Some(c) = self.pert_clip {
            finite_pos("pert_clip", c as f64)?;
        }
        let o = &self.optimizer;
        finite_pos("optimizer.lr_generator", o.lr_generator)?;
        finite_pos("optimizer.lr_discriminator", o.lr_discriminator)?;
        for (name, b) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(AttackError::invalid(
                    name,
                    format!("must be in [0, 1), got {b}"),
                ));
            }
        }
        finite_pos("optimizer.epsilon", o.epsilon as f64)?;
        let mut last = 0;
        for m in &o.milestones {
            if m.epoch <= last {
                return Err(AttackError::invalid(
                    "optimizer.milestones",
                    format!(
                        "epochs must be >= 1 and strictly increasing, got {} after {last}",
                        m.epoch
                    ),
                ));
            }
            last = m.epoch;
            finite_pos("optimizer.milestones.factor", m.factor)?;
        }
        match self.stopping {
            Stopping::Epochs { epochs: 0 } => {
                return Err(AttackError::invalid("stopping.epochs", "must be >= 1"));
            }
            Stopping::Convergence {
                max_epochs,
                min_epochs,
                tolerance,
                patience,
            } => {
                if max_epochs == 0 || patience == 0 {
                    return Err(AttackError::invalid(
                        "stopping",
                        "max_epochs and patience must be >= 1",
                    ));
                }
                if min_epochs > max_epochs {
                    return Err(AttackError::invalid(
                        "stopping.min_epochs",
                        format!("{min_epochs} exceeds max_epochs {max_epochs}"),
                    ));
                }
                if !(tolerance.is_finite() && tolerance >= 0.0) {
                    return Err(AttackError::invalid(
                        "stopping.tolerance",
                        format!("must be finite and >= 0, got {tolerance}"),
                    ));
                }
            }
            Stopping::Epochs { .. } => {}
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(AttackError::invalid(
                "batch_size",
                format!("must be in 1..={MAX_BATCH_SIZE}, got {}", self.batch_size),
            ));
        }
        if !(0.0..1.0).contains(&self.estimate_momentum) {
            return Err(AttackError::invalid(
                "estimate_momentum",
                format!("must be in [0, 1), got {}", self.estimate_momentum),
            ));
        }
        if self.direction_tile == 0 {
            return Err(AttackError::invalid(
                "direction_tile",
                "must be >= 1 (1: a direction value per pixel)",
            ));
        }
        match self.gradient_source {
            GradientSource::Backprop => {}
            GradientSource::Nes {
                samples,
                sigma: step,
            }
            | GradientSource::Spsa {
                samples,
                delta: step,
            } => {
                if !(1..=MAX_ESTIMATOR_SAMPLES).contains(&samples) {
                    return Err(AttackError::invalid(
                        "gradient_source.samples",
                        format!("must be in 1..={MAX_ESTIMATOR_SAMPLES}, got {samples}"),
                    ));
                }
                finite_pos("gradient_source step (sigma / delta)", step as f64)?;
            }
        }
        if self.max_images_per_call == Some(0) {
            return Err(AttackError::invalid("max_images_per_call", "must be >= 1"));
        }
        Ok(())
    }

    /// The threat model for images in `value_box`.
    pub fn threat_model(&self, value_box: ValueBox) -> Result<ThreatModel> {
        Ok(ThreatModel::params(self.norm, self.epsilon)
            .value_box(value_box)
            .check()?)
    }

    /// A one-line description of how delta is bounded (for reports).
    pub fn bound_description(&self) -> String {
        let base = match self.norm {
            NormKind::Linf => format!(
                "Linf clip of G(x) to [-{0}, {0}], then box clip",
                self.epsilon
            ),
            NormKind::L2 => format!(
                "L2 projection of G(x) onto the ball of radius {}, then box clip",
                self.epsilon
            ),
        };
        if self.hinge_weight > 0.0 {
            format!(
                "{base}; hinge L_constraint = mean max(||G(x)|| - eps, 0) with weight {}",
                self.hinge_weight
            )
        } else {
            base
        }
    }
}

/// An unchecked attack configuration: [`AttackSettings`] plus builder methods. Turn it into a
/// [`CheckedAttackConfig`] with [`ParamGuard::check`].
///
/// ```
/// use advclust_core::ParamGuard;
/// use advclust_gan::{AttackConfig, GradientSource, Stopping};
///
/// let config = AttackConfig::new()
///     .with_epsilon(0.1)
///     .with_lambda_adv(30.0)
///     .with_stopping(Stopping::Epochs { epochs: 2 })
///     .with_gradient_source(GradientSource::Nes { samples: 10, sigma: 0.01 })
///     .check()
///     .unwrap();
/// assert_eq!(config.epsilon, 0.1);
/// assert!(AttackConfig::new().with_batch_size(0).check().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "AttackSettings", into = "AttackSettings")]
pub struct AttackConfig(CheckedAttackConfig);

/// A validated [`AttackConfig`]: read its settings through `Deref`. Deserialising one
/// validates it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AttackSettings", into = "AttackSettings")]
pub struct CheckedAttackConfig {
    settings: AttackSettings,
}

impl Deref for CheckedAttackConfig {
    type Target = AttackSettings;
    fn deref(&self) -> &AttackSettings {
        &self.settings
    }
}

impl CheckedAttackConfig {
    /// The settings.
    pub fn settings(&self) -> &AttackSettings {
        &self.settings
    }

    /// Back to an unchecked config (to change it).
    pub fn unchecked(self) -> AttackConfig {
        AttackConfig(self)
    }
}

impl Deref for AttackConfig {
    type Target = AttackSettings;
    fn deref(&self) -> &AttackSettings {
        &self.0.settings
    }
}

impl DerefMut for AttackConfig {
    fn deref_mut(&mut self) -> &mut AttackSettings {
        &mut self.0.settings
    }
}

impl From<AttackSettings> for AttackConfig {
    fn from(settings: AttackSettings) -> Self {
        AttackConfig(CheckedAttackConfig { settings })
    }
}

impl From<AttackConfig> for AttackSettings {
    fn from(config: AttackConfig) -> Self {
        config.0.settings
    }
}

impl From<CheckedAttackConfig> for AttackSettings {
    fn from(config: CheckedAttackConfig) -> Self {
        config.settings
    }
}

impl TryFrom<AttackSettings> for CheckedAttackConfig {
    type Error = AttackError;
    fn try_from(settings: AttackSettings) -> Result<Self> {
        AttackConfig::from(settings).check()
    }
}

impl ParamGuard for AttackConfig {
    type Checked = CheckedAttackConfig;
    type Error = AttackError;

    fn check_ref(&self) -> Result<&CheckedAttackConfig> {
        self.0.settings.validate()?;
        Ok(&self.0)
    }

    fn check(self) -> Result<CheckedAttackConfig> {
        self.check_ref()?;
        Ok(self.0)
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $fn:ident: $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $fn(mut self, value: $ty) -> Self {
                self.0.settings.$field = value;
                self
            }
        )*
    };
}

impl AttackConfig {
    /// The reference defaults (see [`AttackSettings`]).
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// Sets the threat-model norm.
        with_norm: norm: NormKind;
        /// Sets the threat-model radius.
        with_epsilon: epsilon: f32;
        /// Sets the weight of `L_adv`.
        with_lambda_adv: lambda_adv: f32;
        /// Sets the weight of `L_pert`.
        with_lambda_pert: lambda_pert: f32;
        /// Sets the weight of the hinge `L_constraint`.
        with_hinge_weight: hinge_weight: f32;
        /// Sets the clip applied to G(x) before `L_pert`.
        with_pert_clip: pert_clip: Option<f32>;
        /// Sets the distance of `L_adv`.
        with_distance: distance: AdvDistance;
        /// Sets what `L_adv` measures.
        with_loss: loss: AdvLoss;
        /// Sets the optimiser settings.
        with_optimizer: optimizer: OptimizerConfig;
        /// Sets the stopping rule.
        with_stopping: stopping: Stopping;
        /// Sets the batch size.
        with_batch_size: batch_size: usize;
        /// Sets the gradient source.
        with_gradient_source: gradient_source: GradientSource;
        /// Sets the seed.
        with_seed: seed: u64;
        /// Sets the target cluster (`None`: untargeted).
        with_target: target: Option<ClusterId>;
        /// Sets the training query budget.
        with_budget: budget: QueryBudget;
        /// Sets the largest oracle call of the query-only estimators.
        with_max_images_per_call: max_images_per_call: Option<usize>;
        /// Sets per-epoch shuffling.
        with_shuffle: shuffle: bool;
        /// Sets the output directory.
        with_output_dir: output_dir: Option<PathBuf>;
        /// Sets whether progress bars are shown.
        with_progress: progress: bool;
        /// Sets the coarseness of the query-only estimators' directions.
        with_direction_tile: direction_tile: usize;
        /// Sets the weight of each image's previous estimate (time prior).
        with_estimate_momentum: estimate_momentum: f32;
        /// Sets the call counts at which the generator is snapshotted.
        with_snapshot_calls: snapshot_calls: Vec<u64>;
    }
}
