//! The one error type of `advclust-perimage`.

use advclust_core::CoreError;

use crate::report::PerImageOutcome;

/// Everything that can go wrong while configuring or running a per-image attack.
#[derive(Debug, thiserror::Error)]
pub enum PerImageError {
    /// An error of the core types or of the oracle (including an outer budget's
    /// [`CoreError::BudgetExhausted`]) before any image was attacked.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A parameter is out of its valid range.
    #[error("invalid per-image attack parameter: {name}: {reason}")]
    InvalidParameter {
        /// The offending parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The target clusters do not fit the images or the victim.
    #[error("invalid targets: {0}")]
    InvalidTargets(String),
    /// The oracle failed after some images were attacked; `partial` holds every image's
    /// best-so-far result up to the failure (images never reached keep their clean version).
    #[error("per-image attack interrupted: {source}")]
    Interrupted {
        /// The cause.
        source: CoreError,
        /// The results so far.
        partial: Box<PerImageOutcome>,
    },
}

impl PerImageError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        PerImageError::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    /// The core error at the root (the oracle's failure for [`PerImageError::Interrupted`]).
    pub fn core(&self) -> Option<&CoreError> {
        match self {
            PerImageError::Core(e) | PerImageError::Interrupted { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// The results so far of an interrupted attack.
    pub fn into_partial(self) -> Option<PerImageOutcome> {
        match self {
            PerImageError::Interrupted { partial, .. } => Some(*partial),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, PerImageError>;
