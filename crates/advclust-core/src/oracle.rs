//! The two kinds of victim access: score-based and decision-based oracles.

use crate::batch::ImageBatch;
use crate::error::Result;
use crate::memberships::{ClusterId, Memberships};

/// A score-based clustering oracle: a batch of images in, soft memberships (n x k) out.
///
/// This is all a black-box attacker sees of a victim. The trait is object-safe
/// (`Box<dyn ClusterOracle>` works), batch-first, and takes `&mut self` because a real oracle
/// has state (sessions, rate limits, counters). Wrap it in [`crate::Budgeted`] to count and
/// limit queries.
///
/// ```
/// use advclust_core::{ClusterOracle, ImageBatch, Memberships, Result};
///
/// /// Puts bright images in cluster 1, dark ones in cluster 0.
/// struct Brightness;
/// impl ClusterOracle for Brightness {
///     fn num_clusters(&self) -> usize { 2 }
///     fn input_shape(&self) -> Option<[usize; 3]> { None }
///     fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
///         let mut out = Vec::new();
///         for i in 0..batch.len() {
///             let img = batch.image(i).unwrap();
///             let p = img.iter().sum::<f32>() / img.len() as f32;
///             out.extend([1.0 - p, p]);
///         }
///         Memberships::new(out, batch.len(), 2)
///     }
/// }
/// let mut oracle: Box<dyn ClusterOracle> = Box::new(Brightness);
/// let batch = ImageBatch::unit(vec![0.9; 4], [1, 1, 2, 2]).unwrap();
/// assert_eq!(oracle.memberships(&batch).unwrap().labels(), vec![1]);
/// ```
pub trait ClusterOracle {
    /// Number of clusters `k` of every answer.
    fn num_clusters(&self) -> usize;

    /// The `[C, H, W]` the oracle accepts, if it has a fixed one.
    fn input_shape(&self) -> Option<[usize; 3]>;

    /// Soft memberships of every image of `batch`, one row per image.
    fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships>;

    /// The answers to several calls, one per batch, in order: what an attack uses when it
    /// has a round of queries ready at once. The default makes the calls one after another;
    /// a remote oracle overrides it to keep several requests in flight. Each call succeeds or
    /// fails on its own (a [`crate::Budgeted`] ledger counts exactly the answered ones).
    fn memberships_of_calls(&mut self, batches: &[ImageBatch]) -> Vec<Result<Memberships>> {
        batches.iter().map(|b| self.memberships(b)).collect()
    }
}

/// The answers of [`ClusterOracle::memberships_of_calls`] as one result: all of them, or the
/// first failure.
pub fn all_answers(answers: Vec<Result<Memberships>>) -> Result<Vec<Memberships>> {
    answers.into_iter().collect()
}

/// A decision-based clustering oracle: a batch of images in, one cluster id per image out
/// (the situation of a clustering web service such as a face-grouping API).
///
/// Object-safe, batch-first, `&mut self`, like [`ClusterOracle`].
pub trait LabelOracle {
    /// The `[C, H, W]` the oracle accepts, if it has a fixed one.
    fn input_shape(&self) -> Option<[usize; 3]>;

    /// The cluster id of every image of `batch`. Ids are arbitrary: only equality matters.
    fn labels(&mut self, batch: &ImageBatch) -> Result<Vec<ClusterId>>;
}

impl<O: ClusterOracle + ?Sized> ClusterOracle for Box<O> {
    fn num_clusters(&self) -> usize {
        (**self).num_clusters()
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        (**self).input_shape()
    }
    fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
        (**self).memberships(batch)
    }
    fn memberships_of_calls(&mut self, batches: &[ImageBatch]) -> Vec<Result<Memberships>> {
        (**self).memberships_of_calls(batches)
    }
}

impl<O: ClusterOracle + ?Sized> ClusterOracle for &mut O {
    fn num_clusters(&self) -> usize {
        (**self).num_clusters()
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        (**self).input_shape()
    }
    fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
        (**self).memberships(batch)
    }
    fn memberships_of_calls(&mut self, batches: &[ImageBatch]) -> Vec<Result<Memberships>> {
        (**self).memberships_of_calls(batches)
    }
}

impl<O: LabelOracle + ?Sized> LabelOracle for Box<O> {
    fn input_shape(&self) -> Option<[usize; 3]> {
        (**self).input_shape()
    }
    fn labels(&mut self, batch: &ImageBatch) -> Result<Vec<ClusterId>> {
        (**self).labels(batch)
    }
}

/// Turns a score-based oracle into a decision-based one (argmax of the memberships), e.g. to
/// test a label-only attack against a model whose scores are known.
#[derive(Debug, Clone)]
pub struct ArgmaxLabels<O>(pub O);

impl<O: ClusterOracle> LabelOracle for ArgmaxLabels<O> {
    fn input_shape(&self) -> Option<[usize; 3]> {
        self.0.input_shape()
    }
    fn labels(&mut self, batch: &ImageBatch) -> Result<Vec<ClusterId>> {
        Ok(self.0.memberships(batch)?.labels())
    }
}
