//! The threat model: how large a perturbation may be, and in which norm.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::batch::{ImageBatch, ValueBox};
use crate::error::{CoreError, Result};
use crate::params::ParamGuard;

/// Added under the square root of an L2 norm so its gradient stays finite at zero.
const NORM_EPS: f32 = 1e-12;

/// The norm that bounds a perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// Every pixel of delta is clipped to `[-eps, eps]` (the reference code's choice).
    Linf,
    /// Each sample's delta is projected onto the L2 ball of radius `eps`.
    L2,
}

/// A validated threat model: norm, radius `epsilon` and the value box adversarial images must
/// stay in. Build it with [`ThreatModel::linf`] or [`ThreatModel::l2`] and [`ParamGuard::check`].
///
/// ```
/// use advclust_core::{ParamGuard, ThreatModel};
/// let tm = ThreatModel::linf(0.1).check().unwrap();
/// assert_eq!(tm.epsilon(), 0.1);
/// assert!(ThreatModel::l2(-1.0).check().is_err());
/// // Deserializing checks the same invariants.
/// let bad = r#"{"norm": "L2", "epsilon": -1.0, "value_box": {"min": 0.0, "max": 1.0}}"#;
/// assert!(serde_json::from_str::<ThreatModel>(bad).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ThreatModelFields")]
pub struct ThreatModel {
    norm: NormKind,
    epsilon: f32,
    value_box: ValueBox,
}

/// The fields of a [`ThreatModel`] as they appear in a file, before they are checked.
#[derive(Deserialize)]
struct ThreatModelFields {
    norm: NormKind,
    epsilon: f32,
    value_box: ValueBox,
}

impl TryFrom<ThreatModelFields> for ThreatModel {
    type Error = CoreError;

    fn try_from(f: ThreatModelFields) -> Result<Self> {
        ThreatModelParams(ThreatModel {
            norm: f.norm,
            epsilon: f.epsilon,
            value_box: f.value_box,
        })
        .check()
    }
}

/// Unchecked threat-model parameters; [`ParamGuard::check`] turns them into a [`ThreatModel`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThreatModelParams(ThreatModel);

impl ThreatModelParams {
    /// Sets the value box (default `[0, 1]`).
    pub fn value_box(mut self, value_box: ValueBox) -> Self {
        self.0.value_box = value_box;
        self
    }
}

impl ParamGuard for ThreatModelParams {
    type Checked = ThreatModel;
    type Error = CoreError;

    fn check_ref(&self) -> Result<&ThreatModel> {
        let eps = self.0.epsilon;
        if !eps.is_finite() || eps < 0.0 {
            return Err(CoreError::InvalidParameter {
                name: "epsilon",
                reason: format!("must be finite and >= 0, got {eps}"),
            });
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<ThreatModel> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// The L2 and L-infinity norms of one sample's perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerturbationNorms {
    /// Euclidean norm over all pixels of the sample.
    pub l2: f32,
    /// Largest absolute pixel change.
    pub linf: f32,
}

impl PerturbationNorms {
    /// The norms of `adv - clean` for one sample (`C*H*W` values each).
    pub fn between(clean: &[f32], adv: &[f32]) -> Self {
        let (mut sq, mut linf) = (0.0f64, 0.0f32);
        for (a, b) in clean.iter().zip(adv) {
            let d = b - a;
            sq += (d as f64) * (d as f64);
            linf = linf.max(d.abs());
        }
        PerturbationNorms {
            l2: sq.sqrt() as f32,
            linf,
        }
    }
}

/// Mean and maximum of per-sample perturbation norms over a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NormSummary {
    /// Mean per-sample L2 norm.
    pub mean_l2: f32,
    /// Largest per-sample L2 norm.
    pub max_l2: f32,
    /// Mean per-sample L-infinity norm.
    pub mean_linf: f32,
    /// Largest per-sample L-infinity norm.
    pub max_linf: f32,
}

impl NormSummary {
    /// Summarises per-sample norms (all zero for an empty slice).
    pub fn from_norms(norms: &[PerturbationNorms]) -> Self {
        if norms.is_empty() {
            return NormSummary::default();
        }
        let n = norms.len() as f64;
        NormSummary {
            mean_l2: (norms.iter().map(|p| p.l2 as f64).sum::<f64>() / n) as f32,
            max_l2: norms.iter().map(|p| p.l2).fold(0.0, f32::max),
            mean_linf: (norms.iter().map(|p| p.linf as f64).sum::<f64>() / n) as f32,
            max_linf: norms.iter().map(|p| p.linf).fold(0.0, f32::max),
        }
    }
}

impl ThreatModel {
    /// L-infinity clip of radius `epsilon`, in the unit box.
    pub fn linf(epsilon: f32) -> ThreatModelParams {
        Self::params(NormKind::Linf, epsilon)
    }

    /// L2 ball of radius `epsilon`, in the unit box.
    pub fn l2(epsilon: f32) -> ThreatModelParams {
        Self::params(NormKind::L2, epsilon)
    }

