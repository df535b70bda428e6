//! What the running server shares between requests: the model, its replicas, the query
//! ledger with its budget, the request counters, and their Prometheus rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use advclust_core::QueryBudget;

use crate::config::CheckedServeConfig;
use crate::error::{Result, ServeError};
use crate::faults::FaultKind;
use crate::model::{ModelSpec, Pool, ServedModel};

/// Counters of a running server, as [`crate::ServerHandle::stats`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Inference requests to the served model whose body was read (the fault plan's
    /// sequence numbers run over these).
    pub inference_requests: u64,
    /// Inference requests answered with memberships or labels (what the budget counts and
    /// the response's `query_count` reports).
    pub answered_requests: u64,
    /// Images in the answered requests.
    pub answered_images: u64,
    /// Requests refused because the budget could not answer them.
    pub budget_refusals: u64,
    /// Faults injected, of every kind.
    pub faults_injected: u64,
    /// Requests the oracle itself failed.
    pub oracle_failures: u64,
}

/// Answered queries and those in flight, against the budget.
#[derive(Debug, Default)]
struct Ledger {
    answered_requests: u64,
    answered_images: u64,
    reserved_requests: u64,
    reserved_images: u64,
}

/// State shared by all handlers.
pub(crate) struct AppState {
    pub spec: ModelSpec,
    pub config: CheckedServeConfig,
    pub pool: Arc<Pool>,
    ledger: Mutex<Ledger>,
    sequence: AtomicU64,
    budget_refusals: AtomicU64,
    oracle_failures: AtomicU64,
    faults: [AtomicU64; 5],
    requests: Mutex<BTreeMap<(String, String), u64>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("model", &self.spec.name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    pub fn new(model: ServedModel, config: CheckedServeConfig) -> Result<Self> {
        let spec = model.spec()?;
        Ok(AppState {
            spec,
            config,
            pool: Arc::new(model.into_pool()),
            ledger: Mutex::default(),
            sequence: AtomicU64::new(0),
            budget_refusals: AtomicU64::new(0),
            oracle_failures: AtomicU64::new(0),
            faults: Default::default(),
            requests: Mutex::default(),
        })
    }

    /// The next inference request's sequence number.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::SeqCst)
    }

    pub fn record_fault(&self, kind: FaultKind) {
        self.faults[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_oracle_failure(&self) {
        self.oracle_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_request(&self, route: &str, status: &str) {
        *lock(&self.requests)
            .entry((route.to_owned(), status.to_owned()))
            .or_default() += 1;
    }

    /// Reserves budget for one request of `images` images, or refuses it (counted as a
    /// budget refusal, nothing else).
    pub fn reserve(self: &Arc<Self>, images: u64) -> Result<Reservation> {
        let QueryBudget {
            max_batch_calls,
            max_images,
        } = self.config.budget();
        let mut l = lock(&self.ledger);
        let calls = l.answered_requests.saturating_add(l.reserved_requests);
        let used = l.answered_images.saturating_add(l.reserved_images);
        let refusal = if max_batch_calls.is_some_and(|m| calls.saturating_add(1) > m) {
            Some(format!(
                "{} of {} request(s) answered ({} in flight)",
                l.answered_requests,
                max_batch_calls.unwrap_or_default(),
                l.reserved_requests
            ))
        } else if max_images.is_some_and(|m| used.saturating_add(images) > m) {
            Some(format!(
                "{images} more image(s) would exceed the limit of {} image(s) \
                 ({} answered, {} in flight)",
                max_images.unwrap_or_default(),
                l.answered_images,
                l.reserved_images
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            drop(l);
            self.budget_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(ServeError::BudgetExhausted(message));
        }
        l.reserved_requests += 1;
        l.reserved_images = l.reserved_images.saturating_add(images);
        Ok(Reservation {
            state: Arc::clone(self),
            images,
            done: false,
        })
    }

    pub fn stats(&self) -> ServerStats {
        let l = lock(&self.ledger);
        ServerStats {
            inference_requests: self.sequence.load(Ordering::SeqCst),
            answered_requests: l.answered_requests,
            answered_images: l.answered_images,
            budget_refusals: self.budget_refusals.load(Ordering::Relaxed),
            faults_injected: self.faults.iter().map(|f| f.load(Ordering::Relaxed)).sum(),
            oracle_failures: self.oracle_failures.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text exposition of every counter.
    pub fn render_metrics(&self) -> String {
        let stats = self.stats();
        let mut out = String::new();
        header(
            &mut out,
            "advclust_requests_total",
            "counter",
            "HTTP requests received, by route and status.",
        );
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "advclust_requests_total{{route=\"{}\",status=\"{}\"}} {n}",
                escape(route),
                escape(status)
            );
        }
        let model = format!("model=\"{}\"", escape(&self.spec.name));
        let per_model = [
            (
                "advclust_inference_requests_total",
                "counter",
                "Inference requests received (bodies read).",
                stats.inference_requests,
            ),
            (
                "advclust_queries_total",
                "counter",
                "Inference requests answered.",
                stats.answered_requests,
            ),
            (
                "advclust_images_total",
                "counter",
                "Images in answered inference requests.",
                stats.answered_images,
            ),
            (
                "advclust_budget_refusals_total",
                "counter",
                "Inference requests refused by the query budget.",
                stats.budget_refusals,
            ),
            (
                "advclust_oracle_failures_total",
                "counter",
                "Inference requests the oracle failed.",
                stats.oracle_failures,
            ),
            (
                "advclust_replicas_busy",
                "gauge",
                "Replicas computing an answer now.",
                self.pool.busy() as u64,
            ),
        ];
        for (name, kind, help, value) in per_model {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name}{{{model}}} {value}");
        }
        header(
            &mut out,
            "advclust_faults_injected_total",
            "counter",
            "Faults injected by the fault plan, by kind.",
        );
        for kind in FaultKind::ALL {
            let _ = writeln!(
                out,
                "advclust_faults_injected_total{{kind=\"{}\"}} {}",
                kind.name(),
                self.faults[kind.index()].load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Budget held for one request in flight: committed once answered, released otherwise
/// (also when the request is abandoned, e.g. the client hung up).
pub(crate) struct Reservation {
    state: Arc<AppState>,
    images: u64,
    done: bool,
}

impl Reservation {
    /// Counts the request as answered; returns the model's answered requests so far,
    /// this one included.
    pub fn commit(mut self) -> u64 {
        self.done = true;
        let mut l = lock(&self.state.ledger);
        l.reserved_requests = l.reserved_requests.saturating_sub(1);
        l.reserved_images = l.reserved_images.saturating_sub(self.images);
        l.answered_requests = l.answered_requests.saturating_add(1);
        l.answered_images = l.answered_images.saturating_add(self.images);
        l.answered_requests
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            let mut l = lock(&self.state.ledger);
            l.reserved_requests = l.reserved_requests.saturating_sub(1);
            l.reserved_images = l.reserved_images.saturating_sub(self.images);
        }
    }
}
