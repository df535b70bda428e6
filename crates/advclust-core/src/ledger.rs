//! Counting and limiting oracle queries.

use serde::{Deserialize, Serialize};

use crate::batch::ImageBatch;
use crate::error::{CoreError, Result};
use crate::memberships::{ClusterId, Memberships};
use crate::oracle::{ClusterOracle, LabelOracle};

/// A hard limit on oracle use. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryBudget {
    /// Maximum number of batch calls.
    pub max_batch_calls: Option<u64>,
    /// Maximum number of single images sent, over all calls.
    pub max_images: Option<u64>,
}

impl QueryBudget {
    /// No limit.
    pub const UNLIMITED: QueryBudget = QueryBudget {
        max_batch_calls: None,
        max_images: None,
    };

    /// At most `calls` batch calls.
    pub fn batch_calls(calls: u64) -> Self {
        QueryBudget {
            max_batch_calls: Some(calls),
            max_images: None,
        }
    }

    /// At most `images` single images.
    pub fn images(images: u64) -> Self {
        QueryBudget {
            max_batch_calls: None,
            max_images: Some(images),
        }
    }
}

/// How much an oracle has been used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryCounts {
    /// Batch calls made.
    pub batch_calls: u64,
    /// Single images sent, over all calls.
    pub images: u64,
}

/// The one place that counts oracle queries and enforces the budget.
///
/// [`charge`](QueryLedger::charge) is called *before* a query; if the query would exceed the
/// budget it fails with [`CoreError::BudgetExhausted`] and nothing is counted.
///
/// ```
/// use advclust_core::{QueryBudget, QueryLedger};
/// let mut ledger = QueryLedger::new(QueryBudget::batch_calls(2));
/// ledger.charge(256).unwrap();
/// ledger.charge(256).unwrap();
/// assert!(ledger.charge(1).unwrap_err().is_budget_exhausted());
/// assert_eq!(ledger.counts().images, 512);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryLedger {
    budget: QueryBudget,
    counts: QueryCounts,
}

impl QueryLedger {
    /// A ledger with `budget`.
    pub fn new(budget: QueryBudget) -> Self {
        QueryLedger {
            budget,
            counts: QueryCounts::default(),
        }
    }

    /// The budget.
    pub fn budget(&self) -> QueryBudget {
        self.budget
    }

    /// Counts so far.
    pub fn counts(&self) -> QueryCounts {
        self.counts
    }

    /// True when one more call of `images` images is within the budget.
    pub fn allows(&self, images: usize) -> bool {
        let calls_ok = self
            .budget
            .max_batch_calls
            .is_none_or(|m| self.counts.batch_calls < m);
        let images_ok = self
            .budget
            .max_images
            .is_none_or(|m| self.counts.images + images as u64 <= m);
        calls_ok && images_ok
    }

    /// Records one batch call of `images` images, or fails (recording nothing) if that would
    /// exceed the budget.
    pub fn charge(&mut self, images: usize) -> Result<()> {
        if !self.allows(images) {
            return Err(CoreError::BudgetExhausted {
                used_calls: self.counts.batch_calls,
                used_images: self.counts.images,
                requested_images: images as u64,
                max_calls: self.budget.max_batch_calls,
                max_images: self.budget.max_images,
            });
        }
        self.counts.batch_calls += 1;
        self.counts.images += images as u64;
        Ok(())
    }
}

/// An oracle behind a [`QueryLedger`]: every call is checked against the budget first, then
/// counted, then forwarded. A batch whose image shape the oracle rejects up front is refused
/// without being charged.
#[derive(Debug, Clone)]
pub struct Budgeted<O> {
    inner: O,
    ledger: QueryLedger,
}

impl<O> Budgeted<O> {
    /// Wraps `inner` with `budget`.
    pub fn new(inner: O, budget: QueryBudget) -> Self {
        Budgeted {
            inner,
            ledger: QueryLedger::new(budget),
        }
    }

    /// The ledger (counts and budget), readable at any time.
    pub fn ledger(&self) -> &QueryLedger {
        &self.ledger
    }

    /// Counts so far.
    pub fn counts(&self) -> QueryCounts {
        self.ledger.counts()
    }

    /// The wrapped oracle.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Unwraps, returning the oracle and the final ledger.
    pub fn into_parts(self) -> (O, QueryLedger) {
        (self.inner, self.ledger)
    }

    fn admit(&mut self, expected: Option<[usize; 3]>, batch: &ImageBatch) -> Result<()> {
        if let Some(shape) = expected {
            batch.expect_image_shape(shape)?;
        }
        self.ledger.charge(batch.len())
    }
}

impl<O: ClusterOracle> ClusterOracle for Budgeted<O> {
    fn num_clusters(&self) -> usize {
        self.inner.num_clusters()
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        self.inner.input_shape()
    }
    fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
        self.admit(self.inner.input_shape(), batch)?;
        let m = self.inner.memberships(batch)?;
        m.expect_samples(batch.len())?;
        m.expect_clusters(self.inner.num_clusters())?;
        Ok(m)
    }
}

impl<O: LabelOracle> LabelOracle for Budgeted<O> {
    fn input_shape(&self) -> Option<[usize; 3]> {
        self.inner.input_shape()
    }
    fn labels(&mut self, batch: &ImageBatch) -> Result<Vec<ClusterId>> {
        self.admit(self.inner.input_shape(), batch)?;
        let labels = self.inner.labels(batch)?;
        if labels.len() != batch.len() {
            return Err(CoreError::SampleCountMismatch {
                expected: batch.len(),
                actual: labels.len(),
            });
        }
        Ok(labels)
    }
}
