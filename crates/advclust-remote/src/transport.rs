//! HTTP with timeouts, retries (exponential backoff, jitter, `Retry-After`) and credentials.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{RemoteError, Result};
use crate::protocol::{ErrorBody, INFERENCE_HEADER_LENGTH};

/// When and how often a failed request is tried again. Connection failures, timeouts, 5xx and
/// 429 are retried; other statuses are answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub max_retries: u32,
    /// Wait before the first retry; doubled at each further one.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts, whatever the backoff or `Retry-After` says.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): `initial * 2^retry`, capped, times a
    /// jitter factor in [0.5, 1) drawn from `jitter` (a uniform in [0, 1)); at least what the
    /// server asked for in `Retry-After`, within the cap.
    pub fn wait(&self, retry: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let backoff = exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.max_backoff)
    }
}

/// A secret sent with every request as one header (e.g. `Authorization: Bearer ...`). It is
/// never printed: `Debug` shows only the header name.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    header: String,
    value: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

impl Credential {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Result<Self> {
        Self::header("Authorization", &format!("Bearer {}", token.trim()))
    }

    /// Any header, e.g. `x-api-key`.
    pub fn header(name: &str, value: &str) -> Result<Self> {
        let value = value.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(RemoteError::Credential(format!(
                "invalid header name {name:?}"
            )));
        }
        if value.is_empty() || value.bytes().any(|b| b.is_ascii_control()) {
            return Err(RemoteError::Credential(format!(
                "the value for header {name} is empty or has control characters"
            )));
        }
        Ok(Credential {
            header: name.to_string(),
            value: value.to_string(),
        })
    }

    /// A bearer token from the environment variable `var`.
    pub fn bearer_from_env(var: &str) -> Result<Self> {
        let token = std::env::var(var).map_err(|_| {
            RemoteError::Credential(format!("environment variable {var} is not set"))
        })?;
        Self::bearer(&token)
    }

    /// A bearer token from the first line of a file.
    pub fn bearer_from_file(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .map_err(|e| RemoteError::Credential(format!("{}: {e}", path.display())))?;
        if meta.len() > 64 * 1024 {
            return Err(RemoteError::Credential(format!(
                "{}: {} bytes is too large for a token",
                path.display(),
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| RemoteError::Credential(format!("{}: {e}", path.display())))?;
        Self::bearer(text.lines().next().unwrap_or(""))
    }

    /// The header's name.
    pub fn header_name(&self) -> &str {
        &self.header
    }
}

/// What the transport did: attempts, retries and failures, over every request so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportStats {
    /// HTTP requests sent (each retry is one more).
    pub attempts: u64,
    /// Attempts that were retries of a failed one.
    pub retries: u64,
    /// Attempts that got no HTTP answer (refused connection, timeout, dropped connection).
    pub connection_failures: u64,
    /// Attempts answered with a retryable status (5xx, 429).
    pub retryable_statuses: u64,
    /// Requests that ended with a usable HTTP answer.
    pub answered: u64,
}

#[derive(Debug, Default)]
struct AtomicStats {
    attempts: AtomicU64,
    retries: AtomicU64,
    connection_failures: AtomicU64,
    retryable_statuses: AtomicU64,
    answered: AtomicU64,
}

impl AtomicStats {
    fn add(field: &AtomicU64) {
        field.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TransportStats {
        TransportStats {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            connection_failures: self.connection_failures.load(Ordering::Relaxed),
            retryable_statuses: self.retryable_statuses.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
        }
    }
}

/// An HTTP answer with a 2xx status.
#[derive(Debug)]
pub(crate) struct Reply {
    /// `Inference-Header-Content-Length`, when present.
    pub header_length: Option<usize>,
    /// The body.
    pub body: Vec<u8>,
}

/// Timeouts, body limit, retry policy and credential of one server's connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    agent: ureq::Agent,
    retry: RetryPolicy,
    credential: Option<Credential>,
    max_response_bytes: u64,
    jitter_seed: u64,
    serial: Arc<AtomicU64>,
    stats: Arc<AtomicStats>,
}

/// What one attempt came to.
enum Attempt {
    Answer(Reply),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail(RemoteError),
}

impl Http {
    pub(crate) fn new(
        connect_timeout: Duration,
        read_timeout: Duration,
        retry: RetryPolicy,
        credential: Option<Credential>,
        max_response_bytes: u64,
        jitter_seed: u64,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect_timeout))
            .timeout_recv_response(Some(read_timeout))
            .timeout_recv_body(Some(read_timeout))
            .timeout_send_body(Some(read_timeout))
            .user_agent(concat!("advclust-remote/", env!("CARGO_PKG_VERSION")))
            .build();
        Http {
            agent: config.into(),
            retry,
            credential,
            max_response_bytes,
            jitter_seed,
            serial: Arc::new(AtomicU64::new(0)),
            stats: Arc::new(AtomicStats::default()),
        }
    }

    pub(crate) fn stats(&self) -> TransportStats {
        self.stats.snapshot()
    }

    /// `GET url`; returns the status and body of any answer (no status is an error here).
    pub(crate) fn get_status(&self, url: &str) -> Result<(u16, Vec<u8>)> {
        self.with_retries(url, || {
            let mut req = self.agent.get(url);
            if let Some(c) = &self.credential {
                req = req.header(c.header.as_str(), c.value.as_str());
            }
            req.call()
        })
        .map(|(status, reply)| (status, reply.body))
    }

    /// `GET url`, which must answer 2xx.
    pub(crate) fn get(&self, url: &str) -> Result<Vec<u8>> {
        let (status, body) = self.get_status(url)?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(rejection(url, status, &body))
        }
    }

    /// `POST url` with `body` (JSON, or JSON followed by binary tensors when `header_length`
    /// is given), which must answer 2xx.
    pub(crate) fn post(
        &self,
        url: &str,
        body: &[u8],
        header_length: Option<usize>,
    ) -> Result<Reply> {
        let (status, reply) = self.with_retries(url, || {
            let mut req = self.agent.post(url);
            if let Some(c) = &self.credential {
                req = req.header(c.header.as_str(), c.value.as_str());
            }
            req = match header_length {
                Some(n) => req
                    .header(INFERENCE_HEADER_LENGTH, n.to_string())
                    .content_type("application/octet-stream"),
                None => req.content_type("application/json"),
            };
            req.send(body)
        })?;
        if (200..300).contains(&status) {
            Ok(reply)
        } else {
            Err(rejection(url, status, &reply.body))
        }
    }

    fn with_retries(
        &self,
        url: &str,
        send: impl Fn() -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Reply)> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut retry = 0u32;
        loop {
            AtomicStats::add(&self.stats.attempts);
            let mut status = 0;
            let outcome = match send() {
                Ok(response) => {
                    status = response.status().as_u16();
                    self.read(url, response)
                }
                Err(e) => {
                    AtomicStats::add(&self.stats.connection_failures);
                    Attempt::Retry {
                        reason: e.to_string(),
                        after: None,
                    }
                }
            };
            match outcome {
                Attempt::Answer(reply) => {
                    AtomicStats::add(&self.stats.answered);
                    return Ok((status, reply));
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { reason, after } => {
                    if retry >= self.retry.max_retries {
                        return Err(RemoteError::Unreachable {
                            url: url.to_string(),
                            attempts: retry + 1,
                            last: reason,
                        });
                    }
                    let jitter = unit_interval(advclust_core::derive_seed(
                        self.jitter_seed,
                        serial.wrapping_mul(64).wrapping_add(retry as u64),
                    ));
                    std::thread::sleep(self.retry.wait(retry, jitter, after));
                    retry += 1;
                    AtomicStats::add(&self.stats.retries);
                }
            }
        }
    }

    fn read(&self, url: &str, mut response: ureq::http::Response<ureq::Body>) -> Attempt {
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let header_length = header(INFERENCE_HEADER_LENGTH);
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_response_bytes)
            .read_to_vec();
        let body = match body {
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(n)) => {
                return Attempt::Fail(RemoteError::BadAnswer {
                    url: url.to_string(),
                    reason: format!("body larger than the {n}-byte limit"),
                });
            }
            Err(e) => {
                AtomicStats::add(&self.stats.connection_failures);
                return Attempt::Retry {
                    reason: format!("HTTP {status}, body cut off: {e}"),
                    after: None,
                };
            }
        };
        if status == 429 || (500..600).contains(&status) {
            AtomicStats::add(&self.stats.retryable_statuses);
            return Attempt::Retry {
                reason: format!("HTTP {status}: {}", error_message(&body)),
                after: retry_after,
            };
        }
        let header_length = match header_length.map(|v| v.trim().parse::<usize>()) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                return Attempt::Fail(RemoteError::BadAnswer {
                    url: url.to_string(),
                    reason: format!("bad {INFERENCE_HEADER_LENGTH} header"),
                });
            }
        };
        Attempt::Answer(Reply {
            header_length,
            body,
        })
    }
}

