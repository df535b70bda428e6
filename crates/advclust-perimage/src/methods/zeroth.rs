//! NES and SPSA: finite-difference gradient estimates, then a projected step.

use advclust_core::SeededRng;
use advclust_core::{NormKind, standard_normal};

use crate::driver::{ImageCtx, Search};
use crate::methods::random_sign;

/// How the estimate becomes a step.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Update {
    /// With `g <- momentum * g_prev + (1 - momentum) * estimate`: `step * sign(g)` under
    /// L-inf, `step * g / ||g||` under L2 (NES).
    Steepest { step: f32, momentum: f32 },
    /// Adam on the estimate (SPSA, as Uesato et al.).
    Adam { lr: f32 },
}

/// A zeroth-order projected-gradient search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZerothOrder {
    /// Direction pairs per estimate.
    pub samples: usize,
    /// Finite-difference radius.
    pub h: f32,
    /// Rademacher (SPSA) instead of Gaussian (NES) directions.
    pub rademacher: bool,
    /// The step rule.
    pub update: Update,
}

pub(crate) struct ZerothState {
    delta: Vec<f32>,
    /// Whether the current point's loss is known (it is for the clean start).
    evaluated: bool,
    directions: Vec<Vec<f32>>,
    /// Adam's first moment, or NES's running estimate.
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    adam_t: i32,
}

const ADAM_BETA1: f32 = 0.9;
const ADAM_BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

impl Search for ZerothOrder {
    type State = ZerothState;

    fn start(&self, ctx: &ImageCtx<'_>, _rng: &mut SeededRng) -> ZerothState {
        let d = ctx.clean.len();
        ZerothState {
            delta: vec![0.0; d],
            evaluated: true,
            directions: Vec::new(),
            adam_m: vec![0.0; d],
            adam_v: vec![0.0; d],
            adam_t: 0,
        }
    }

    fn propose(
        &self,
        st: &mut ZerothState,
        ctx: &ImageCtx<'_>,
        rng: &mut SeededRng,
    ) -> Vec<Vec<f32>> {
        let d = ctx.clean.len();
        let mut out = Vec::with_capacity(2 * self.samples + 1);
        if !st.evaluated {
            out.push(ctx.at(&st.delta));
        }
        st.directions.clear();
        for _ in 0..self.samples {
            let u = if self.rademacher {
                (0..d).map(|_| random_sign(rng)).collect()
            } else {
                standard_normal(rng, d)
            };
            out.push(ctx.probe(&st.delta, &u, self.h));
            out.push(ctx.probe(&st.delta, &u, -self.h));
            st.directions.push(u);
        }
        out
    }

    fn observe(&self, st: &mut ZerothState, ctx: &ImageCtx<'_>, losses: &[f64]) {
        let pairs = &losses[usize::from(!st.evaluated)..];
        let d = st.delta.len();
        let mut g = vec![0.0f32; d];
        let scale = 1.0 / (2.0 * self.h as f64 * self.samples as f64);
        for (u, pair) in st.directions.iter().zip(pairs.chunks(2)) {
            let w = ((pair[0] - pair[1]) * scale) as f32;
            if w != 0.0 && w.is_finite() {
                g.iter_mut().zip(u).for_each(|(gi, &ui)| *gi += w * ui);
            }
        }
        match self.update {
            Update::Steepest { step, momentum } => {
                // adam_m holds the running estimate.
                for (m, gi) in st.adam_m.iter_mut().zip(g.iter_mut()) {
                    *m = momentum * *m + (1.0 - momentum) * *gi;
                    *gi = *m;
                }
                match ctx.threat.norm() {
                    NormKind::Linf => st
                        .delta
                        .iter_mut()
                        .zip(&g)
                        .for_each(|(di, &gi)| *di += step * sign(gi)),
                    NormKind::L2 => {
                        let norm = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                        if norm > 0.0 {
                            let s = (step as f64 / norm) as f32;
                            st.delta
                                .iter_mut()
                                .zip(&g)
                                .for_each(|(di, &gi)| *di += s * gi);
                        }
                    }
                }
            }
            Update::Adam { lr } => {
                st.adam_t += 1;
                let c1 = 1.0 - ADAM_BETA1.powi(st.adam_t);
                let c2 = 1.0 - ADAM_BETA2.powi(st.adam_t);
                for (((di, &gi), m), v) in st
                    .delta
                    .iter_mut()
                    .zip(&g)
                    .zip(st.adam_m.iter_mut())
                    .zip(st.adam_v.iter_mut())
                {
                    *m = ADAM_BETA1 * *m + (1.0 - ADAM_BETA1) * gi;
                    *v = ADAM_BETA2 * *v + (1.0 - ADAM_BETA2) * gi * gi;
                    *di += lr * (*m / c1) / ((*v / c2).sqrt() + ADAM_EPS);
                }
            }
        }
        ctx.project(&mut st.delta);
        st.evaluated = false;
    }
}

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}
