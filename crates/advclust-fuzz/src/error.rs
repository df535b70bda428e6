//! The crate's error type.

use std::path::{Path, PathBuf};

/// What can stop a fuzz run before or between inputs (never a finding: those are
/// [`crate::harness::Failure`]s).
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A corpus is missing, empty or could not be generated.
    #[error("corpus: {0}")]
    Corpus(String),
    /// A target could not start (a server, a client).
    #[error("setup: {0}")]
    Setup(String),
    /// Bad command-line use.
    #[error("{0}")]
    Usage(String),
}

impl FuzzError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        FuzzError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = FuzzError> = std::result::Result<T, E>;
