//! Square Attack: random search over square windows, one query per iteration.

use advclust_core::NormKind;
use advclust_core::SeededRng;
use rand::RngExt;

use crate::driver::{ImageCtx, Search};
use crate::methods::random_sign;

/// Square Attack with initial window fraction `p_init` and a size schedule laid out over
/// `schedule_queries` iterations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Square {
    pub p_init: f32,
    pub schedule_queries: u64,
}

pub(crate) struct SquareState {
    delta: Vec<f32>,
    loss: f64,
    iteration: u64,
    /// The initial perturbation has been proposed but not yet evaluated.
    init_pending: bool,
    pending: Vec<f32>,
}

/// Draws of a window that leave the image unchanged before the iteration gives up on one.
const WINDOW_TRIES: usize = 10;

impl Square {
    /// The published schedule: the window fraction halves at iterations 10, 50, 200, 500,
    /// 1000, 2000, 4000, 6000 and 8000 of 10,000 (rescaled to `schedule_queries`), and stays
    /// at its last value beyond.
    fn fraction(&self, iteration: u64) -> f32 {
        let it = iteration as f64 * 10_000.0 / self.schedule_queries as f64;
        let halvings = [
            10.0, 50.0, 200.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0, 8000.0,
        ]
        .iter()
        .filter(|&&t| it > t)
        .count();
        self.p_init / (1u32 << halvings) as f32
    }

    /// Window side for `iteration` on an `h x w` image.
    fn side(&self, iteration: u64, h: usize, w: usize) -> usize {
        let p = self.fraction(iteration) as f64;
        let s = (p * (h * w) as f64).sqrt().round() as usize;
        s.clamp(1, h.min(w).saturating_sub(1).max(1))
    }
}

/// A centred, unit-norm `s x s` bump (weights falling with the Chebyshev distance from the
/// centre), with one half negated half the time.
fn bump(s: usize, rng: &mut SeededRng) -> Vec<f32> {
    let c = (s as f32 - 1.0) / 2.0;
    let mut out = Vec::with_capacity(s * s);
    for i in 0..s {
        for j in 0..s {
            let d = (i as f32 - c).abs().max((j as f32 - c).abs());
            out.push(1.0 / (d + 1.0).powi(2));
        }
    }
    if s > 1 && rng.random::<bool>() {
        let vertical = rng.random::<bool>();
        for i in 0..s {
            for j in 0..s {
                if (vertical && j >= s / 2) || (!vertical && i >= s / 2) {
                    out[i * s + j] = -out[i * s + j];
                }
            }
        }
    }
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
    out.iter_mut().for_each(|v| *v /= norm);
    out
}

fn window_indices(
    shape: [usize; 3],
    c: usize,
    r0: usize,
    c0: usize,
    s: usize,
) -> impl Iterator<Item = usize> {
    let [_, h, w] = shape;
    (r0..r0 + s).flat_map(move |i| (c0..c0 + s).map(move |j| c * h * w + i * w + j))
}

