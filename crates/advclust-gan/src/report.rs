//! What an attack run reports: per-epoch curves, query counts, norms, scores.

use advclust_core::{NormSummary, QueryCounts, ThreatModel};
use advclust_metrics::ClusteringScores;
use serde::{Deserialize, Serialize};

use crate::config::GradientSource;

/// Means over one epoch's training steps, and state at the epoch's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Generator learning rate in this epoch.
    pub lr_generator: f64,
    /// Discriminator learning rate in this epoch.
    pub lr_discriminator: f64,
    /// Mean discriminator loss `mean((D(x)-1)^2) + mean(D(x_adv)^2)`.
    pub d_loss: f64,
    /// Mean generator loss `L_gan + lambda_pert L_pert - lambda_adv L_adv + hinge_weight L_constraint`.
    pub g_loss: f64,
    /// Mean generator GAN term `mean((D(x_adv)-1)^2)`.
    pub gan_loss: f64,
    /// Mean `L_adv` (for query-only sources: the estimate from the perturbed queries).
    pub l_adv: f64,
    /// Mean `L_pert`.
    pub l_pert: f64,
    /// Mean hinge `L_constraint` (0 when its weight is 0).
    pub l_constraint: f64,
    /// Mean weighted generator penalty (0 without one; see `AttackTrainer::with_penalty`).
    #[serde(default)]
    pub l_penalty: f64,
    /// Mean per-sample L2 norm of the bounded perturbation `x_adv - x`.
    pub mean_l2: f64,
    /// Largest per-sample L-infinity norm of `x_adv - x`.
    pub max_linf: f64,
    /// Untargeted: fraction of the epoch's images whose adversarial cluster differs from the
    /// clean one; targeted: fraction assigned to the target. For query-only sources the
    /// adversarial cluster is the argmax of the mean memberships of the perturbed queries.
    pub success_rate: f64,
    /// NMI, ARI and ACC of the epoch's adversarial clusters against the labels, when the
    /// trainer was given labels (no queries beyond training's own).
    pub scores: Option<ClusteringScores>,
    /// Training queries so far (cumulative).
    pub queries: QueryCounts,
    /// Training steps so far (cumulative).
    pub steps: u64,
    /// Seconds since training started.
    pub elapsed_s: f64,
    /// True for the last entry of a run that stopped inside an epoch (on a spent budget): the
    /// means are over the steps that ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Where the convergence rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvergenceInfo {
    /// Epoch at which convergence was declared.
    pub epoch: usize,
    /// Training steps (batches) up to then.
    pub steps: u64,
    /// Training queries up to then (paper Table 2 counts batches of clean + adversarial calls).
    pub queries: QueryCounts,
}

/// Everything a training (and optionally an evaluation) run measured. Plain serde data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    /// The gradient source used.
    pub gradient_source: GradientSource,
    /// The threat model (norm, radius, value box).
    pub threat_model: ThreatModel,
    /// How delta was bounded, in words.
    pub bound: String,
    /// `[C, H, W]` of the images.
    pub image_shape: [usize; 3],
    /// Clusters of the victim.
    pub num_clusters: usize,
    /// Training images.
    pub train_images: usize,
    /// Epochs completed.
    pub epochs: usize,
    /// Training steps (batches) completed.
    pub steps: u64,
    /// Victim queries made by training: batch calls and single images.
    pub training_queries: QueryCounts,
    /// Queries sent to a query-only penalty ([`crate::QueryPenalty`]; `None` without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty_queries: Option<QueryCounts>,
    /// Set when the convergence rule stopped training.
    pub converged: Option<ConvergenceInfo>,
    /// Why training ended (the last epoch, convergence, or the query budget).
    #[serde(default)]
    pub stopped: StopReason,
    /// Set when training stopped on an error (the message).
    pub interrupted: Option<String>,
    /// Wall time of training, seconds.
    pub training_wall_time_s: f64,
    /// Per-epoch curves.
    pub curves: Vec<EpochStats>,
    /// Clean NMI/ARI/ACC of the last evaluation.
    pub clean_scores: Option<ClusteringScores>,
    /// Adversarial NMI/ARI/ACC of the last evaluation.
    pub adversarial_scores: Option<ClusteringScores>,
    /// Fraction of evaluated images whose cluster changed under attack.
    pub changed_fraction: Option<f64>,
    /// Norms of the evaluated perturbations `x_adv - x`.
    pub delta_norms: Option<NormSummary>,
    /// Images evaluated (last evaluation).
    pub evaluated_images: usize,
    /// Victim queries made by evaluations (all of them; separate from training).
    pub evaluation_queries: QueryCounts,
    /// Wall time of the evaluations, seconds.
    pub evaluation_wall_time_s: f64,
}

impl AttackReport {
    /// A copy with every wall-clock field zeroed, for comparing runs.
    pub fn without_timings(&self) -> AttackReport {
        let mut r = self.clone();
        r.training_wall_time_s = 0.0;
        r.evaluation_wall_time_s = 0.0;
        for e in &mut r.curves {
            e.elapsed_s = 0.0;
        }
        r
    }

    /// The last epoch's stats, if any epoch completed.
    pub fn last_epoch(&self) -> Option<&EpochStats> {
        self.curves.last()
    }
}

/// Why training ended. A spent query budget is the normal end of a black-box run: training
/// stops before a step whose calls would not all fit (nothing of that step is sent), and the
/// attack trained so far is the result, not an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum StopReason {
    /// The configured number of epochs ran.
    #[default]
    Epochs,
    /// The convergence rule fired (see [`AttackReport::converged`]).
    Converged,
    /// The next step needed more queries than the budget had left; it was not started.
    Budget {
        /// Batch calls the next step would have made.
        next_step_calls: u64,
        /// Images of those calls.
        next_step_images: u64,
    },
    /// The oracle itself refused a query for its own budget (e.g. a server's quota); the step
    /// it happened in made no update.
    OracleBudget {
        /// The oracle's message.
        message: String,
    },
}

impl StopReason {
    /// True when a query budget (this run's or the oracle's) ended training.
    pub fn is_budget(&self) -> bool {
        matches!(
            self,
            StopReason::Budget { .. } | StopReason::OracleBudget { .. }
        )
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Epochs => f.write_str("all epochs ran"),
            StopReason::Converged => f.write_str("converged"),
            StopReason::Budget {
                next_step_calls,
                next_step_images,
            } => write!(
                f,
                "query budget spent (the next step needed {next_step_calls} calls of \
                 {next_step_images} images)"
            ),
            StopReason::OracleBudget { message } => {
                write!(f, "the oracle's budget is spent: {message}")
            }
        }
    }
}

/// Result of [`crate::TrainedAttack::evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Scores of the clean clustering against the labels.
    pub clean: ClusteringScores,
    /// Scores of the adversarial clustering against the labels.
    pub adversarial: ClusteringScores,
    /// Fraction of images whose cluster changed.
    pub changed_fraction: f64,
    /// Norms of `x_adv - x`.
    pub norms: NormSummary,
    /// Queries this evaluation made.
    pub queries: QueryCounts,
    /// Clean cluster of each image.
    pub clean_clusters: Vec<usize>,
    /// Adversarial cluster of each image.
    pub adversarial_clusters: Vec<usize>,
}
