//! The one error type of `advclust-remote`.

use advclust_core::CoreError;

use crate::protocol::Datatype;

/// Errors of the wire format, of connecting to a model server and of its answers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    /// A tensor's datatype is not one advclust reads or writes there.
    #[error("unsupported tensor datatype {0}")]
    UnsupportedDatatype(Datatype),
    /// A size computed from a peer's shape overflows.
    #[error("tensor size overflows")]
    SizeOverflow,
    /// A concrete tensor has a negative dimension.
    #[error("negative tensor dimension {0}")]
    NegativeDimension(i64),
    /// Binary tensor bytes do not match the size the shape and datatype imply.
    #[error("binary tensor data has {actual} bytes where {expected} were expected")]
    BinarySizeMismatch {
        /// Bytes implied by shape and datatype (or by `binary_data_size`).
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// An integer tensor holds a value that is not an integer.
    #[error("tensor element {index} is {value}, not an integer")]
    NotAnInteger {
        /// Flat index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A parameter has a value of the wrong type or range.
    #[error("parameter {name} has the invalid value {value}")]
    BadParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, as JSON.
        value: String,
    },
    /// `Inference-Header-Content-Length` points past the end of the body.
    #[error(
        "Inference-Header-Content-Length {header_length} is past the end of a {body}-byte body"
    )]
    HeaderLengthPastBody {
        /// The header's value.
        header_length: usize,
        /// The body's length.
        body: usize,
    },
    /// A tensor has neither inline data nor a binary size.
    #[error("tensor {0} has no data")]
    NoData(String),
    /// A tensor's data does not have the length its shape implies.
    #[error("tensor {name} has {actual} elements where its shape implies {expected}")]
    DataLengthMismatch {
        /// Tensor name.
        name: String,
        /// Elements the shape implies.
        expected: usize,
        /// Elements present.
        actual: usize,
    },
    /// A body is not the JSON it should be.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A victim address that is not `kserve+http(s)://host[:port]/models/<name>[...]`.
    #[error("bad model server address {address:?}: {reason}")]
    BadTarget {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached, or kept failing, through every retry.
    #[error("{url}: no answer after {attempts} attempt(s): {last}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server refused the request with a status that retrying cannot fix.
    #[error("{url}: HTTP {status}: {message}")]
    Rejected {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error message (or the start of its body).
        message: String,
    },
    /// The server answered that the victim's query budget is spent.
    #[error("{url}: the server's query budget is exhausted: {message}")]
    ServerBudgetExhausted {
        /// The URL requested.
        url: String,
        /// The server's message.
        message: String,
    },
    /// The server or model is not live or not ready.
    #[error("{url}: not ready (HTTP {status})")]
    NotReady {
        /// The URL checked.
        url: String,
        /// Its status.
        status: u16,
    },
    /// The model's metadata cannot be used to attack it.
    #[error("model metadata of {model}: {reason}")]
    Metadata {
        /// Model name.
        model: String,
        /// What is missing or inconsistent.
        reason: String,
    },
    /// The images do not have the shape the served model takes.
    #[error("the model takes inputs of shape {expected:?}; the images are [C, H, W] = {actual:?}")]
    InputMismatch {
        /// The model's input shape (`-1`: any).
        expected: Vec<i64>,
        /// The images' shape.
        actual: [usize; 3],
    },
    /// An answer that breaks the protocol or the victim's contract (wrong shape, NaN, rows that
    /// are not distributions, k changing between calls, an HTML page, a truncated body).
    #[error("{url}: unusable answer: {reason}")]
    BadAnswer {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential could not be read.
    #[error("credential: {0}")]
    Credential(String),
    /// An invalid client setting.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// Setting name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// An error of the core types.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<RemoteError> for CoreError {
    /// The form an attack sees through [`advclust_core::ClusterOracle`]: an unreachable server
    /// and an unusable answer are transport failures (no query answered), a spent server
    /// budget is an exhausted budget, a refused request is a rejection.
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Core(c) => c,
            RemoteError::ServerBudgetExhausted { .. } => {
                CoreError::RemoteBudgetExhausted(e.to_string())
            }
            RemoteError::Rejected { status, .. } => CoreError::Rejected {
                status,
                message: e.to_string(),
            },
            RemoteError::InputMismatch { .. } | RemoteError::InvalidSetting { .. } => {
                CoreError::InvalidParameter {
                    name: "images",
                    reason: e.to_string(),
                }
            }
            other => CoreError::Transport(other.to_string()),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RemoteError> = std::result::Result<T, E>;
