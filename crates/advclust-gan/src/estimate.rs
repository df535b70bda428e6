//! Zeroth-order estimates of `dL_adv / dx_adv` from oracle queries only (NES and SPSA).
//!
//! `L_adv` is a sum of per-sample terms `f_i(C(x_adv_i))`, so one set of perturbed copies of a
//! batch estimates every sample's gradient at once: for `s = 1..S` a direction `u_{s,i}` per image
//! (Gaussian for NES, Rademacher for SPSA), the two antithetic copies `x_adv_i +- h u_{s,i}`
//! (clipped to the value box, since an oracle only accepts valid images) are sent in as few
//! oracle calls as allowed, and
//! `g_i = 1 / (2 h S) * sum_s (f_i(+) - f_i(-)) u_{s,i}`.
//! Both copies of a pair share their direction (common random numbers), which cancels the
//! zeroth-order term of the difference exactly.

use advclust_core::SeededRng;
use advclust_core::{ClusterId, ClusterOracle, ImageBatch, answer_all, argmax_rows};
use rand::RngExt;

use crate::config::{AdvDistance, GradientSource};
use crate::error::{AttackError, Result};
use crate::nets::gaussian;
use crate::train::QueryPenalty;

/// What `L_adv` pushes the adversarial memberships towards.
#[derive(Debug, Clone, Copy)]
pub enum AdvObjective<'a> {
    /// Untargeted: away from the clean memberships (row-major `n x k`, one row per image).
    Away(&'a [f32]),
    /// Targeted: towards the one-hot vector of this cluster (`L_adv` is minus that distance).
    Toward(ClusterId),
    /// Untargeted, the batch's soft mutual information with these clean clusters (one per
    /// image; [`crate::AdvLoss::SoftMutualInformation`]), linearised at the batch's current
    /// memberships.
    SoftMi(&'a [ClusterId]),
    /// Untargeted, each image's log-membership margin of its clean cluster (one per image;
    /// [`crate::AdvLoss::LogMargin`]).
    LogMargin(&'a [ClusterId]),
}

impl AdvObjective<'_> {
    /// The per-sample term `f_i` of `L_adv` (to be maximised) for adversarial memberships `m`
    /// of sample `i` in a batch of `n`.
    pub(crate) fn per_sample(&self, distance: AdvDistance, i: usize, m: &[f32], n: usize) -> f64 {
        let k = m.len();
        match *self {
            AdvObjective::Away(clean) => {
                let r = &clean[i * k..(i + 1) * k];
                let sq: f64 = m.iter().zip(r).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
                distance.per_sample(sq, n)
            }
            AdvObjective::Toward(t) => {
                let sq: f64 = m
                    .iter()
                    .enumerate()
                    .map(|(j, &a)| (a as f64 - if j == t { 1.0 } else { 0.0 }).powi(2))
                    .sum();
                -distance.per_sample(sq, n)
            }
            AdvObjective::LogMargin(clean) => crate::objective::log_margin(m, clean[i]),
            // Linear in m: the caller applies the batch's weights instead.
            AdvObjective::SoftMi(_) => 0.0,
        }
    }
}

/// A zeroth-order gradient estimate for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientEstimate {
    /// Estimated `dL_adv / dx_adv`, NCHW like the batch.
    pub gradient: Vec<f32>,
    /// Estimated per-sample term `f_i` at `x_adv` (mean over the perturbed copies); their sum
    /// estimates `L_adv`.
    pub losses: Vec<f64>,
    /// Mean memberships over each image's perturbed copies (row-major `n x k`).
    pub memberships: Vec<f32>,
    /// Number of clusters.
    pub k: usize,
    /// Oracle calls made.
    pub calls: usize,
}

impl GradientEstimate {
    /// The estimate of `L_adv` (sum of the per-sample terms).
    pub fn l_adv(&self) -> f64 {
        self.losses.iter().sum()
    }

    /// Argmax cluster of each image's mean memberships.
    pub fn clusters(&self) -> Vec<ClusterId> {
        argmax_rows(&self.memberships, self.k)
    }
}

/// How a zeroth-order estimate queries the oracle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryEstimator {
    /// [`GradientSource::Nes`] or [`GradientSource::Spsa`].
    pub source: GradientSource,
    /// Directions constant over `tile x tile` blocks (1: one value per pixel).
    pub tile: usize,
    /// Largest oracle call (`None`: every perturbed copy in one call).
    pub max_images_per_call: Option<usize>,
}

