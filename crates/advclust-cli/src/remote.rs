//! Model-server victims: the client options of `--victim kserve+http://...`, and
//! `advclust serve`.

use std::path::PathBuf;
use std::time::Duration;

use advclust::Error;
use advclust::burn::tensor::Device;
use advclust::core::{ModelOracle, ParamGuard, QueryBudget};
use advclust::pipeline::VictimSpec;
use advclust::remote::{CheckedKServeConfig, Credential, Encoding, KServeConfig, RetryPolicy};
use advclust::serve::{
    FaultPlan, Replica, ServeConfig, ServedModel, ServerHandle, shutdown_signal,
};
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

/// `advclust serve`: a victim over the Open Inference Protocol.
#[derive(Args, Debug)]
pub(crate) struct Serve {
    /// Victim to serve: an embedded one (`advclust victims`) or a saved victim directory.
    #[arg(long, default_value = "pretrained-cc-mnist")]
    victim: VictimSpec,
    /// Model name in the routes (`/v2/models/<name>`).
    #[arg(long, default_value = "victim")]
    name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Copies of the victim answering at once.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Answer cluster ids only (the label-only setting of a clustering web service).
    #[arg(long)]
    labels_only: bool,
    /// Stop answering after this many requests (HTTP 403 "query budget exhausted").
    #[arg(long)]
    budget_calls: Option<u64>,
    /// Stop answering after this many images.
    #[arg(long)]
    budget_images: Option<u64>,
    /// Largest batch of one request.
    #[arg(long, default_value_t = advclust::serve::DEFAULT_MAX_IMAGES)]
    max_images_per_request: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = advclust::serve::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Threads of the HTTP runtime.
    #[arg(long, default_value_t = advclust::serve::DEFAULT_WORKER_THREADS)]
    threads: usize,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Seeded fault injection, to test clients against a server that fails like real ones.
#[derive(Args, Debug)]
struct FaultArgs {
    /// Seed of the fault draws (the faults depend on it and the request order only).
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Probability per request of an HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    fault_500: f64,
    /// Probability per request of an HTTP 503.
    #[arg(long, default_value_t = 0.0)]
    fault_503: f64,
    /// Probability per request of an HTTP 429.
    #[arg(long, default_value_t = 0.0)]
    fault_429: f64,
    /// Probability per request of a connection dropped without an answer.
    #[arg(long, default_value_t = 0.0)]
    fault_drop: f64,
    /// Probability per request of a delayed failure (past a client's timeout).
    #[arg(long, default_value_t = 0.0)]
    fault_delay: f64,
    /// Length of a delayed failure, in seconds.
    #[arg(long, default_value_t = 1.0)]
    fault_delay_seconds: f64,
    /// `Retry-After` seconds of 503 and 429 answers.
    #[arg(long, default_value_t = 0)]
    retry_after: u64,
}

impl FaultArgs {
    fn plan(&self) -> Result<FaultPlan, Error> {
        let probabilities = [
            self.fault_500,
            self.fault_503,
            self.fault_429,
            self.fault_drop,
            self.fault_delay,
        ];
        if probabilities.iter().all(|&p| p == 0.0) {
            return Ok(FaultPlan::none());
        }
        Ok(FaultPlan::new(self.fault_seed)
            .internal_error(self.fault_500)
            .unavailable(self.fault_503)
            .too_many_requests(self.fault_429)
            .drop_connection(self.fault_drop)
            .delay(
                self.fault_delay,
                seconds("fault-delay-seconds", self.fault_delay_seconds)?,
            )
            .retry_after_secs(self.retry_after))
    }
}

/// Serves the victim until Ctrl-C or SIGTERM, then prints what it answered.
pub(crate) fn serve(a: Serve, device: &Device) -> Result<(), Error> {
    if a.victim.is_remote() {
        return Err(Error::InvalidArgument(
            "serve a local victim (embedded or saved), not a served one".into(),
        ));
    }
    let victim = a.victim.load(device)?;
    let replicas: Vec<Replica> = (0..a.replicas)
        .map(|_| Box::new(ModelOracle::new(&victim, device)) as Replica)
        .collect();
    let model = ServedModel::with_replicas(a.name.clone(), replicas).labels_only(a.labels_only);
    let config = ServeConfig::new()
        .budget(QueryBudget {
            max_batch_calls: a.budget_calls,
            max_images: a.budget_images,
        })
        .max_images_per_request(a.max_images_per_request)
        .max_body_bytes(a.max_body_bytes)
        .worker_threads(a.threads)
        .faults(a.faults.plan()?)
        .check()?;
    let server = ServerHandle::start_until(a.addr.as_str(), model, config, shutdown_signal())?;
    eprintln!(
        "serving {} ({} replica(s){}) at {}; attack it with --victim kserve+{}/models/{}; Ctrl-C stops",
        a.victim,
        a.replicas,
        if a.labels_only { ", labels only" } else { "" },
        server.url(),
        server.url(),
        a.name
    );
    let s = server.join()?;
    println!(
        "answered {} request(s) / {} image(s); {} refused for budget, {} fault(s) injected",
        s.answered_requests, s.answered_images, s.budget_refusals, s.faults_injected
    );
    Ok(())
}
