//! Seeded fault injection: a server that fails the way real ones do, reproducibly, so that a
//! client's retries, timeouts and query accounting can be tested.

use std::fmt;
use std::time::Duration;

use advclust_core::derive_seed;

use crate::error::{Result, ServeError};

/// What an injected fault does to one inference request. The model is never called for a
/// faulted request, and the request is not counted as an answered query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Answer HTTP 500.
    InternalError,
    /// Answer HTTP 503 with `Retry-After`.
    Unavailable,
    /// Answer HTTP 429 with `Retry-After`.
    TooManyRequests,
    /// Close the connection without an answer.
    DropConnection,
    /// Wait [`FaultPlan::delay_for`], then answer HTTP 503 with `Retry-After` (a client whose
    /// timeout is shorter sees a timeout; one whose timeout is longer sees a retryable
    /// failure: in both cases nothing was answered, on either side's count).
    Delay,
}

impl FaultKind {
    /// Every kind, in the order the probabilities of a [`FaultPlan`] are laid out.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::InternalError,
        FaultKind::Unavailable,
        FaultKind::TooManyRequests,
        FaultKind::DropConnection,
        FaultKind::Delay,
    ];

    /// Label of the kind in metrics and messages (`internal_error`, `unavailable`,
    /// `too_many_requests`, `drop_connection`, `delay`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::InternalError => "internal_error",
            FaultKind::Unavailable => "unavailable",
            FaultKind::TooManyRequests => "too_many_requests",
            FaultKind::DropConnection => "drop_connection",
            FaultKind::Delay => "delay",
        }
    }

    /// The HTTP status the fault answers with (a dropped connection answers nothing; 500 is
    /// what the server records for it).
    pub fn http_status(self) -> u16 {
        match self {
            FaultKind::InternalError | FaultKind::DropConnection => 500,
            FaultKind::Unavailable | FaultKind::Delay => 503,
            FaultKind::TooManyRequests => 429,
        }
    }

    /// True for the kinds answered with a `Retry-After` header.
    pub fn sends_retry_after(self) -> bool {
        matches!(
            self,
            FaultKind::Unavailable | FaultKind::TooManyRequests | FaultKind::Delay
        )
    }

    pub(crate) fn index(self) -> usize {
        match self {
            FaultKind::InternalError => 0,
            FaultKind::Unavailable => 1,
            FaultKind::TooManyRequests => 2,
            FaultKind::DropConnection => 3,
            FaultKind::Delay => 4,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest delay a plan may inject.
pub const MAX_FAULT_DELAY: Duration = Duration::from_secs(3600);

/// Which inference requests fail, and how: deterministic given the seed and the request's
/// sequence number (0 for the first inference request to the served model, counted in
/// arrival order; requests refused before their body was read do not count).
///
/// Request `i` takes the scripted fault `script[i]` if `i` is within the script, otherwise a
/// fault drawn with the given probabilities from a uniform number derived from `(seed, i)`
/// alone; so the same plan and the same sequence of requests give the same faults, whatever
/// the timing.
///
/// ```
/// use std::time::Duration;
/// use advclust_serve::{FaultKind, FaultPlan};
///
/// let plan = FaultPlan::new(7).unavailable(0.3).delay(0.1, Duration::from_millis(50));
/// let faults: Vec<_> = (0..100).map(|i| plan.decide(i)).collect();
/// assert_eq!(faults, (0..100).map(|i| plan.decide(i)).collect::<Vec<_>>());
/// assert!(faults.contains(&Some(FaultKind::Unavailable)));
/// let scripted = FaultPlan::scripted(vec![Some(FaultKind::TooManyRequests), None]);
/// assert_eq!(scripted.decide(0), Some(FaultKind::TooManyRequests));
/// assert_eq!(scripted.decide(1), None);
/// assert_eq!(scripted.decide(2), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    seed: u64,
    probabilities: [f64; 5],
    delay_for: Duration,
    retry_after_secs: u64,
    script: Vec<Option<FaultKind>>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan::none()
    }
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        FaultPlan::new(0)
    }

    /// A plan drawing from `seed`, with every probability zero (set them with the builder
    /// methods), a delay of one second and `Retry-After: 0`.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            seed,
            probabilities: [0.0; 5],
            delay_for: Duration::from_secs(1),
            retry_after_secs: 0,
            script: Vec::new(),
        }
    }

    /// A plan that injects exactly `script[i]` into request `i`, and nothing afterwards
    /// (unless probabilities are also set).
    pub fn scripted(script: Vec<Option<FaultKind>>) -> Self {
        FaultPlan {
            script,
            ..FaultPlan::none()
        }
    }

    /// Sets the probability of `kind` per request.
    pub fn probability(mut self, kind: FaultKind, p: f64) -> Self {
        self.probabilities[kind.index()] = p;
        self
    }

    /// Probability of an HTTP 500 per request.
    pub fn internal_error(self, p: f64) -> Self {
        self.probability(FaultKind::InternalError, p)
    }

    /// Probability of an HTTP 503 per request.
    pub fn unavailable(self, p: f64) -> Self {
        self.probability(FaultKind::Unavailable, p)
    }

    /// Probability of an HTTP 429 per request.
    pub fn too_many_requests(self, p: f64) -> Self {
        self.probability(FaultKind::TooManyRequests, p)
    }

    /// Probability of a dropped connection per request.
    pub fn drop_connection(self, p: f64) -> Self {
        self.probability(FaultKind::DropConnection, p)
    }

    /// Probability of a delayed failure per request, and the delay.
    pub fn delay(mut self, p: f64, delay_for: Duration) -> Self {
        self.delay_for = delay_for;
        self.probability(FaultKind::Delay, p)
    }

    /// The `Retry-After` seconds of 503 and 429 faults (default 0).
    pub fn retry_after_secs(mut self, secs: u64) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// Replaces the script (faults of the first requests, by sequence number).
    pub fn script(mut self, script: Vec<Option<FaultKind>>) -> Self {
        self.script = script;
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The probability of `kind` per request.
    pub fn probability_of(&self, kind: FaultKind) -> f64 {
        self.probabilities[kind.index()]
    }

    /// How long a [`FaultKind::Delay`] waits.
    pub fn delay_for(&self) -> Duration {
        self.delay_for
    }

    /// The `Retry-After` seconds sent with 503 and 429 faults.
    pub fn retry_after(&self) -> u64 {
        self.retry_after_secs
    }

    /// True when the plan never injects anything.
    pub fn is_none(&self) -> bool {
        self.script.iter().all(Option::is_none) && self.probabilities.iter().all(|&p| p == 0.0)
    }

    /// The fault of request `sequence` (`None`: answer it normally).
    pub fn decide(&self, sequence: u64) -> Option<FaultKind> {
        if let Some(scripted) = usize::try_from(sequence)
            .ok()
            .and_then(|i| self.script.get(i))
        {
            return *scripted;
        }
        if self.probabilities.iter().all(|&p| p == 0.0) {
            return None;
        }
        // 53 uniform bits in [0, 1).
        let u = (derive_seed(self.seed, sequence) >> 11) as f64 / (1u64 << 53) as f64;
        let mut cumulative = 0.0;
        for kind in FaultKind::ALL {
            cumulative += self.probabilities[kind.index()];
            if u < cumulative {
                return Some(kind);
            }
        }
        None
    }

    /// Refuses probabilities outside `[0, 1]`, a total above 1 and over-long delays.
    pub(crate) fn check(&self) -> Result<()> {
        for kind in FaultKind::ALL {
            let p = self.probabilities[kind.index()];
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(ServeError::invalid(
                    "faults",
                    format!("probability of {kind} is {p}, not in [0, 1]"),
                ));
            }
        }
        let total: f64 = self.probabilities.iter().sum();
        if total > 1.0 + 1e-9 {
            return Err(ServeError::invalid(
                "faults",
                format!("fault probabilities sum to {total}, more than 1"),
            ));
        }
        if self.delay_for > MAX_FAULT_DELAY {
            return Err(ServeError::invalid(
                "faults",
                format!(
                    "delay of {:?} is longer than the maximum {MAX_FAULT_DELAY:?}",
                    self.delay_for
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_follow_the_probabilities() {
        let plan = FaultPlan::new(3).internal_error(0.2).drop_connection(0.1);
        let n = 20_000;
        let count = |k| (0..n).filter(|&i| plan.decide(i) == Some(k)).count() as f64 / n as f64;
        assert!((count(FaultKind::InternalError) - 0.2).abs() < 0.02);
        assert!((count(FaultKind::DropConnection) - 0.1).abs() < 0.02);
        assert_eq!(count(FaultKind::Delay), 0.0);
        let other = FaultPlan::new(4).internal_error(0.2).drop_connection(0.1);
        assert!((0..200).any(|i| plan.decide(i) != other.decide(i)));
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(FaultPlan::new(0).unavailable(1.5).check().is_err());
        assert!(FaultPlan::new(0).unavailable(f64::NAN).check().is_err());
        assert!(
            FaultPlan::new(0)
                .unavailable(0.6)
                .too_many_requests(0.6)
                .check()
                .is_err()
        );
        assert!(
            FaultPlan::new(0)
                .delay(0.1, Duration::from_secs(7200))
                .check()
                .is_err()
        );
        assert!(FaultPlan::new(0).unavailable(1.0).check().is_ok());
        assert!(FaultPlan::none().is_none());
        assert!(FaultPlan::new(1).unavailable(1.0).decide(9) == Some(FaultKind::Unavailable));
    }
}