impl QueryEstimator {
    /// Images of each oracle call one estimate at `n` images makes, in order: the
    /// `2 * samples * n` perturbed copies in calls of at most `max_images_per_call` (one call
    /// for `Backprop`, which makes none: empty).
    pub fn call_sizes(&self, n: usize) -> Vec<usize> {
        let samples = match self.source {
            GradientSource::Nes { samples, .. } | GradientSource::Spsa { samples, .. } => samples,
            GradientSource::Backprop => return Vec::new(),
        };
        let total = samples.saturating_mul(2).saturating_mul(n);
        chunk_sizes(total, self.max_images_per_call)
    }
}

/// `total` split into consecutive calls of at most `max_per_call` (`None`: one call).
pub(crate) fn chunk_sizes(total: usize, max_per_call: Option<usize>) -> Vec<usize> {
    let chunk = max_per_call.unwrap_or(total).max(1);
    (0..total.div_ceil(chunk))
        .map(|i| chunk.min(total - i * chunk))
        .collect()
}

/// Estimates `dL_adv / dx_adv` at `x_adv` from `oracle` queries only.
///
/// The estimator's `source` must be [`GradientSource::Nes`] or [`GradientSource::Spsa`]; the
/// `2 * samples * n` perturbed images go out in calls of at most `max_images_per_call` images
/// (`None`: one call). With `tile > 1` the directions are drawn on a grid `tile` times coarser and
/// constant over each `tile x tile` block (a data prior, as Bandits' tiles: neighbouring
/// pixels have similar gradients), so the estimate targets the block means of the gradient
/// in `tile^2` times fewer dimensions; `tile = 1` draws one value per pixel. Count and limit the queries by passing a [`advclust_core::Budgeted`] oracle.
///
/// ```
/// use advclust_core::{ClusterOracle, ImageBatch, Memberships, Result};
/// use advclust_gan::{estimate_adv_gradient, AdvDistance, AdvObjective, GradientSource, QueryEstimator};
/// use rand::SeedableRng;
///
/// /// Memberships (1 - p, p) with p the mean brightness.
/// struct Brightness;
/// impl ClusterOracle for Brightness {
///     fn num_clusters(&self) -> usize { 2 }
///     fn input_shape(&self) -> Option<[usize; 3]> { None }
///     fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
///         let rows = (0..batch.len()).flat_map(|i| {
///             let img = batch.image(i).unwrap();
///             let p = img.iter().sum::<f32>() / img.len() as f32;
///             [1.0 - p, p]
///         });
///         Memberships::new(rows.collect(), batch.len(), 2)
///     }
/// }
/// let x = ImageBatch::unit(vec![0.5; 4], [1, 1, 2, 2]).unwrap();
/// let clean = [0.9f32, 0.1]; // moving away from p = 0.1 means getting brighter
/// let mut rng = advclust_core::SeededRng::seed_from_u64(0);
/// let est = estimate_adv_gradient(
///     &mut Brightness, &x, AdvObjective::Away(&clean), AdvDistance::HalfSquaredSum,
///     &QueryEstimator {
///         source: GradientSource::Nes { samples: 50, sigma: 0.01 },
///         tile: 1,
///         max_images_per_call: None,
///     },
///     &mut rng,
/// ).unwrap();
/// assert!(est.gradient.iter().all(|&g| g > 0.0));
/// assert_eq!(est.calls, 1);
/// ```
pub fn estimate_adv_gradient(
    oracle: &mut dyn ClusterOracle,
    x_adv: &ImageBatch,
    objective: AdvObjective<'_>,
    distance: AdvDistance,
    estimator: &QueryEstimator,
    rng: &mut SeededRng,
) -> Result<GradientEstimate> {
    let (estimate, _) =
        estimate_with_penalty(oracle, None, x_adv, objective, distance, estimator, rng)?;
    Ok(estimate)
}

