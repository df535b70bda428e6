//! The error type shared by every metric.

use thiserror::Error;

/// Everything that can go wrong when scoring a clustering.
///
/// No metric in this crate panics: invalid inputs are reported through this
/// enum instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The true and predicted label slices do not have the same length.
    #[error("label slices differ in length: {true_len} true labels vs {pred_len} predicted labels")]
    LengthMismatch {
        /// Length of the ground-truth label slice.
        true_len: usize,
        /// Length of the predicted label slice.
        pred_len: usize,
    },
    /// The metric is undefined for zero samples (clustering accuracy and the
    /// confusion matrix need at least one sample).
    #[error("empty input: the metric needs at least one sample")]
    EmptyInput,
    /// A dense table of `rows x cols` cells would exceed `limit` cells.
    ///
    /// Returned by [`ContingencyTable::new`](crate::ContingencyTable::new)
    /// (and so by [`confusion_matrix`](crate::confusion_matrix)) when there
    /// are too many distinct labels on both sides. The scores never return
    /// it.
    #[error("dense table of {rows} x {cols} cells exceeds the limit of {limit} cells")]
    TableTooLarge {
        /// Number of rows of the table that was refused.
        rows: usize,
        /// Number of columns of the table that was refused.
        cols: usize,
        /// The largest number of cells allowed.
        limit: usize,
    },
    /// The weights of a matching problem sum to more than `limit`
    /// ([`MAX_TOTAL_WEIGHT`](crate::MAX_TOTAL_WEIGHT)), which would risk
    /// overflowing the solver's exact integer arithmetic.
    ///
    /// Returned by [`max_weight_matching`](crate::max_weight_matching), and by
    /// the accuracy for more than `limit` samples.
    #[error("matching weights sum to more than {limit}")]
    WeightsTooLarge {
        /// The largest total weight allowed.
        limit: usize,
    },
}

/// Checks that the two label slices have the same length.
pub(crate) fn check_lengths(true_len: usize, pred_len: usize) -> Result<(), MetricsError> {
    if true_len == pred_len {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch { true_len, pred_len })
    }
}
