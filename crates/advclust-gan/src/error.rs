//! The one error type of `advclust-gan`.

use std::path::PathBuf;

use advclust_core::CoreError;
use advclust_metrics::MetricsError;

use crate::attack::TrainedAttack;

/// Everything that can go wrong while configuring, training, saving, loading or evaluating an
/// attack.
///
/// Errors raised *during* training (after the first step could have changed the generator) are
/// wrapped in [`AttackError::Interrupted`], which carries the generator trained so far; use
/// [`AttackError::root`] to see the underlying cause and [`AttackError::into_partial`] to get
/// the partial attack back.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// An error of the core types, an oracle or the query ledger (including
    /// [`CoreError::BudgetExhausted`]).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A clustering metric could not be computed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A configuration value is out of its valid range.
    #[error("invalid attack configuration: {name}: {reason}")]
    InvalidConfig {
        /// The offending field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The image height or width cannot go through the generator and discriminator.
    #[error("unsupported image size {height}x{width}: {reason}")]
    UnsupportedImageSize {
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// What the networks need.
        reason: String,
    },
    /// The target cluster of a targeted attack does not exist.
    #[error("target cluster {target} out of range for a victim with {k} clusters")]
    TargetOutOfRange {
        /// Requested target cluster.
        target: usize,
        /// Number of clusters of the victim.
        k: usize,
    },
    /// The victim returned an output of the wrong shape.
    #[error("victim output has shape {actual:?}, expected {expected:?}")]
    VictimOutputShape {
        /// Expected `[n, k]`.
        expected: [usize; 2],
        /// Shape received.
        actual: [usize; 2],
    },
    /// A loss or a victim output became NaN or infinite during training.
    #[error("non-finite {what} at epoch {epoch}, step {step}")]
    NonFinite {
        /// Which quantity.
        what: &'static str,
        /// Epoch (1-based).
        epoch: usize,
        /// Global step (1-based).
        step: u64,
    },
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be written or parsed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// The generator weights could not be saved or loaded.
    #[error("generator weights: {0}")]
    Record(String),
    /// A [`crate::QueryPenalty`] failed to answer or gave unusable values.
    #[error("penalty {name}: {source}")]
    Penalty {
        /// The penalty's name.
        name: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A saved attack or checkpoint does not match what it is loaded for.
    #[error("incompatible saved attack: {0}")]
    Incompatible(String),
    /// A run was asked to resume, but its checkpoint directory holds no complete checkpoint.
    #[error("nothing to resume: no complete checkpoint in {}", dir.display())]
    NothingToResume {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// Training stopped early because of `source`; `partial` is the attack trained so far
    /// (generator after the last completed step, report up to then), saved to `saved_to` when the
    /// configuration has an output directory.
    #[error("training interrupted: {source}")]
    Interrupted {
        /// What stopped training.
        source: Box<AttackError>,
        /// The attack trained so far.
        partial: Box<TrainedAttack>,
        /// Where the partial attack was saved, if anywhere.
        saved_to: Option<PathBuf>,
    },
}

impl AttackError {
    /// The underlying cause, looking through [`AttackError::Interrupted`].
    pub fn root(&self) -> &AttackError {
        match self {
            AttackError::Interrupted { source, .. } => source.root(),
            other => other,
        }
    }

    /// True when the cause is an exhausted query budget.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self.root(), AttackError::Core(e) if e.is_budget_exhausted())
    }

    /// The partial attack of an [`AttackError::Interrupted`].
    pub fn partial(&self) -> Option<&TrainedAttack> {
        match self {
            AttackError::Interrupted { partial, .. } => Some(partial),
            _ => None,
        }
    }

    /// Takes the partial attack out of an [`AttackError::Interrupted`].
    pub fn into_partial(self) -> Option<TrainedAttack> {
        match self {
            AttackError::Interrupted { partial, .. } => Some(*partial),
            _ => None,
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        AttackError::InvalidConfig {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AttackError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = AttackError> = std::result::Result<T, E>;