/// [`estimate_adv_gradient`], and with a [`QueryPenalty`] its estimate from the same perturbed
/// copies (each copy sent to the penalty once as well).
pub(crate) fn estimate_with_penalty(
    oracle: &mut dyn ClusterOracle,
    penalty: Option<&dyn QueryPenalty>,
    x_adv: &ImageBatch,
    objective: AdvObjective<'_>,
    distance: AdvDistance,
    estimator: &QueryEstimator,
    rng: &mut SeededRng,
) -> Result<(GradientEstimate, Option<PenaltyEstimate>)> {
    let QueryEstimator {
        source,
        tile,
        max_images_per_call,
    } = *estimator;
    let (samples, h, gaussian_dirs) = match source {
        GradientSource::Nes { samples, sigma } => (samples, sigma, true),
        GradientSource::Spsa { samples, delta } => (samples, delta, false),
        GradientSource::Backprop => {
            return Err(AttackError::invalid(
                "gradient_source",
                "a zeroth-order estimate needs Nes or Spsa",
            ));
        }
    };
    if tile == 0 {
        return Err(AttackError::invalid(
            "direction_tile",
            "must be at least 1 (1: a direction per pixel)",
        ));
    }
    if samples == 0 || !(h.is_finite() && h > 0.0) {
        return Err(AttackError::invalid(
            "gradient_source",
            format!("need samples >= 1 and a finite step > 0, got {samples} and {h}"),
        ));
    }
    let k = oracle.num_clusters();
    let n = x_adv.len();
    match objective {
        AdvObjective::Away(clean) if clean.len() != n * k => {
            return Err(AttackError::VictimOutputShape {
                expected: [n, k],
                actual: [clean.len() / k.max(1), k],
            });
        }
        AdvObjective::Toward(t) if t >= k => {
            return Err(AttackError::TargetOutOfRange { target: t, k });
        }
        AdvObjective::SoftMi(clean) | AdvObjective::LogMargin(clean) if clean.len() != n => {
            return Err(AttackError::VictimOutputShape {
                expected: [n, k],
                actual: [clean.len(), k],
            });
        }
        AdvObjective::SoftMi(clean) | AdvObjective::LogMargin(clean)
            if clean.iter().any(|&c| c >= k) =>
        {
            let c = clean.iter().copied().max().unwrap_or(0);
            return Err(AttackError::TargetOutOfRange { target: c, k });
        }
        _ => {}
    }

    let probe = Probe::new(
        x_adv,
        samples,
        h,
        gaussian_dirs,
        tile,
        max_images_per_call,
        rng,
    )?;
    // One round: a remote oracle may keep several of these calls in flight.
    let answers = answer_all(oracle, &probe.calls)?;
    let total = probe.total();
    let mut rows = vec![0.0f32; total * k];
    let mut mem_acc = vec![0.0f64; n * k];
    for (part, m) in answers.iter().enumerate() {
        let range = probe.call_range(part);
        m.expect_samples(range.len())?;
        m.expect_clusters(k)?;
        for (offset, g) in range.enumerate() {
            let i = probe.image_of(g);
            let row = m.row(offset).expect("validated row");
            rows[g * k..(g + 1) * k].copy_from_slice(row);
            for (acc, &v) in mem_acc[i * k..(i + 1) * k].iter_mut().zip(row) {
                *acc += v as f64;
            }
        }
    }
    let pairs = (2 * samples) as f64;
    let memberships: Vec<f32> = mem_acc.iter().map(|&v| (v / pairs) as f32).collect();
    // f values of every query: per-sample terms, or the batch objective's linearisation.
    let weights = match objective {
        AdvObjective::SoftMi(clean) => {
            Some(crate::objective::soft_mi_weights(clean, &memberships, k).0)
        }
        _ => None,
    };
    let fvals: Vec<f64> = (0..total)
        .map(|g| {
            let i = probe.image_of(g);
            let row = &rows[g * k..(g + 1) * k];
            match &weights {
                Some(w) => w[i * k..(i + 1) * k]
                    .iter()
                    .zip(row)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum(),
                None => objective.per_sample(distance, i, row, n),
            }
        })
        .collect();
    let (gradient, losses) = probe.combine(&fvals);
    let penalty = match penalty {
        Some(p) => Some(probe.penalty_estimate(p)?),
        None => None,
    };
    let calls = probe.calls.len();
    Ok((
        GradientEstimate {
            gradient,
            losses,
            memberships,
            k,
            calls,
        },
        penalty,
    ))
}

/// A [`QueryPenalty`] estimated from the perturbed copies of one step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PenaltyEstimate {
    /// Estimated gradient of the batch penalty (the mean over images) w.r.t. `x_adv`, NCHW.
    pub(crate) gradient: Vec<f32>,
    /// The batch penalty at `x_adv`: the mean over images of each image's mean over its copies.
    pub(crate) value: f64,
}

/// The perturbed copies of one estimate: query `g = (s, sign, i)` in order, `x_adv_i + sign * h
/// * u_{s,i}` clipped to the value box, split into the oracle calls.
struct Probe {
    samples: usize,
    n: usize,
    d: usize,
    h: f32,
    chunk: usize,
    /// Directions, laid out `[s][i][pixel]`.
    dirs: Vec<f32>,
    calls: Vec<ImageBatch>,
}