/// A uniform number in [0, 1) from 53 bits of `x`.
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The protocol's error message of a body, or its start when it is not an error object
/// (an HTML page from a proxy, say), on one line.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.error;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}

/// A non-retryable status: the server's spent budget, or a rejection.
fn rejection(url: &str, status: u16, body: &[u8]) -> RemoteError {
    let message = error_message(body);
    if message.starts_with("query budget exhausted") {
        RemoteError::ServerBudgetExhausted {
            url: url.to_string(),
            message,
        }
    } else {
        RemoteError::Rejected {
            url: url.to_string(),
            status,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        };
        assert_eq!(p.wait(0, 1.0, None), Duration::from_millis(100));
        assert_eq!(p.wait(0, 0.0, None), Duration::from_millis(50));
        assert_eq!(p.wait(3, 1.0, None), Duration::from_millis(800));
        assert_eq!(p.wait(40, 1.0, None), Duration::from_secs(2));
        assert_eq!(
            p.wait(0, 0.0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.wait(0, 0.0, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn credentials_never_print_their_value() {
        let c = Credential::bearer("s3cret").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(Credential::header("bad header", "x").is_err());
        assert!(Credential::header("x-api-key", "a\nb").is_err());
        assert!(Credential::bearer_from_env("ADVCLUST_SURELY_UNSET_VARIABLE").is_err());
    }

    #[test]
    fn error_messages_read_error_objects_and_html() {
        assert_eq!(
            error_message(br#"{"error": "no such model"}"#),
            "no such model"
        );
        assert_eq!(
            error_message(b"<html>\n <body>Bad Gateway</body></html>"),
            "<html> <body>Bad Gateway</body></html>"
        );
        assert!(matches!(
            rejection("u", 403, br#"{"error":"query budget exhausted: 10 calls"}"#),
            RemoteError::ServerBudgetExhausted { .. }
        ));
        assert!(matches!(
            rejection("u", 404, b""),
            RemoteError::Rejected { status: 404, .. }
        ));
    }
}
