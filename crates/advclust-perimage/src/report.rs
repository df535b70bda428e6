//! What a per-image attack run reports.

use advclust_core::{ClusterId, ImageBatch, QueryCounts, ThreatModel};
use serde::{Deserialize, Serialize};

use crate::config::{PerImageLoss, PerImageMethod};

/// The state of a run at one per-image budget: what a run with `max_queries =
/// per_image_budget` would have returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerImageSnapshot {
    /// The per-image budget.
    pub per_image_budget: u64,
    /// The victim's cluster of each image's best adversarial version then.
    pub labels: Vec<ClusterId>,
    /// Images sent to the victim by then, over all images.
    pub images_queried: u64,
    /// Images that had succeeded by then.
    pub successes: usize,
}

/// The result of a per-image attack on a set of images (serializable; the adversarial images
/// travel beside it in [`PerImageOutcome`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerImageReport {
    /// The method and its hyperparameters.
    pub method: PerImageMethod,
    /// The objective.
    pub loss: PerImageLoss,
    /// The threat model.
    pub threat: ThreatModel,
    /// The per-image budget (clean query included).
    pub max_queries: u64,
    /// Whether the attack was targeted.
    pub targeted: bool,
    /// The seed.
    pub seed: u64,
    /// The victim's cluster of each clean image (from the attack's own first query).
    pub clean_labels: Vec<ClusterId>,
    /// The victim's cluster of each returned adversarial image (from the query that found it).
    pub adversarial_labels: Vec<ClusterId>,
    /// Queries each image cost, its clean query included.
    pub queries: Vec<u64>,
    /// The query (counted from 1, the clean query) at which each image first succeeded.
    pub queries_to_success: Vec<Option<u64>>,
    /// Batch calls and images the oracle answered over the whole run: images = the sum of
    /// `queries`, plus, for an interrupted run, the answered calls of the round cut short.
    pub counts: QueryCounts,
    /// The run's state at each requested per-image budget.
    pub snapshots: Vec<PerImageSnapshot>,
    /// Wall time of the run, seconds.
    pub wall_time_s: f64,
}

impl PerImageReport {
    /// Number of images attacked.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// True for a run on no images.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Fraction of images that succeeded (0 for no images).
    pub fn success_rate(&self) -> f64 {
        let n = self.len();
        if n == 0 {
            return 0.0;
        }
        self.queries_to_success.iter().flatten().count() as f64 / n as f64
    }

    /// Mean queries per image (0 for no images).
    pub fn mean_queries(&self) -> f64 {
        let n = self.len();
        if n == 0 {
            return 0.0;
        }
        self.queries.iter().sum::<u64>() as f64 / n as f64
    }

    /// Mean and median queries to success over the images that succeeded (`None` if none did).
    pub fn queries_to_success_stats(&self) -> Option<(f64, u64)> {
        let mut q: Vec<u64> = self.queries_to_success.iter().flatten().copied().collect();
        if q.is_empty() {
            return None;
        }
        q.sort_unstable();
        let mean = q.iter().sum::<u64>() as f64 / q.len() as f64;
        Some((mean, q[q.len() / 2]))
    }

    /// The report without its wall time, for comparing runs.
    pub fn without_timings(&self) -> PerImageReport {
        PerImageReport {
            wall_time_s: 0.0,
            ..self.clone()
        }
    }
}

/// A report and the adversarial images it describes (each image's best-so-far, inside the
/// threat model).
#[derive(Debug, Clone, PartialEq)]
pub struct PerImageOutcome {
    /// The report.
    pub report: PerImageReport,
    /// The adversarial images, in the order of the clean ones.
    pub adversarial: ImageBatch,
}
