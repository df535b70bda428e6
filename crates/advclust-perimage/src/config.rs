//! What a per-image attack optimises, how, and within which budget.

use advclust_core::{ClusterId, ParamGuard, ThreatModel};
use serde::{Deserialize, Serialize};

use crate::error::{PerImageError, Result};

/// The per-image objective, maximised by every method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerImageLoss {
    /// The pseudo-label margin in log-membership space: untargeted
    /// `max_{j != c} log m_j - log m_c` for the clean cluster `c`, targeted
    /// `log m_t - max_{j != t} log m_j`. Positive exactly when the attack has succeeded, and
    /// still informative when memberships saturate (the logarithm undoes the softmax).
    #[default]
    Margin,
    /// Minus the membership of the clean cluster, `-m_c` (targeted: the target's membership
    /// `m_t`): the pseudo-label objective in probability space, flat once memberships saturate.
    CleanMembership,
    /// The paper's objective on one image: untargeted `||M(x') - M(x)||^2` (away from the
    /// clean memberships), targeted `-||M(x') - e_t||^2`.
    Distance,
}

/// Smallest membership fed to a logarithm (memberships may be exactly 0).
const LOG_FLOOR: f64 = 1e-30;

impl PerImageLoss {
    /// The value (to be maximised) of adversarial memberships `m` of an image whose clean
    /// memberships are `clean` with argmax `clean_label`, for `target` (targeted) or `None`.
    pub fn value(
        self,
        m: &[f32],
        clean: &[f32],
        clean_label: ClusterId,
        target: Option<ClusterId>,
    ) -> f64 {
        match (self, target) {
            (PerImageLoss::Margin, None) => {
                max_log_except(m, clean_label) - log_membership(m, clean_label)
            }
            (PerImageLoss::Margin, Some(t)) => log_membership(m, t) - max_log_except(m, t),
            (PerImageLoss::CleanMembership, None) => -(m[clean_label] as f64),
            (PerImageLoss::CleanMembership, Some(t)) => m[t] as f64,
            (PerImageLoss::Distance, None) => m
                .iter()
                .zip(clean)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum(),
            (PerImageLoss::Distance, Some(t)) => -m
                .iter()
                .enumerate()
                .map(|(j, &a)| (a as f64 - if j == t { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>(),
        }
    }

    /// Short name (`margin`, `clean-membership`, `distance`).
    pub fn name(self) -> &'static str {
        match self {
            PerImageLoss::Margin => "margin",
            PerImageLoss::CleanMembership => "clean-membership",
            PerImageLoss::Distance => "distance",
        }
    }
}

fn log_membership(m: &[f32], j: usize) -> f64 {
    (m[j] as f64).max(LOG_FLOOR).ln()
}

fn max_log_except(m: &[f32], skip: usize) -> f64 {
    m.iter()
        .enumerate()
        .filter(|&(j, _)| j != skip)
        .map(|(_, &v)| (v as f64).max(LOG_FLOOR).ln())
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Untargeted (leave the clean cluster) or targeted (reach a given cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Success when the predicted cluster differs from the clean one.
    #[default]
    Untargeted,
    /// Success when the predicted cluster is the image's target (one per image).
    Targeted(Vec<ClusterId>),
}

impl Goal {
    /// Every one of `n` images towards cluster `target`.
    pub fn targeted_all(target: ClusterId, n: usize) -> Self {
        Goal::Targeted(vec![target; n])
    }

    /// The target of image `i`, if targeted.
    pub fn target(&self, i: usize) -> Option<ClusterId> {
        match self {
            Goal::Untargeted => None,
            Goal::Targeted(t) => t.get(i).copied(),
        }
    }

    /// Whether an image of clean cluster `clean` now predicted `adv` has succeeded.
    pub fn succeeded(target: Option<ClusterId>, clean: ClusterId, adv: ClusterId) -> bool {
        match target {
            None => adv != clean,
            Some(t) => adv == t,
        }
    }

    /// Refuses targets that do not fit `n` images and `k` clusters.
    pub(crate) fn check(&self, n: usize, k: usize) -> Result<()> {
        if let Goal::Targeted(t) = self {
            if t.len() != n {
                return Err(PerImageError::InvalidTargets(format!(
                    "{} targets for {n} images",
                    t.len()
                )));
            }
            if let Some((i, &bad)) = t.iter().enumerate().find(|&(_, &c)| c >= k) {
                return Err(PerImageError::InvalidTargets(format!(
                    "image {i}: target cluster {bad} but the victim has {k} clusters"
                )));
            }
        }
        Ok(())
    }
}

/// The basis SimBA searches along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimbaBasis {
    /// Single pixels (one channel of one pixel), in a random order.
    Pixel,
    /// Orthonormal 2-D DCT basis images, low frequencies first: a random order over the
    /// `freq_dims x freq_dims` lowest frequencies of every channel, then rings of `stride`
    /// more frequencies at a time.
    Dct {
        /// Side of the first (lowest-frequency) block.
        freq_dims: usize,
        /// Width of each further ring.
        stride: usize,
    },
}

/// A per-image attack method and its own hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum PerImageMethod {
    /// NES (Ilyas et al. 2018): antithetic Gaussian finite differences estimate the gradient,
    /// averaged over steps with momentum, then a projected signed step (L-inf) or normalised
    /// step (L2).
    Nes {
        /// Direction pairs per gradient estimate (`2 * samples` queries, plus one for the
        /// current point).
        samples: usize,
        /// Finite-difference radius.
        sigma: f32,
        /// Step size, as a fraction of epsilon.
        step_ratio: f32,
        /// Weight of the previous estimate in the running one (0: none; Ilyas et al. use 0.9).
        momentum: f32,
    },
    /// SPSA (Uesato et al. 2018): Rademacher finite differences and an Adam step, projected.
    Spsa {
        /// Direction pairs per gradient estimate.
        samples: usize,
        /// Finite-difference radius.
        delta: f32,
        /// Adam learning rate, as a fraction of epsilon.
        lr_ratio: f32,
    },
    /// SimBA (Guo et al. 2019): try `+step` then `-step` along one basis direction at a time,
    /// keep what improves the loss (one or two queries per direction). The published method
    /// makes one pass over the basis; here a pass that improved the loss is followed by
    /// another in a new order, and the search ends after a pass that improved nothing.
    Simba {
        /// The search basis.
        basis: SimbaBasis,
        /// Step length along a (unit-norm) basis direction.
        step: f32,
    },
    /// Square Attack (Andriushchenko et al. 2020): random search over square windows with
    /// the published size schedule, one query per iteration. L-inf windows take `+-eps` per
    /// channel; L2 windows move mass between two windows at the ball's radius.
    Square {
        /// Initial fraction of pixels a window covers.
        p_init: f32,
        /// Horizon the size schedule is laid out over (the published 10,000 iterations);
        /// independent of the budget so that a run cut at any budget equals a shorter run.
        schedule_queries: u64,
    },
}

impl PerImageMethod {
    /// NES with 10 direction pairs, sigma 0.01, momentum 0.9 and steps of eps / 4.
    pub const NES: PerImageMethod = PerImageMethod::Nes {
        samples: 10,
        sigma: 0.01,
        step_ratio: 0.25,
        momentum: 0.9,
    };
    /// SPSA with 10 Rademacher pairs, delta 0.01 and Adam at eps / 10.
    pub const SPSA: PerImageMethod = PerImageMethod::Spsa {
        samples: 10,
        delta: 0.01,
        lr_ratio: 0.1,
    };
    /// SimBA on pixels, step 0.2 (the published default for images in [0, 1]).
    pub const SIMBA_PIXEL: PerImageMethod = PerImageMethod::Simba {
        basis: SimbaBasis::Pixel,
        step: 0.2,
    };
    /// Square Attack with the published `p_init = 0.05` over 10,000 iterations.
    pub const SQUARE: PerImageMethod = PerImageMethod::Square {
        p_init: 0.05,
        schedule_queries: 10_000,
    };

