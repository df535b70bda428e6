//! The one error type of `advclust-serve`: configuration and startup failures, and every
//! refusal of a request (each with its HTTP status and the protocol's error object).

use advclust_core::{CoreError, ErrorKind};
use advclust_remote::RemoteError;
use advclust_remote::protocol::ErrorBody;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::faults::FaultKind;

/// Everything that can go wrong while configuring or running the server, or answering one
/// request. Request-level variants become an HTTP answer ([`ServeError::http_status`]) with
/// the body `{"error": "<message>"}`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A configuration parameter is out of its valid range.
    #[error("invalid server parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The model to serve is unusable (no replica, replicas that disagree, a bad name).
    #[error("invalid served model: {0}")]
    InvalidModel(String),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An I/O failure of the running server.
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server's runtime or thread failed.
    #[error("server runtime: {0}")]
    Runtime(String),
    /// HTTP 400: a request that breaks the protocol or the model's input contract.
    #[error("{0}")]
    BadRequest(String),
    /// HTTP 400: a request whose wire format is broken (sizes, binary parts, JSON).
    #[error("{0}")]
    Protocol(#[from] RemoteError),
    /// HTTP 413: a request body or batch larger than the server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// HTTP 404: no such model, version or route.
    #[error("{0}")]
    NotFound(String),
    /// HTTP 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// HTTP 403: the model's query budget cannot answer this request; nothing was counted.
    #[error("query budget exhausted: {0}")]
    BudgetExhausted(String),
    /// HTTP 500, 503 or 429: a failure injected by the fault plan (the model was not called).
    #[error("injected fault: {kind}")]
    Injected {
        /// What was injected.
        kind: FaultKind,
        /// The `Retry-After` seconds sent with it (503 and 429).
        retry_after: Option<u64>,
    },
    /// The oracle failed (HTTP 400 for input it refuses, 500 otherwise); nothing was counted.
    #[error("oracle failure: {0}")]
    Oracle(CoreError),
    /// HTTP 500: a failure of the server itself.
    #[error("internal server error: {0}")]
    Internal(String),
}

impl ServeError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        ServeError::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        ServeError::BadRequest(message.into())
    }

    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) | ServeError::Protocol(_) => 400,
            ServeError::TooLarge(_) => 413,
            ServeError::NotFound(_) => 404,
            ServeError::MethodNotAllowed => 405,
            ServeError::BudgetExhausted(_) => 403,
            ServeError::Injected { kind, .. } => kind.http_status(),
            ServeError::Oracle(e) if e.kind() == ErrorKind::BadInput => 400,
            _ => 500,
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = match &self {
            ServeError::Injected { retry_after, .. } => *retry_after,
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"?\"}".to_vec());
        let mut response = (status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Result alias of this crate.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;