impl Probe {
    fn new(
        x_adv: &ImageBatch,
        samples: usize,
        h: f32,
        gaussian_dirs: bool,
        tile: usize,
        max_images_per_call: Option<usize>,
        rng: &mut SeededRng,
    ) -> Result<Probe> {
        let n = x_adv.len();
        let d = x_adv.image_len();
        let [_, c, height, width] = x_adv.dims();
        // Directions: drawn on the coarse grid, then spread over their tiles with weight
        // 1 / tile (so the estimate is the tile mean of the gradient).
        let (coarse_h, coarse_w) = (height.div_ceil(tile), width.div_ceil(tile));
        let coarse_d = c * coarse_h * coarse_w;
        let coarse: Vec<f32> = if gaussian_dirs {
            gaussian(rng, samples * n * coarse_d)
        } else {
            (0..samples * n * coarse_d)
                .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
                .collect()
        };
        let dirs = if tile == 1 {
            coarse
        } else {
            let inv = 1.0 / tile as f32;
            let mut dirs = Vec::with_capacity(samples * n * d);
            for cell in coarse.chunks(coarse_d) {
                for ch in 0..c {
                    for y in 0..height {
                        for x in 0..width {
                            let v = cell[(ch * coarse_h + y / tile) * coarse_w + x / tile];
                            dirs.push(v * inv);
                        }
                    }
                }
            }
            dirs
        };
        let (lo, hi) = (x_adv.value_box().min(), x_adv.value_box().max());
        let total = 2 * samples * n;
        let chunk = max_images_per_call.unwrap_or(total).max(1);
        let mut probe = Probe {
            samples,
            n,
            d,
            h,
            chunk,
            dirs,
            calls: Vec::with_capacity(total.div_ceil(chunk)),
        };
        for start in (0..total).step_by(chunk) {
            let end = (start + chunk).min(total);
            let mut data = Vec::with_capacity((end - start) * d);
            for g in start..end {
                let (s, sign) = (g / (2 * n), if g % (2 * n) < n { 1.0 } else { -1.0 });
                let i = probe.image_of(g);
                let x = x_adv.image(i).expect("index in range");
                data.extend(
                    x.iter()
                        .zip(probe.direction(s, i))
                        .map(|(&xv, &uv)| (xv + sign * h * uv).clamp(lo, hi)),
                );
            }
            probe.calls.push(ImageBatch::new(
                data,
                [end - start, c, height, width],
                x_adv.value_box(),
            )?);
        }
        Ok(probe)
    }

    /// Queries in all.
    fn total(&self) -> usize {
        2 * self.samples * self.n
    }

    /// The queries of call `part`.
    fn call_range(&self, part: usize) -> std::ops::Range<usize> {
        let start = part * self.chunk;
        start..(start + self.chunk).min(self.total())
    }

    /// The image query `g` perturbs.
    fn image_of(&self, g: usize) -> usize {
        (g % (2 * self.n)) % self.n
    }

    fn direction(&self, s: usize, i: usize) -> &[f32] {
        let d = self.d;
        &self.dirs[(s * self.n + i) * d..(s * self.n + i + 1) * d]
    }

    /// From the value `f` of every query: `g_i = 1 / (2 h S) * sum_s (f(+) - f(-)) u_{s,i}`
    /// and the mean of `f` over each image's copies.
    fn combine(&self, fvals: &[f64]) -> (Vec<f32>, Vec<f64>) {
        let (n, d) = (self.n, self.d);
        let mut gradient = vec![0.0f32; n * d];
        let mut losses = vec![0.0f64; n];
        let scale = 1.0 / (2.0 * self.h as f64 * self.samples as f64);
        for s in 0..self.samples {
            for i in 0..n {
                let plus = fvals[s * 2 * n + i];
                let minus = fvals[s * 2 * n + n + i];
                losses[i] += plus + minus;
                let coef = ((plus - minus) * scale) as f32;
                for (gv, &uv) in gradient[i * d..(i + 1) * d]
                    .iter_mut()
                    .zip(self.direction(s, i))
                {
                    *gv += coef * uv;
                }
            }
        }
        let pairs = (2 * self.samples) as f64;
        losses.iter_mut().for_each(|l| *l /= pairs);
        (gradient, losses)
    }

    /// Sends every copy to `penalty` (in the same calls) and estimates the gradient of the batch
    /// mean of its values.
    fn penalty_estimate(&self, penalty: &dyn QueryPenalty) -> Result<PenaltyEstimate> {
        let mut values = Vec::with_capacity(self.total());
        for (part, call) in self.calls.iter().enumerate() {
            let v = penalty
                .penalties(call)
                .map_err(|source| AttackError::Penalty {
                    name: penalty.name(),
                    source,
                })?;
            let expected = self.call_range(part).len();
            if v.len() != expected {
                return Err(AttackError::Penalty {
                    name: penalty.name(),
                    source: format!("{} values for {expected} images", v.len()).into(),
                });
            }
            if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
                return Err(AttackError::Penalty {
                    name: penalty.name(),
                    source: format!("a non-finite value ({bad})").into(),
                });
            }
            values.extend(v);
        }
        let (mut gradient, per_image) = self.combine(&values);
        let inv_n = 1.0 / self.n as f32;
        gradient.iter_mut().for_each(|g| *g *= inv_n);
        Ok(PenaltyEstimate {
            gradient,
            value: per_image.iter().sum::<f64>() / self.n as f64,
        })
    }
}