    /// SimBA-DCT with a low-frequency block of a quarter of the image side (at least 1) and
    /// rings of the same width, step 0.2.
    pub fn simba_dct(image_side: usize) -> PerImageMethod {
        let q = (image_side / 4).max(1);
        PerImageMethod::Simba {
            basis: SimbaBasis::Dct {
                freq_dims: q,
                stride: q,
            },
            step: 0.2,
        }
    }

    /// Short name (`nes`, `spsa`, `simba-pixel`, `simba-dct`, `square`).
    pub fn name(&self) -> &'static str {
        match self {
            PerImageMethod::Nes { .. } => "nes",
            PerImageMethod::Spsa { .. } => "spsa",
            PerImageMethod::Simba {
                basis: SimbaBasis::Pixel,
                ..
            } => "simba-pixel",
            PerImageMethod::Simba {
                basis: SimbaBasis::Dct { .. },
                ..
            } => "simba-dct",
            PerImageMethod::Square { .. } => "square",
        }
    }

    fn check(&self) -> Result<()> {
        let positive = |name: &'static str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(PerImageError::invalid(
                    name,
                    format!("{v} is not a positive number"),
                ))
            }
        };
        match *self {
            PerImageMethod::Nes {
                samples,
                sigma,
                step_ratio,
                momentum,
            } => {
                nonzero("samples", samples)?;
                positive("sigma", sigma)?;
                if !(0.0..1.0).contains(&momentum) {
                    return Err(PerImageError::invalid(
                        "momentum",
                        format!("{momentum} is not in [0, 1)"),
                    ));
                }
                positive("step_ratio", step_ratio)
            }
            PerImageMethod::Spsa {
                samples,
                delta,
                lr_ratio,
            } => {
                nonzero("samples", samples)?;
                positive("delta", delta)?;
                positive("lr_ratio", lr_ratio)
            }
            PerImageMethod::Simba { basis, step } => {
                if let SimbaBasis::Dct { freq_dims, stride } = basis {
                    nonzero("freq_dims", freq_dims)?;
                    nonzero("stride", stride)?;
                }
                positive("step", step)
            }
            PerImageMethod::Square {
                p_init,
                schedule_queries,
            } => {
                if !(p_init.is_finite() && p_init > 0.0 && p_init <= 1.0) {
                    return Err(PerImageError::invalid(
                        "p_init",
                        format!("{p_init} is not a fraction in (0, 1]"),
                    ));
                }
                if schedule_queries == 0 {
                    return Err(PerImageError::invalid(
                        "schedule_queries",
                        "must be at least 1",
                    ));
                }
                Ok(())
            }
        }
    }
}

