//! Server limits, the query budget, the fault plan: built unchecked, validated once.

use advclust_core::{ParamGuard, QueryBudget};

use crate::error::{Result, ServeError};
use crate::faults::FaultPlan;

/// Default largest request body: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default largest batch of one request.
pub const DEFAULT_MAX_IMAGES: usize = 4096;
/// Default number of runtime worker threads of a [`crate::ServerHandle`].
pub const DEFAULT_WORKER_THREADS: usize = 2;
/// Most runtime worker threads a [`crate::ServerHandle`] may ask for.
pub const MAX_WORKER_THREADS: usize = 256;

/// Validated server settings (built by [`ServeConfig`] and [`ParamGuard::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedServeConfig {
    max_body_bytes: usize,
    max_images_per_request: usize,
    budget: QueryBudget,
    faults: FaultPlan,
    worker_threads: usize,
}

impl CheckedServeConfig {
    /// Largest request body in bytes (a larger one is answered 413).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Largest batch of one request (a larger one is answered 413 before any model work).
    pub fn max_images_per_request(&self) -> usize {
        self.max_images_per_request
    }

    /// The model's query budget: answered requests (`max_batch_calls`) and images.
    pub fn budget(&self) -> QueryBudget {
        self.budget
    }

    /// The fault plan.
    pub fn faults(&self) -> &FaultPlan {
        &self.faults
    }

    /// Worker threads of the runtime a [`crate::ServerHandle`] starts.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads
    }
}

/// Unchecked builder of [`CheckedServeConfig`].
///
/// ```
/// use advclust_core::{ParamGuard, QueryBudget};
/// use advclust_serve::{FaultPlan, ServeConfig};
///
/// let config = ServeConfig::new()
///     .max_images_per_request(256)
///     .budget(QueryBudget::batch_calls(1000))
///     .faults(FaultPlan::new(1).unavailable(0.1))
///     .check()
///     .unwrap();
/// assert_eq!(config.max_images_per_request(), 256);
/// assert!(ServeConfig::new().max_body_bytes(0).check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig(CheckedServeConfig);

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig::new()
    }
}

impl ServeConfig {
    /// Defaults: 64 MiB bodies, 4096 images per request, no budget, no faults, two worker
    /// threads.
    pub fn new() -> Self {
        ServeConfig(CheckedServeConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_images_per_request: DEFAULT_MAX_IMAGES,
            budget: QueryBudget::UNLIMITED,
            faults: FaultPlan::none(),
            worker_threads: DEFAULT_WORKER_THREADS,
        })
    }

    /// Largest request body in bytes (at least 1).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.0.max_body_bytes = bytes;
        self
    }

    /// Largest batch of one request (at least 1).
    pub fn max_images_per_request(mut self, images: usize) -> Self {
        self.0.max_images_per_request = images;
        self
    }

    /// The model's query budget: at most `max_batch_calls` answered requests and
    /// `max_images` answered images (a limit of 0 refuses every request).
    pub fn budget(mut self, budget: QueryBudget) -> Self {
        self.0.budget = budget;
        self
    }

    /// The fault plan (default: none).
    pub fn faults(mut self, faults: FaultPlan) -> Self {
        self.0.faults = faults;
        self
    }

    /// Worker threads of the runtime a [`crate::ServerHandle`] starts (1 to 256; the oracle
    /// calls run on the runtime's blocking threads, not on these).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.0.worker_threads = threads;
        self
    }
}

impl ParamGuard for ServeConfig {
    type Checked = CheckedServeConfig;
    type Error = ServeError;

    fn check_ref(&self) -> Result<&CheckedServeConfig> {
        let c = &self.0;
        if c.max_body_bytes == 0 {
            return Err(ServeError::invalid("max_body_bytes", "must be at least 1"));
        }
        if c.max_images_per_request == 0 {
            return Err(ServeError::invalid(
                "max_images_per_request",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_WORKER_THREADS).contains(&c.worker_threads) {
            return Err(ServeError::invalid(
                "worker_threads",
                format!("{} is not in 1..={MAX_WORKER_THREADS}", c.worker_threads),
            ));
        }
        c.faults.check()?;
        Ok(c)
    }

    fn check(self) -> Result<CheckedServeConfig> {
        self.check_ref()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_not() {
        let c = ServeConfig::new().check().unwrap();
        assert_eq!(c.max_body_bytes(), DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.max_images_per_request(), DEFAULT_MAX_IMAGES);
        assert!(c.faults().is_none());
        assert!(
            ServeConfig::new()
                .max_images_per_request(0)
                .check()
                .is_err()
        );
        assert!(ServeConfig::new().worker_threads(0).check().is_err());
        assert!(ServeConfig::new().worker_threads(1000).check().is_err());
        assert!(
            ServeConfig::new()
                .faults(FaultPlan::new(0).internal_error(2.0))
                .check()
                .is_err()
        );
    }
}
