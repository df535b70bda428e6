//! Model-server victims: the client options of `--victim kserve+http://...`.

use std::path::PathBuf;
use std::time::Duration;

use advclust::Error;
use advclust::core::ParamGuard;
use advclust::remote::{CheckedKServeConfig, Credential, Encoding, KServeConfig, RetryPolicy};
use clap::{Args, ValueEnum};

/// How the client talks to a `kserve+http(s)://` victim.
#[derive(Args, Debug, Clone)]
pub(crate) struct RemoteArgs {
    /// Requests kept in flight at once against a model server (answers stay in order).
    #[arg(long, default_value_t = 1)]
    pub(crate) in_flight: usize,
    /// Seconds allowed to connect to a model server.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) connect_timeout: f64,
    /// Seconds allowed for each answer of a model server.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) read_timeout: f64,
    /// Retries of a request that failed (connection error, timeout, 5xx, 429).
    #[arg(long, default_value_t = RetryPolicy::default().max_retries)]
    pub(crate) retries: u32,
    /// Tensor encoding: auto (binary when the server offers it), json, binary.
    #[arg(long, value_enum, default_value_t = WireEncoding::Auto)]
    pub(crate) encoding: WireEncoding,
    /// Environment variable holding a bearer token for the model server.
    #[arg(long, conflicts_with = "token_file")]
    pub(crate) token_env: Option<String>,
    /// File whose first line is a bearer token for the model server.
    #[arg(long)]
    pub(crate) token_file: Option<PathBuf>,
}

/// The tensor encodings of the command line.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum WireEncoding {
    Auto,
    Json,
    Binary,
}

fn seconds(name: &str, s: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::InvalidArgument(format!("--{name} must be a positive number of seconds"))
        })
}

impl RemoteArgs {
    /// The checked client settings; `seed` seeds the retry jitter.
    pub(crate) fn config(&self, seed: u64) -> Result<CheckedKServeConfig, Error> {
        let mut config = KServeConfig::new()
            .in_flight(self.in_flight)
            .connect_timeout(seconds("connect-timeout", self.connect_timeout)?)
            .read_timeout(seconds("read-timeout", self.read_timeout)?)
            .retry(RetryPolicy {
                max_retries: self.retries,
                ..RetryPolicy::default()
            })
            .encoding(match self.encoding {
                WireEncoding::Auto => Encoding::Auto,
                WireEncoding::Json => Encoding::Json,
                WireEncoding::Binary => Encoding::Binary,
            })
            .jitter_seed(seed);
        if let Some(var) = &self.token_env {
            config = config.credential(Credential::bearer_from_env(var)?);
        }
        if let Some(path) = &self.token_file {
            config = config.credential(Credential::bearer_from_file(path)?);
        }
        Ok(config.check()?)
    }
}
