//! The one error type of `advclust-models`.

use std::path::PathBuf;

/// Everything that can go wrong while building, training, saving or loading a victim model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of its valid range (reported by a `ParamGuard` check).
    #[error("invalid configuration {name}: {reason}")]
    InvalidConfig {
        /// The offending field.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Images do not have the `[C, H, W]` the model was built for.
    #[error("input shape mismatch: the model takes [C, H, W] = {expected:?}, got {actual:?}")]
    InputShape {
        /// The model's input shape.
        expected: [usize; 3],
        /// The shape supplied.
        actual: [usize; 3],
    },
    /// The number of clusters of a checkpoint is not the one asked for.
    #[error("cluster count mismatch: expected k = {expected}, the checkpoint has k = {actual}")]
    ClusterCountMismatch {
        /// The k the caller expected.
        expected: usize,
        /// The k found in the checkpoint.
        actual: usize,
    },
    /// Labels and images disagree on the number of samples.
    #[error("sample count mismatch: {images} images but {labels} labels")]
    LabelCount {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// The training set is smaller than one batch.
    #[error("training set too small: {available} images for a batch of {batch_size}")]
    TooFewImages {
        /// Images available.
        available: usize,
        /// Batch size asked for.
        batch_size: usize,
    },
    /// A checkpoint file (weights or JSON) does not exist.
    #[error("checkpoint file not found: {}", path.display())]
    MissingCheckpoint {
        /// The path looked for.
        path: PathBuf,
    },
    /// A checkpoint's weights file could not be decoded (truncated or not burnpack).
    #[error("corrupt or truncated checkpoint {origin}: {message}")]
    CorruptCheckpoint {
        /// File name, or `<bytes>` for in-memory checkpoints.
        origin: String,
        /// What the decoder said.
        message: String,
    },
    /// A checkpoint's weights do not fit the architecture its JSON describes.
    #[error("checkpoint {origin} does not match the architecture: {message}")]
    ArchitectureMismatch {
        /// File name, or `<bytes>` for in-memory checkpoints.
        origin: String,
        /// The shape / missing / unused tensors reported.
        message: String,
    },
    /// A model description (JSON) could not be parsed or has an unknown format version.
    #[error("bad model description {origin}: {message}")]
    BadDescription {
        /// File name, or `<bytes>`.
        origin: String,
        /// The parse error.
        message: String,
    },
    /// A saved model is of another kind than the one asked for.
    #[error("{origin} holds a {actual} victim, not a {expected} one")]
    WrongKind {
        /// File or directory name.
        origin: String,
        /// The kind asked for.
        expected: crate::victim::VictimKind,
        /// The kind found.
        actual: crate::victim::VictimKind,
    },
    /// A pretext (or its neighbours) does not fit the data or the model it is used with.
    #[error("pretext mismatch: {0}")]
    PretextMismatch(String),
    /// The loss became NaN or infinite during training (the last checkpoint is kept).
    #[error("training diverged at epoch {epoch}, step {step}: loss = {loss}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based step within the epoch.
        step: usize,
        /// The loss value.
        loss: f32,
    },
    /// A fit was given no images at all.
    #[error("no images to fit")]
    NoImages,
    /// A clustering fit was given fewer images than clusters.
    #[error("too few images to fit: {images} images for {clusters} clusters")]
    FewerImagesThanClusters {
        /// Images available.
        images: usize,
        /// Clusters asked for.
        clusters: usize,
    },
    /// A value that must be finite is NaN or infinite (input data, or a fitted parameter).
    #[error("non-finite value in {what} at index {index}: {value}")]
    NonFinite {
        /// What holds the value (`images`, `GMM variances`, ...).
        what: &'static str,
        /// Flat index of the first non-finite value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A file system operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Saving weights with burn failed.
    #[error("saving weights failed: {0}")]
    Save(String),
    /// An `advclust-core` type refused a value.
    #[error(transparent)]
    Core(#[from] advclust_core::CoreError),
    /// A clustering metric could not be computed.
    #[error(transparent)]
    Metrics(#[from] advclust_metrics::MetricsError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`ModelError::InvalidConfig`] for field `name`.
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        ModelError::InvalidConfig {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Implements `ParamGuard` for a config whose checked form is itself, through its private
/// `validate(&self) -> Result<()>` (linfa's pattern for parameters without a separate valid
/// type), or through another checking method given as the second argument.
macro_rules! validated_by_itself {
    ($t:ty) => {
        $crate::error::validated_by_itself!($t, validate);
    };
    ($t:ty, $check:ident) => {
        impl advclust_core::ParamGuard for $t {
            type Checked = $t;
            type Error = $crate::error::ModelError;

            fn check_ref(&self) -> $crate::error::Result<&$t> {
                self.$check()?;
                Ok(self)
            }

            fn check(self) -> $crate::error::Result<$t> {
                self.$check()?;
                Ok(self)
            }
        }
    };
}
pub(crate) use validated_by_itself;

/// Implements `ParamGuard` and [`Architecture`](crate::norm::Architecture) for a model config
/// through its inherent `parameter_count(&self) -> Result<u64>`.
macro_rules! validated_architecture {
    ($t:ty) => {
        $crate::error::validated_by_itself!($t, parameter_count);

        impl $crate::norm::Architecture for $t {
            fn parameter_count(&self) -> $crate::error::Result<u64> {
                <$t>::parameter_count(self)
            }
        }
    };
}
pub(crate) use validated_architecture;
