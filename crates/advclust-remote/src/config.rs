//! Client settings of [`crate::KServeOracle`]: timeouts, retries, requests in flight, encoding,
//! credential.

use std::time::Duration;

use advclust_core::ParamGuard;
use serde::{Deserialize, Serialize};

use crate::error::{RemoteError, Result};
use crate::transport::{Credential, RetryPolicy};

/// How tensors travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// The binary tensor extension when the server advertises it, JSON otherwise.
    #[default]
    Auto,
    /// Always JSON.
    Json,
    /// Always binary (an error at connect if the server does not advertise it).
    Binary,
}

/// Client settings, unchecked (see [`ParamGuard`]).
///
/// ```
/// use advclust_core::ParamGuard;
/// use advclust_remote::KServeConfig;
/// let config = KServeConfig::new().in_flight(4).check().unwrap();
/// assert_eq!(config.in_flight(), 4);
/// assert!(KServeConfig::new().in_flight(0).check().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct KServeConfig(CheckedKServeConfig);

/// Client settings, validated.
#[derive(Debug, Clone)]
pub struct CheckedKServeConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) in_flight: usize,
    pub(crate) encoding: Encoding,
    pub(crate) max_response_bytes: u64,
    pub(crate) credential: Option<Credential>,
    pub(crate) jitter_seed: u64,
}

impl CheckedKServeConfig {
    /// Requests kept in flight by [`advclust_core::ClusterOracle::memberships_of_calls`].
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl Default for KServeConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl KServeConfig {
    /// Defaults: connect timeout 5 s, read timeout 60 s, [`RetryPolicy::default`], one request
    /// in flight, [`Encoding::Auto`], answers up to 256 MiB, no credential, jitter seed 0.
    pub fn new() -> Self {
        KServeConfig(CheckedKServeConfig {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            in_flight: 1,
            encoding: Encoding::Auto,
            max_response_bytes: 256 << 20,
            credential: None,
            jitter_seed: 0,
        })
    }

    /// Time allowed to open a connection.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.0.connect_timeout = t;
        self
    }

    /// Time allowed for an answer (and for each of its reads).
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.0.read_timeout = t;
        self
    }

    /// The retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.0.retry = policy;
        self
    }

    /// Requests in flight at once (1-64) when an attack sends a round of calls.
    pub fn in_flight(mut self, n: usize) -> Self {
        self.0.in_flight = n;
        self
    }

    /// How tensors travel.
    pub fn encoding(mut self, e: Encoding) -> Self {
        self.0.encoding = e;
        self
    }

    /// The largest answer body accepted.
    pub fn max_response_bytes(mut self, n: u64) -> Self {
        self.0.max_response_bytes = n;
        self
    }

    /// A credential sent with every request.
    pub fn credential(mut self, c: Credential) -> Self {
        self.0.credential = Some(c);
        self
    }

    /// Seed of the retry jitter (timing only: answers never depend on it).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.0.jitter_seed = seed;
        self
    }
}

impl ParamGuard for KServeConfig {
    type Checked = CheckedKServeConfig;
    type Error = RemoteError;

    fn check_ref(&self) -> Result<&CheckedKServeConfig> {
        let invalid = |name, reason: &str| RemoteError::InvalidSetting {
            name,
            reason: reason.to_string(),
        };
        if self.0.connect_timeout.is_zero() || self.0.read_timeout.is_zero() {
            return Err(invalid("timeout", "timeouts must be positive"));
        }
        if !(1..=64).contains(&self.0.in_flight) {
            return Err(invalid("in_flight", "between 1 and 64 requests"));
        }
        if self.0.retry.max_retries > 100 {
            return Err(invalid("max_retries", "at most 100"));
        }
        if self.0.retry.initial_backoff > self.0.retry.max_backoff {
            return Err(invalid("initial_backoff", "must not exceed max_backoff"));
        }
        if self.0.max_response_bytes < 1024 {
            return Err(invalid("max_response_bytes", "at least 1 KiB"));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<CheckedKServeConfig> {
        self.check_ref()?;
        Ok(self.0)
    }
}