fn nonzero(name: &'static str, v: usize) -> Result<()> {
    if v == 0 {
        Err(PerImageError::invalid(name, "must be at least 1"))
    } else {
        Ok(())
    }
}

/// Validated settings of one per-image attack run (build with [`PerImageConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerImageSettings {
    /// The method and its hyperparameters.
    pub method: PerImageMethod,
    /// How far an image may move.
    pub threat: ThreatModel,
    /// The objective.
    pub loss: PerImageLoss,
    /// Queries each image may cost, its clean query included (at least 1).
    pub max_queries: u64,
    /// Stop an image at its first success (otherwise keep improving the loss until the
    /// budget runs out).
    pub stop_on_success: bool,
    /// Images per oracle call (the last call of a round may be smaller).
    pub max_images_per_call: usize,
    /// Images attacked side by side (their queries share calls); results do not depend on it.
    pub concurrent_images: usize,
    /// Per-image budgets at which the state of the run is recorded: the record at `b` equals
    /// a run with `max_queries = b`. Each must be at most `max_queries`.
    pub snapshots: Vec<u64>,
    /// Seed; image `i` draws from its own stream, so results do not depend on batching.
    pub seed: u64,
}

/// Unchecked builder of [`PerImageSettings`] (validated by [`ParamGuard::check`]).
///
/// ```
/// use advclust_core::{ParamGuard, ThreatModel};
/// use advclust_perimage::{PerImageConfig, PerImageMethod};
///
/// let threat = ThreatModel::linf(0.1).check().unwrap();
/// let settings = PerImageConfig::new(PerImageMethod::SQUARE, threat)
///     .max_queries(100)
///     .snapshots(vec![10, 50])
///     .check()
///     .unwrap();
/// assert_eq!(settings.max_queries, 100);
/// let bad = PerImageConfig::new(PerImageMethod::SQUARE, threat).max_queries(0).check();
/// assert!(bad.is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PerImageConfig(PerImageSettings);

