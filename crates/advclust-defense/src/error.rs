//! The one error type of `advclust-defense`.

use advclust_core::CoreError;
use advclust_models::ModelError;

/// Everything that can go wrong while fitting, scoring, saving or loading a defense.
#[derive(Debug, thiserror::Error)]
pub enum DefenseError {
    /// An error of the core types (batches, tensors, files).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An error of a victim or pretext model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A parameter is out of its valid range.
    #[error("invalid defense parameter: {name}: {reason}")]
    InvalidParameter {
        /// The offending parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A feature matrix or score vector holds a NaN or an infinity.
    #[error("{what} holds a non-finite value at index {index}")]
    NonFinite {
        /// What was checked.
        what: &'static str,
        /// Flat index of the first bad value.
        index: usize,
    },
    /// Two inputs that must agree in size do not.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// An input set is empty where at least one element is needed.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A ranking metric is undefined for labels of one class only (scikit-learn raises too).
    #[error("{metric} is undefined when every label is {class} (both classes are needed)")]
    SingleClass {
        /// The metric.
        metric: &'static str,
        /// The only class present (true = positive).
        class: bool,
    },
    /// A linear-algebra routine did not converge.
    #[error("linear algebra: {0}")]
    LinearAlgebra(String),
    /// A saved detector is unreadable or inconsistent.
    #[error("bad saved detector {origin}: {message}")]
    BadDetector {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl DefenseError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        DefenseError::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DefenseError>;

/// Checks that every value is finite.
pub(crate) fn check_finite<T: Copy + Into<f64>>(what: &'static str, values: &[T]) -> Result<()> {
    match values.iter().position(|&v| !v.into().is_finite()) {
        Some(index) => Err(DefenseError::NonFinite { what, index }),
        None => Ok(()),
    }
}
