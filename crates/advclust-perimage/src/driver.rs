//! The batched per-image loop shared by every method.
//!
//! Every image runs its own search with its own random stream; each round, the proposals of
//! all images in flight go to the oracle together, in calls of at most
//! `max_images_per_call` images. An image stops when it succeeds (if asked), when its search
//! has nothing more to try, or when its next proposal would not fit its budget, so no image
//! ever exceeds `max_queries` and a run's result for an image does not depend on the others.

use std::time::Instant;

use advclust_core::SeededRng;
use advclust_core::{
    ClusterId, ClusterOracle, CoreError, ImageBatch, PerturbationNorms, QueryBudget, QueryLedger,
    ThreatModel, argmax_rows, derive_seed,
};
use rand::SeedableRng;

use crate::config::{Goal, PerImageSettings};
use crate::error::{PerImageError, Result};
use crate::report::{PerImageOutcome, PerImageReport, PerImageSnapshot};

/// What a search knows about the image it attacks.
pub(crate) struct ImageCtx<'a> {
    /// The clean image, `C*H*W` values.
    pub clean: &'a [f32],
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// The threat model (its value box is the batch's).
    pub threat: ThreatModel,
    /// The loss at the clean image.
    pub clean_loss: f64,
}

impl ImageCtx<'_> {
    /// Bounds `delta` in place so that `clean + delta` is inside the threat model and the value
    /// box, and returns that image.
    pub fn project(&self, delta: &mut [f32]) -> Vec<f32> {
        self.threat.project_delta(self.clean, delta)
    }

    /// `clean + delta`, clipped to the value box.
    pub fn at(&self, delta: &[f32]) -> Vec<f32> {
        let (lo, hi) = (self.threat.value_box().min(), self.threat.value_box().max());
        self.clean
            .iter()
            .zip(delta)
            .map(|(&x, &d)| (x + d).clamp(lo, hi))
            .collect()
    }

    /// `clean + delta + scale * direction` clipped to the value box only (finite-difference probes may leave the
    /// ball; they are never returned as adversarial images).
    pub fn probe(&self, delta: &[f32], direction: &[f32], scale: f32) -> Vec<f32> {
        let (lo, hi) = (self.threat.value_box().min(), self.threat.value_box().max());
        self.clean
            .iter()
            .zip(delta)
            .zip(direction)
            .map(|((&x, &d), &u)| (x + d + scale * u).clamp(lo, hi))
            .collect()
    }

    /// Whether `image` is inside the value box and the threat model around the clean image
    /// (float slack).
    fn contains(&self, image: &[f32]) -> bool {
        let (lo, hi) = (self.threat.value_box().min(), self.threat.value_box().max());
        image.iter().all(|v| (lo..=hi).contains(v))
            && self
                .threat
                .admits(&PerturbationNorms::between(self.clean, image))
    }
}

