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

/// How much an oracle has been used: the answered calls (what a budget limits) and the calls
/// that failed without an answer (a dead server, an unusable reply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryCounts {
    /// Batch calls answered.
    pub batch_calls: u64,
    /// Single images answered, over all calls.
    pub images: u64,
    /// Calls attempted that got no usable answer (not charged to the budget).
    #[serde(default)]
    pub failed_calls: u64,
}

/// The one place that counts oracle queries and enforces the budget.
///
/// [`allows`](QueryLedger::allows) is asked *before* a query, [`charge`](QueryLedger::charge)
/// records it once answered; a charge that would exceed the budget fails with
/// [`CoreError::BudgetExhausted`] and nothing is counted.
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

    /// Continues counting from `counts` (the ledger of a run resumed from a checkpoint).
    pub fn resume_from(&mut self, counts: QueryCounts) {
        self.counts = counts;
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
            .is_none_or(|m| self.counts.images.saturating_add(images as u64) <= m);
        calls_ok && images_ok
    }

    /// Records one batch call of `images` images, or fails (recording nothing) if that would
    /// exceed the budget.
    pub fn charge(&mut self, images: usize) -> Result<()> {
        if !self.allows(images) {
            return Err(self.refusal(images));
        }
        self.counts.batch_calls = self.counts.batch_calls.saturating_add(1);
        self.counts.images = self.counts.images.saturating_add(images as u64);
        Ok(())
    }

    /// The error refusing one more call of `images` images, with the counts so far.
    pub fn refusal(&self, images: usize) -> CoreError {
        CoreError::BudgetExhausted {
            used_calls: self.counts.batch_calls,
            used_images: self.counts.images,
            requested_images: images as u64,
            max_calls: self.budget.max_batch_calls,
            max_images: self.budget.max_images,
        }
    }

    /// Records a call that was attempted but got no usable answer.
    pub fn record_failure(&mut self) {
        self.counts.failed_calls += 1;
    }

    /// How many of `sizes` (images per call, in order) fit in the budget, called in order.
    pub fn calls_that_fit(&self, sizes: impl IntoIterator<Item = usize>) -> usize {
        let mut plan = self.clone();
        sizes
            .into_iter()
            .take_while(|&n| plan.charge(n).is_ok())
            .count()
    }

    /// Counts an answer of `images` images (charged) or a failure (recorded unless the
    /// oracle refused for bad input, which is no attempt at the victim).
    fn settle<T>(&mut self, images: usize, answer: Result<T>) -> Result<T> {
        match answer {
            Ok(v) => {
                self.charge(images)?;
                Ok(v)
            }
            Err(e) => {
                if e.kind() != crate::ErrorKind::BadInput {
                    self.record_failure();
                }
                Err(e)
            }
        }
    }
}

/// An oracle behind a [`QueryLedger`]: every call is checked against the budget first, then
/// forwarded, then charged once answered (a call that fails is recorded as a failure, not
/// charged). A batch whose image shape the oracle rejects up front is refused without being
/// charged. A round of calls ([`ClusterOracle::memberships_of_calls`]) is planned before it is
/// sent, as if every call will be answered: the calls that fit in order go out together, the
/// first that does not and every one after it are refused unsent.
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

    /// Continues counting from `counts` (see [`QueryLedger::resume_from`]).
    pub fn resume_from(&mut self, counts: QueryCounts) {
        self.ledger.resume_from(counts);
    }

    /// The wrapped oracle.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Unwraps, returning the oracle and the final ledger.
    pub fn into_parts(self) -> (O, QueryLedger) {
        (self.inner, self.ledger)
    }

    fn admit(&self, expected: Option<[usize; 3]>, batch: &ImageBatch) -> Result<()> {
        if let Some(shape) = expected {
            batch.expect_image_shape(shape)?;
        }
        if self.ledger.allows(batch.len()) {
            Ok(())
        } else {
            Err(self.ledger.refusal(batch.len()))
        }
    }
}

fn checked_memberships(
    m: Result<Memberships>,
    batch: &ImageBatch,
    k: usize,
) -> Result<Memberships> {
    let m = m?;
    m.expect_samples(batch.len())?;
    m.expect_clusters(k)?;
    Ok(m)
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
        let k = self.inner.num_clusters();
        let answer = checked_memberships(self.inner.memberships(batch), batch, k);
        self.ledger.settle(batch.len(), answer)
    }

    fn memberships_of_calls(&mut self, batches: &[ImageBatch]) -> Vec<Result<Memberships>> {
        let shape = self.inner.input_shape();
        // The calls sent: those before the first bad shape that fit the budget in order.
        let admissible = batches
            .iter()
            .position(|b| shape.is_some_and(|s| b.expect_image_shape(s).is_err()))
            .unwrap_or(batches.len());
        let sent = self
            .ledger
            .calls_that_fit(batches[..admissible].iter().map(ImageBatch::len));
        let k = self.inner.num_clusters();
        let mut out: Vec<Result<Memberships>> = Vec::with_capacity(sent);
        for (answer, b) in self
            .inner
            .memberships_of_calls(&batches[..sent])
            .into_iter()
            .zip(batches)
        {
            out.push(
                self.ledger
                    .settle(b.len(), checked_memberships(answer, b, k)),
            );
        }
        if out.len() < sent || out.iter().any(Result::is_err) {
            return out;
        }
        // The round stops at its first refused call: the rest are not made.
        if let Some(first) = batches.get(sent) {
            let refusal = match self.admit(shape, first) {
                Err(e) => e,
                Ok(()) => self.ledger.refusal(first.len()),
            };
            out.push(Err(refusal));
        }
        out
    }
}

impl<O: LabelOracle> LabelOracle for Budgeted<O> {
    fn input_shape(&self) -> Option<[usize; 3]> {
        self.inner.input_shape()
    }
    fn labels(&mut self, batch: &ImageBatch) -> Result<Vec<ClusterId>> {
        self.admit(self.inner.input_shape(), batch)?;
        let answer = self.inner.labels(batch).and_then(|labels| {
            if labels.len() == batch.len() {
                Ok(labels)
            } else {
                Err(CoreError::SampleCountMismatch {
                    expected: batch.len(),
                    actual: labels.len(),
                })
            }
        });
        self.ledger.settle(batch.len(), answer)
    }
}
