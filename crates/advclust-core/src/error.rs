//! The one error type of `advclust-core`.

/// What kind of failure a [`CoreError`] is, so that callers can react without matching every
/// variant: retry a transport failure, stop on an exhausted budget, fix bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller passed something invalid (shape, value, parameter).
    BadInput,
    /// The oracle could not be reached or answered with something unusable.
    Transport,
    /// A query budget would be exceeded (here or at a server); the call was not answered.
    BudgetExhausted,
    /// The oracle refused the request for a reason retrying cannot fix (e.g. HTTP 4xx).
    Rejected,
}

/// Errors of the core types, the oracles and the query ledger.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A buffer's length does not match the shape it is said to have.
    #[error("shape mismatch: {what} expects {expected} values, got {actual}")]
    ShapeMismatch {
        /// What was being built.
        what: &'static str,
        /// Values the shape implies.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
    /// A shape whose number of values does not fit in `usize` (a size computed from input).
    #[error("size overflow: {what} of shape {dims:?} has more values than fit in memory")]
    SizeOverflow {
        /// What was being built.
        what: &'static str,
        /// The shape asked for.
        dims: Vec<usize>,
    },
    /// A dimension that must be positive is zero.
    #[error("empty dimension: {0} must be at least 1")]
    EmptyDimension(&'static str),
    /// A value is NaN or infinite.
    #[error("non-finite value {value} at flat index {index} of {what}")]
    NonFinite {
        /// What was being validated.
        what: &'static str,
        /// Flat index of the first offending value.
        index: usize,
        /// The value itself.
        value: f32,
    },
    /// A pixel lies outside the batch's value box.
    #[error("pixel {value} at flat index {index} lies outside the value box [{min}, {max}]")]
    OutOfBox {
        /// Flat index of the first offending pixel.
        index: usize,
        /// The pixel value.
        value: f32,
        /// Lower bound of the box.
        min: f32,
        /// Upper bound of the box.
        max: f32,
    },
    /// A membership row is negative or does not sum to one.
    #[error("membership row {row} is not a distribution (sum {sum}, min {min})")]
    NotADistribution {
        /// Row index.
        row: usize,
        /// Sum of the row.
        sum: f32,
        /// Smallest entry of the row.
        min: f32,
    },
    /// An input batch does not have the image shape the consumer expects.
    #[error("image shape mismatch: expected [C, H, W] = {expected:?}, got {actual:?}")]
    ImageShapeMismatch {
        /// Expected channels, height, width.
        expected: [usize; 3],
        /// Supplied channels, height, width.
        actual: [usize; 3],
    },
    /// Two things that must agree on the number of clusters do not.
    #[error("cluster count mismatch: expected k = {expected}, got k = {actual}")]
    ClusterCountMismatch {
        /// Expected number of clusters.
        expected: usize,
        /// Number found.
        actual: usize,
    },
    /// Two things that must agree on the number of samples do not.
    #[error("sample count mismatch: expected n = {expected}, got n = {actual}")]
    SampleCountMismatch {
        /// Expected number of samples.
        expected: usize,
        /// Number found.
        actual: usize,
    },
    /// Two batches that must share a value box do not.
    #[error("value box mismatch: [{a_min}, {a_max}] vs [{b_min}, {b_max}]")]
    ValueBoxMismatch {
        /// First box, lower bound.
        a_min: f32,
        /// First box, upper bound.
        a_max: f32,
        /// Second box, lower bound.
        b_min: f32,
        /// Second box, upper bound.
        b_max: f32,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The oracle could not be reached or gave an unusable answer.
    #[error("oracle transport failure: {0}")]
    Transport(String),
    /// A remote oracle answered that its own query budget is spent.
    #[error("{0}")]
    RemoteBudgetExhausted(String),
    /// A remote oracle refused the request (a status retrying cannot fix).
    #[error("{message}")]
    Rejected {
        /// The status the oracle answered (HTTP).
        status: u16,
        /// What it said, with where it was sent.
        message: String,
    },
    /// The query budget would be exceeded by this call; the call was not made.
    #[error(
        "query budget exhausted: {requested_images} more image(s) in 1 more call would exceed the budget \
         (used {used_calls} call(s) / {used_images} image(s); limits: calls {max_calls:?}, images {max_images:?})"
    )]
    BudgetExhausted {
        /// Batch calls made so far.
        used_calls: u64,
        /// Images queried so far.
        used_images: u64,
        /// Images the refused call would have sent.
        requested_images: u64,
        /// Limit on batch calls, if any.
        max_calls: Option<u64>,
        /// Limit on single images, if any.
        max_images: Option<u64>,
    },
}

impl CoreError {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::Transport(_) => ErrorKind::Transport,
            CoreError::BudgetExhausted { .. } | CoreError::RemoteBudgetExhausted(_) => {
                ErrorKind::BudgetExhausted
            }
            CoreError::Rejected { .. } => ErrorKind::Rejected,
            _ => ErrorKind::BadInput,
        }
    }

    /// True for an exhausted query budget.
    pub fn is_budget_exhausted(&self) -> bool {
        self.kind() == ErrorKind::BudgetExhausted
    }
}

/// Result alias of this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Returns the first non-finite value of `values`, as an error naming `what`.
pub(crate) fn check_finite(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(CoreError::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}