impl Square {
    fn init_linf(&self, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> Vec<f32> {
        // Vertical stripes of +-eps, one sign per channel and column.
        let [c, h, w] = ctx.shape;
        let eps = ctx.threat.epsilon();
        let mut delta = vec![0.0; c * h * w];
        for ch in 0..c {
            for j in 0..w {
                let v = eps * random_sign(rng);
                for i in 0..h {
                    delta[ch * h * w + i * w + j] = v;
                }
            }
        }
        delta
    }

    fn init_l2(&self, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> Vec<f32> {
        // A grid of bumps with random signs per channel, scaled to the radius.
        let [c, h, w] = ctx.shape;
        let tile = (h.min(w) / 5).max(1);
        let mut delta = vec![0.0; c * h * w];
        for r0 in (0..h).step_by(tile) {
            for c0 in (0..w).step_by(tile) {
                let s = tile.min(h - r0).min(w - c0);
                let pattern = bump(s, rng);
                for ch in 0..c {
                    let sign = random_sign(rng);
                    for (idx, &p) in window_indices(ctx.shape, ch, r0, c0, s).zip(&pattern) {
                        delta[idx] = sign * p;
                    }
                }
            }
        }
        scale_to(&mut delta, ctx.threat.epsilon());
        delta
    }

    fn step_linf(&self, st: &SquareState, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> Vec<f32> {
        let [c, h, w] = ctx.shape;
        let s = self.side(st.iteration, h, w);
        let eps = ctx.threat.epsilon();
        let mut candidate = st.delta.clone();
        for _ in 0..WINDOW_TRIES {
            let (r0, c0) = (rng.random_range(0..=h - s), rng.random_range(0..=w - s));
            for ch in 0..c {
                let v = eps * random_sign(rng);
                for idx in window_indices(ctx.shape, ch, r0, c0, s) {
                    candidate[idx] = v;
                }
            }
            ctx.project(&mut candidate);
            if candidate != st.delta {
                break;
            }
        }
        candidate
    }

    fn step_l2(&self, st: &SquareState, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> Vec<f32> {
        // Window 1 receives a new bump plus its old direction, window 2 is emptied, and the
        // mass of both goes to window 1 so that the total norm stays at the radius.
        let [c, h, w] = ctx.shape;
        let s = self.side(st.iteration, h, w);
        let eps = ctx.threat.epsilon() as f64;
        let (r1, c1) = (rng.random_range(0..=h - s), rng.random_range(0..=w - s));
        let (r2, c2) = (rng.random_range(0..=h - s), rng.random_range(0..=w - s));
        let mut in_windows = vec![false; st.delta.len()];
        let mut window1 = Vec::with_capacity(c * s * s);
        for ch in 0..c {
            for idx in window_indices(ctx.shape, ch, r1, c1, s) {
                in_windows[idx] = true;
                window1.push(idx);
            }
            for idx in window_indices(ctx.shape, ch, r2, c2, s) {
                in_windows[idx] = true;
            }
        }
        let outside: f64 = st
            .delta
            .iter()
            .zip(&in_windows)
            .filter(|&(_, &inside)| !inside)
            .map(|(&d, _)| (d as f64).powi(2))
            .sum();
        let room = (eps * eps - outside).max(0.0).sqrt() as f32;
        let old: Vec<f32> = window1.iter().map(|&i| st.delta[i]).collect();
        let old_norm = old.iter().map(|v| v * v).sum::<f32>().sqrt();
        let pattern = bump(s, rng);
        let mut fresh = Vec::with_capacity(window1.len());
        for ch in 0..c {
            let sign = random_sign(rng);
            for (j, &p) in pattern.iter().enumerate() {
                let o = if old_norm > 0.0 {
                    old[ch * s * s + j] / old_norm
                } else {
                    0.0
                };
                fresh.push(o + sign * p);
            }
        }
        scale_to(&mut fresh, room);
        let mut candidate: Vec<f32> = st
            .delta
            .iter()
            .zip(&in_windows)
            .map(|(&d, &inside)| if inside { 0.0 } else { d })
            .collect();
        for (&idx, &v) in window1.iter().zip(&fresh) {
            candidate[idx] = v;
        }
        ctx.project(&mut candidate);
        candidate
    }
}

/// Scales `v` to L2 norm `target` (leaves a zero vector alone).
fn scale_to(v: &mut [f32], target: f32) {
    let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        let s = (target as f64 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= s);
    }
}

impl Search for Square {
    type State = SquareState;

    fn start(&self, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> SquareState {
        let mut delta = match ctx.threat.norm() {
            NormKind::Linf => self.init_linf(ctx, rng),
            NormKind::L2 => self.init_l2(ctx, rng),
        };
        ctx.project(&mut delta);
        SquareState {
            delta,
            loss: ctx.clean_loss,
            iteration: 0,
            init_pending: true,
            pending: Vec::new(),
        }
    }

    fn propose(
        &self,
        st: &mut SquareState,
        ctx: &ImageCtx<'_>,
        rng: &mut SeededRng,
    ) -> Vec<Vec<f32>> {
        if st.init_pending {
            return vec![ctx.at(&st.delta)];
        }
        st.pending = match ctx.threat.norm() {
            NormKind::Linf => self.step_linf(st, ctx, rng),
            NormKind::L2 => self.step_l2(st, ctx, rng),
        };
        vec![ctx.at(&st.pending)]
    }

    fn observe(&self, st: &mut SquareState, _ctx: &ImageCtx<'_>, losses: &[f64]) {
        if st.init_pending {
            // The published algorithm starts from its initial perturbation whatever its loss.
            st.init_pending = false;
            st.loss = losses[0];
            return;
        }
        if losses[0] > st.loss {
            st.loss = losses[0];
            std::mem::swap(&mut st.delta, &mut st.pending);
        }
        st.iteration += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_halves_at_the_published_iterations() {
        let sq = Square {
            p_init: 0.8,
            schedule_queries: 10_000,
        };
        assert_eq!(sq.fraction(0), 0.8);
        assert_eq!(sq.fraction(10), 0.8);
        assert_eq!(sq.fraction(11), 0.4);
        assert_eq!(sq.fraction(51), 0.2);
        assert_eq!(sq.fraction(9_000), 0.8 / 512.0);
        let short = Square {
            p_init: 0.8,
            schedule_queries: 1_000,
        };
        assert_eq!(short.fraction(2), 0.4);
        assert_eq!(sq.side(0, 28, 28), 25);
        assert_eq!(sq.side(9_000, 28, 28), 1);
    }
}