/// One method's per-image search: proposes images to query, learns from their losses.
pub(crate) trait Search {
    /// Per-image state.
    type State;
    /// The state before the first proposal.
    fn start(&self, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> Self::State;
    /// The images to query next (empty: nothing left to try).
    fn propose(
        &self,
        state: &mut Self::State,
        ctx: &ImageCtx<'_>,
        rng: &mut SeededRng,
    ) -> Vec<Vec<f32>>;
    /// The losses of the last proposal, in its order.
    fn observe(&self, state: &mut Self::State, ctx: &ImageCtx<'_>, losses: &[f64]);
}

/// One image in flight.
struct Track<S> {
    index: usize,
    state: S,
    rng: SeededRng,
    queries: u64,
    best: Vec<f32>,
    best_key: (bool, f64),
    best_label: ClusterId,
    success_at: Option<u64>,
    next_snapshot: usize,
}

/// Everything the run has found so far, image by image.
struct Results {
    adversarial: Vec<f32>,
    adversarial_labels: Vec<ClusterId>,
    queries: Vec<u64>,
    queries_to_success: Vec<Option<u64>>,
    /// `[snapshot][image]`: label and queries by then.
    snapshot_labels: Vec<Vec<ClusterId>>,
    snapshot_queries: Vec<Vec<u64>>,
    snapshot_success: Vec<Vec<bool>>,
}

/// Runs `search` on every image of `clean` against `oracle`.
pub(crate) fn run_search<S: Search>(
    search: &S,
    settings: &PerImageSettings,
    oracle: &mut dyn ClusterOracle,
    clean: &ImageBatch,
    goal: &Goal,
) -> Result<PerImageOutcome> {
    let started = Instant::now();
    if settings.threat.value_box() != clean.value_box() {
        return Err(PerImageError::invalid(
            "threat",
            format!(
                "the threat model's value box {:?} is not the images' {:?}",
                settings.threat.value_box(),
                clean.value_box()
            ),
        ));
    }
    if let Some(shape) = oracle.input_shape() {
        clean.expect_image_shape(shape)?;
    }
    let n = clean.len();
    let k = oracle.num_clusters();
    goal.check(n, k)?;
    let mut ledger = QueryLedger::new(QueryBudget::UNLIMITED);
    let mut run = Run {
        settings,
        oracle,
        ledger: &mut ledger,
        shape: clean.image_shape(),
        dims: clean.dims(),
        value_box: clean.value_box(),
        k,
    };
    // The clean memberships, one query per image.
    let clean_rows = run.query(clean.data())?;
    let clean_labels = argmax_rows(&clean_rows, k);
    let clean_losses: Vec<f64> = (0..n)
        .map(|i| {
            let row = &clean_rows[i * k..(i + 1) * k];
            settings
                .loss
                .value(row, row, clean_labels[i], goal.target(i))
        })
        .collect();
    let snaps = settings.snapshots.len();
    // Images never reached (after a failure) keep their clean state everywhere.
    let mut results = Results {
        adversarial: clean.data().to_vec(),
        adversarial_labels: clean_labels.clone(),
        queries: vec![1; n],
        queries_to_success: vec![None; n],
        snapshot_labels: vec![clean_labels.clone(); snaps],
        snapshot_queries: vec![vec![1; n]; snaps],
        snapshot_success: vec![vec![false; n]; snaps],
    };
    let image = Known {
        clean,
        rows: &clean_rows,
        labels: &clean_labels,
        losses: &clean_losses,
        goal,
    };
    let mut failure = None;
    for start in (0..n).step_by(settings.concurrent_images) {
        let end = (start + settings.concurrent_images).min(n);
        if let Err(e) = run.group(search, &image, start..end, &mut results) {
            failure = Some(e);
            break;
        }
    }
    let snapshots = settings
        .snapshots
        .iter()
        .enumerate()
        .map(|(s, &budget)| PerImageSnapshot {
            per_image_budget: budget,
            labels: results.snapshot_labels[s].clone(),
            images_queried: results.snapshot_queries[s].iter().sum(),
            successes: results.snapshot_success[s].iter().filter(|&&b| b).count(),
        })
        .collect();
    let report = PerImageReport {
        method: settings.method,
        loss: settings.loss,
        threat: settings.threat,
        max_queries: settings.max_queries,
        targeted: matches!(goal, Goal::Targeted(_)),
        seed: settings.seed,
        clean_labels,
        adversarial_labels: results.adversarial_labels,
        queries: results.queries,
        queries_to_success: results.queries_to_success,
        counts: ledger.counts(),
        snapshots,
        wall_time_s: started.elapsed().as_secs_f64(),
    };
    // Every answered image is some image's query, except the answered calls of a round an
    // oracle failure cut short (sent, but their answers are not used).
    debug_assert!(failure.is_some() || report.counts.images == report.queries.iter().sum::<u64>());
    let adversarial = ImageBatch::new(results.adversarial, clean.dims(), clean.value_box())?;
    let outcome = PerImageOutcome {
        report,
        adversarial,
    };
    match failure {
        None => Ok(outcome),
        Some(source) => Err(PerImageError::Interrupted {
            source,
            partial: Box::new(outcome),
        }),
    }
}

/// What the clean query established, image by image.
struct Known<'a> {
    clean: &'a ImageBatch,
    rows: &'a [f32],
    labels: &'a [ClusterId],
    losses: &'a [f64],
    goal: &'a Goal,
}

impl Known<'_> {
    fn ctx(&self, i: usize, shape: [usize; 3], threat: ThreatModel) -> ImageCtx<'_> {
        ImageCtx {
            clean: self.clean.image(i).unwrap_or(&[]),
            shape,
            threat,
            clean_loss: self.losses[i],
        }
    }
}

/// The oracle side of a run.
struct Run<'a> {
    settings: &'a PerImageSettings,
    oracle: &'a mut dyn ClusterOracle,
    ledger: &'a mut QueryLedger,
    shape: [usize; 3],
    dims: [usize; 4],
    value_box: advclust_core::ValueBox,
    k: usize,
}