    /// Parameters for `norm` and `epsilon`, in the unit box.
    pub fn params(norm: NormKind, epsilon: f32) -> ThreatModelParams {
        ThreatModelParams(ThreatModel {
            norm,
            epsilon,
            value_box: ValueBox::UNIT,
        })
    }

    /// The norm.
    pub fn norm(&self) -> NormKind {
        self.norm
    }

    /// The radius.
    pub fn epsilon(&self) -> f32 {
        self.epsilon
    }

    /// The value box.
    pub fn value_box(&self) -> ValueBox {
        self.value_box
    }

    /// Bounds a raw perturbation (differentiable): clip to `[-eps, eps]` for L-infinity, scale
    /// each sample into the L2 ball for L2.
    pub fn bound_delta(&self, delta: Tensor<4>) -> Tensor<4> {
        match self.norm {
            NormKind::Linf => delta.clamp(-self.epsilon, self.epsilon),
            NormKind::L2 => {
                let norms = per_sample_l2(delta.clone()).unsqueeze_dims::<4>(&[1, 2, 3]);
                let scale = norms.recip().mul_scalar(self.epsilon).clamp_max(1.0);
                delta * scale
            }
        }
    }

    /// `x_adv = clamp(x + bound(delta), box)`, differentiable in `delta`.
    pub fn apply(&self, x: Tensor<4>, delta: Tensor<4>) -> Tensor<4> {
        (x + self.bound_delta(delta)).clamp(self.value_box.min(), self.value_box.max())
    }

    /// Host-side projection of `adv` onto the threat model around `clean`.
    pub fn project(&self, clean: &ImageBatch, adv: &ImageBatch) -> Result<ImageBatch> {
        clean.expect_same_layout(adv)?;
        let len = clean.image_len();
        let mut out = Vec::with_capacity(clean.data().len());
        for (x, xa) in clean.data().chunks(len).zip(adv.data().chunks(len)) {
            let mut delta: Vec<f32> = x.iter().zip(xa).map(|(a, b)| b - a).collect();
            out.extend(self.project_delta(x, &mut delta));
        }
        ImageBatch::new(out, clean.dims(), clean.value_box())
    }

    /// Projects the perturbation `delta` of one image `clean` (`C*H*W` values each) in place,
    /// so that `clean + delta` lies in the ball and the value box, and returns that image.
    pub fn project_delta(&self, clean: &[f32], delta: &mut [f32]) -> Vec<f32> {
        let (lo, hi) = (self.value_box.min(), self.value_box.max());
        let scale = match self.norm {
            NormKind::Linf => 1.0,
            NormKind::L2 => {
                let n = delta
                    .iter()
                    .map(|&d| (d as f64).powi(2))
                    .sum::<f64>()
                    .sqrt() as f32;
                if n > self.epsilon {
                    self.epsilon / n
                } else {
                    1.0
                }
            }
        };
        clean
            .iter()
            .zip(delta.iter_mut())
            .map(|(&a, d)| {
                let scaled = *d * scale;
                let bounded = match self.norm {
                    NormKind::Linf => scaled.clamp(-self.epsilon, self.epsilon),
                    NormKind::L2 => scaled,
                };
                let v = (a + bounded).clamp(lo, hi);
                *d = v - a;
                v
            })
            .collect()
    }

    /// Per-sample norms of `adv - clean`.
    pub fn norms(clean: &ImageBatch, adv: &ImageBatch) -> Result<Vec<PerturbationNorms>> {
        clean.expect_same_layout(adv)?;
        let len = clean.image_len();
        Ok(clean
            .data()
            .chunks(len)
            .zip(adv.data().chunks(len))
            .map(|(x, xa)| PerturbationNorms::between(x, xa))
            .collect())
    }

    /// True when `adv` is within the threat model around `clean` (with a small float slack).
    pub fn contains(&self, clean: &ImageBatch, adv: &ImageBatch) -> Result<bool> {
        let norms = Self::norms(clean, adv)?;
        Ok(norms.iter().all(|p| self.admits(p)))
    }

    /// True when a perturbation of norms `p` is within the radius (with a small float slack).
    pub fn admits(&self, p: &PerturbationNorms) -> bool {
        let slack = 1e-5 * self.epsilon.max(1.0);
        match self.norm {
            NormKind::Linf => p.linf <= self.epsilon + slack,
            NormKind::L2 => p.l2 <= self.epsilon + slack,
        }
    }
}

/// Per-sample L2 norm of a `[N, C, H, W]` tensor, shape `[N]`; its gradient is finite at zero.
pub fn per_sample_l2(t: Tensor<4>) -> Tensor<1> {
    t.powf_scalar(2.0)
        .flatten::<2>(1, 3)
        .sum_dim(1)
        .add_scalar(NORM_EPS)
        .sqrt()
        .squeeze_dim::<1>(1)
}