impl PerImageConfig {
    /// Defaults: margin loss, 1,000 queries per image, stop on success, calls of 256 images,
    /// 256 images side by side, no snapshots, seed 0.
    pub fn new(method: PerImageMethod, threat: ThreatModel) -> Self {
        PerImageConfig(PerImageSettings {
            method,
            threat,
            loss: PerImageLoss::Margin,
            max_queries: 1_000,
            stop_on_success: true,
            max_images_per_call: 256,
            concurrent_images: 256,
            snapshots: Vec::new(),
            seed: 0,
        })
    }

    /// Unchecked settings (e.g. deserialized) to validate.
    pub fn from_settings(settings: PerImageSettings) -> Self {
        PerImageConfig(settings)
    }

    /// Sets the objective.
    pub fn loss(mut self, loss: PerImageLoss) -> Self {
        self.0.loss = loss;
        self
    }

    /// Sets the per-image query budget (clean query included).
    pub fn max_queries(mut self, queries: u64) -> Self {
        self.0.max_queries = queries;
        self
    }

    /// Whether an image stops at its first success.
    pub fn stop_on_success(mut self, stop: bool) -> Self {
        self.0.stop_on_success = stop;
        self
    }

    /// Sets the images per oracle call.
    pub fn max_images_per_call(mut self, images: usize) -> Self {
        self.0.max_images_per_call = images;
        self
    }

    /// Sets how many images are attacked side by side.
    pub fn concurrent_images(mut self, images: usize) -> Self {
        self.0.concurrent_images = images;
        self
    }

    /// Sets the per-image budgets to record (sorted and deduplicated on check).
    pub fn snapshots(mut self, budgets: Vec<u64>) -> Self {
        self.0.snapshots = budgets;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
}

impl ParamGuard for PerImageConfig {
    type Checked = PerImageSettings;
    type Error = PerImageError;

    fn check_ref(&self) -> Result<&PerImageSettings> {
        let s = &self.0;
        s.method.check()?;
        if s.max_queries == 0 {
            return Err(PerImageError::invalid(
                "max_queries",
                "must be at least 1 (the clean query)",
            ));
        }
        nonzero("max_images_per_call", s.max_images_per_call)?;
        nonzero("concurrent_images", s.concurrent_images)?;
        if let Some(&b) = s.snapshots.iter().find(|&&b| b == 0 || b > s.max_queries) {
            return Err(PerImageError::invalid(
                "snapshots",
                format!("budget {b} is not in 1..={}", s.max_queries),
            ));
        }
        let eps = s.threat.epsilon();
        if !(eps.is_finite() && eps > 0.0) {
            return Err(PerImageError::invalid(
                "epsilon",
                format!("{eps} is not positive"),
            ));
        }
        Ok(s)
    }

    fn check(self) -> Result<PerImageSettings> {
        self.check_ref()?;
        let mut s = self.0;
        s.snapshots.sort_unstable();
        s.snapshots.dedup();
        Ok(s)
    }
}