impl Run<'_> {
    /// Memberships (row-major) of the images in `data`, in calls of at most
    /// `max_images_per_call` images; every call is counted.
    fn query(&mut self, data: &[f32]) -> std::result::Result<Vec<f32>, CoreError> {
        let len: usize = self.shape.iter().product();
        let n = data.len() / len.max(1);
        let mut rows = Vec::with_capacity(n * self.k);
        let per_call = self.settings.max_images_per_call;
        for chunk in data.chunks(per_call * len) {
            let m = chunk.len() / len;
            let dims = [m, self.dims[1], self.dims[2], self.dims[3]];
            let batch = ImageBatch::new(chunk.to_vec(), dims, self.value_box)?;
            let answer = self.oracle.memberships(&batch)?;
            // Counted once answered: a call the oracle refused cost nothing.
            self.ledger.charge(m)?;
            answer.expect_samples(m)?;
            answer.expect_clusters(self.k)?;
            rows.extend_from_slice(answer.data());
        }
        Ok(rows)
    }

    /// Attacks images `range` side by side until each is done. On an oracle failure every
    /// image in flight keeps its best so far.
    fn group<S: Search>(
        &mut self,
        search: &S,
        known: &Known<'_>,
        range: std::ops::Range<usize>,
        results: &mut Results,
    ) -> std::result::Result<(), CoreError> {
        let (settings, k, shape) = (self.settings, self.k, self.shape);
        let threat = settings.threat;
        let mut active: Vec<Track<S::State>> = Vec::with_capacity(range.len());
        for i in range {
            let mut rng = SeededRng::seed_from_u64(derive_seed(settings.seed, i as u64));
            let ctx = known.ctx(i, shape, threat);
            let state = search.start(&ctx, &mut rng);
            let clean_label = known.labels[i];
            let success = Goal::succeeded(known.goal.target(i), clean_label, clean_label);
            let mut track = Track {
                index: i,
                state,
                rng,
                queries: 1,
                best: ctx.clean.to_vec(),
                best_key: (success, known.losses[i]),
                best_label: clean_label,
                success_at: success.then_some(1),
                next_snapshot: 0,
            };
            if success && settings.stop_on_success {
                finish(&mut track, settings, results);
            } else {
                active.push(track);
            }
        }
        let len: usize = shape.iter().product();
        while !active.is_empty() {
            // Proposals that fit each image's budget; the others are done.
            let mut batch = Vec::new();
            let mut sizes = Vec::with_capacity(active.len());
            let mut sent = Vec::with_capacity(active.len());
            for mut track in active.drain(..) {
                let ctx = known.ctx(track.index, shape, threat);
                let proposal = search.propose(&mut track.state, &ctx, &mut track.rng);
                let fits = track.queries + proposal.len() as u64 <= settings.max_queries;
                if proposal.is_empty() || !fits {
                    finish(&mut track, settings, results);
                    continue;
                }
                sizes.push(proposal.len());
                for image in proposal {
                    batch.extend(image);
                }
                sent.push(track);
            }
            if sent.is_empty() {
                break;
            }
            let rows = match self.query(&batch) {
                Ok(rows) => rows,
                Err(e) => {
                    for track in &mut sent {
                        finish(track, settings, results);
                    }
                    return Err(e);
                }
            };
            let mut offset = 0;
            for (mut track, size) in sent.into_iter().zip(sizes) {
                let i = track.index;
                let ctx = known.ctx(i, shape, threat);
                let target = known.goal.target(i);
                let q0 = track.queries;
                record_snapshots(&mut track, settings, results, q0 + size as u64);
                let clean_row = &known.rows[i * k..(i + 1) * k];
                let mut losses = Vec::with_capacity(size);
                for j in 0..size {
                    let image = &batch[(offset + j) * len..(offset + j + 1) * len];
                    let m = &rows[(offset + j) * k..(offset + j + 1) * k];
                    let loss = settings.loss.value(m, clean_row, known.labels[i], target);
                    losses.push(loss);
                    if !ctx.contains(image) {
                        continue;
                    }
                    let label = argmax_rows(m, k)[0];
                    let success = Goal::succeeded(target, known.labels[i], label);
                    if success && track.success_at.is_none() {
                        track.success_at = Some(q0 + j as u64 + 1);
                    }
                    let key = (success, loss);
                    if key > track.best_key {
                        track.best_key = key;
                        track.best.copy_from_slice(image);
                        track.best_label = label;
                    }
                }
                offset += size;
                track.queries = q0 + size as u64;
                search.observe(&mut track.state, &ctx, &losses);
                if track.success_at.is_some() && settings.stop_on_success {
                    finish(&mut track, settings, results);
                } else {
                    active.push(track);
                }
            }
        }
        Ok(())
    }
}

/// Records the state before a step ending at `q1` queries for every snapshot budget the step
/// would not fit into.
fn record_snapshots<S>(
    track: &mut Track<S>,
    settings: &PerImageSettings,
    results: &mut Results,
    q1: u64,
) {
    while let Some(&budget) = settings.snapshots.get(track.next_snapshot) {
        if budget >= q1 {
            break;
        }
        push_snapshot(track, results);
    }
}

fn push_snapshot<S>(track: &mut Track<S>, results: &mut Results) {
    let (s, i) = (track.next_snapshot, track.index);
    results.snapshot_labels[s][i] = track.best_label;
    results.snapshot_queries[s][i] = track.queries;
    results.snapshot_success[s][i] = track.success_at.is_some();
    track.next_snapshot += 1;
}

/// Writes a finished image's result, and its state into every remaining snapshot.
fn finish<S>(track: &mut Track<S>, settings: &PerImageSettings, results: &mut Results) {
    while track.next_snapshot < settings.snapshots.len() {
        push_snapshot(track, results);
    }
    let i = track.index;
    let len = track.best.len();
    results.adversarial[i * len..(i + 1) * len].copy_from_slice(&track.best);
    results.adversarial_labels[i] = track.best_label;
    results.queries[i] = track.queries;
    results.queries_to_success[i] = track.success_at;
}
