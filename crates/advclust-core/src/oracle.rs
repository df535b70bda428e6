//! The two kinds of victim access: score-based and decision-based oracles.

use crate::batch::ImageBatch;
use crate::error::{CoreError, Result};
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

    /// A round of calls, one per batch: what an attack uses when it has several queries
    /// ready at once. Returns the answers of the calls made, in order: a prefix of the round.
    /// No call starts after one has failed (so little is paid for and then thrown away);
    /// calls already in flight at that moment finish and are returned too, so that a
    /// [`crate::Budgeted`] ledger counts every answered call. Fewer answers than batches
    /// means the round stopped at a failure among them. The default makes the calls one
    /// after another; a remote oracle overrides it to keep several requests in flight.
    /// [`answer_all`] turns a round into one result.
    fn memberships_of_calls(&mut self, batches: &[ImageBatch]) -> Vec<Result<Memberships>> {
        calls_one_by_one(self, batches)
    }
}

/// A round of calls made one after another, up to and including the first failure: the
/// default [`ClusterOracle::memberships_of_calls`], for overrides to fall back on.
pub fn calls_one_by_one<O: ClusterOracle + ?Sized>(
    oracle: &mut O,
    batches: &[ImageBatch],
) -> Vec<Result<Memberships>> {
    let mut answers = Vec::with_capacity(batches.len());
    for b in batches {
        let answer = oracle.memberships(b);
        let failed = answer.is_err();
        answers.push(answer);
        if failed {
            break;
        }
    }
    answers
}

/// Sends `batches` as one round ([`ClusterOracle::memberships_of_calls`]) and returns every
/// answer, or the round's failure.
pub fn answer_all<O: ClusterOracle + ?Sized>(
    oracle: &mut O,
    batches: &[ImageBatch],
) -> Result<Vec<Memberships>> {
    let answers = oracle
        .memberships_of_calls(batches)
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    if answers.len() != batches.len() {
        return Err(CoreError::Transport(format!(
            "a round of {} call(s) ended after {} answer(s) without saying why",
            batches.len(),
            answers.len()
        )));
    }
    Ok(answers)
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
