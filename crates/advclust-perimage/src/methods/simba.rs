//! SimBA: greedy coordinate search along an orthonormal basis, pixels or low-frequency DCT.

use advclust_core::SeededRng;
use rand::seq::SliceRandom;

use crate::config::SimbaBasis;
use crate::driver::{ImageCtx, Search};

/// SimBA over `basis` with step `step`.
#[derive(Debug, Clone)]
pub(crate) struct Simba {
    basis: SimbaBasis,
    step: f32,
    /// `[C, H, W]`.
    shape: [usize; 3],
    /// Orthonormal 1-D DCT-II rows, `cos_h[u * H + i]` and `cos_w[v * W + j]`.
    cos_h: Vec<f32>,
    cos_w: Vec<f32>,
}

pub(crate) struct SimbaState {
    order: Vec<usize>,
    position: usize,
    /// Whether the current pass over the basis has improved the loss.
    improved: bool,
    /// Whether `+step` along the current direction failed and `-step` is next.
    negative: bool,
    delta: Vec<f32>,
    loss: f64,
    pending: Vec<f32>,
}

/// Orthonormal DCT-II rows of length `n`: row `u` at `[u * n .. (u + 1) * n]`.
fn dct_rows(n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * n);
    for u in 0..n {
        let a = if u == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        for i in 0..n {
            let angle = std::f64::consts::PI * (2 * i + 1) as f64 * u as f64 / (2 * n) as f64;
            out.push((a * angle.cos()) as f32);
        }
    }
    out
}

impl Simba {
    pub(crate) fn new(basis: SimbaBasis, step: f32, shape: [usize; 3]) -> Self {
        let (cos_h, cos_w) = match basis {
            SimbaBasis::Pixel => (Vec::new(), Vec::new()),
            SimbaBasis::Dct { .. } => (dct_rows(shape[1]), dct_rows(shape[2])),
        };
        Simba {
            basis,
            step,
            shape,
            cos_h,
            cos_w,
        }
    }

    /// The search order over basis indices `c * H * W + u * W + v`.
    fn order(&self, rng: &mut SeededRng) -> Vec<usize> {
        let [c, h, w] = self.shape;
        let mut all: Vec<usize> = (0..c * h * w).collect();
        match self.basis {
            SimbaBasis::Pixel => {
                all.shuffle(rng);
                all
            }
            SimbaBasis::Dct { freq_dims, stride } => {
                // Ring 0: u, v < freq_dims; ring r: the next `stride` frequencies.
                let ring = |idx: usize| {
                    let (u, v) = ((idx / w) % h, idx % w);
                    let m = u.max(v);
                    if m < freq_dims {
                        0
                    } else {
                        1 + (m - freq_dims) / stride
                    }
                };
                let rings = 1 + (h.max(w).saturating_sub(freq_dims)).div_ceil(stride);
                let mut by_ring = vec![Vec::new(); rings + 1];
                for idx in all.drain(..) {
                    by_ring[ring(idx).min(rings)].push(idx);
                }
                for mut r in by_ring {
                    r.shuffle(rng);
                    all.extend(r);
                }
                all
            }
        }
    }

    /// Adds `scale` times basis vector `idx` to `delta`.
    fn add_basis(&self, delta: &mut [f32], idx: usize, scale: f32) {
        let [_, h, w] = self.shape;
        match self.basis {
            SimbaBasis::Pixel => delta[idx] += scale,
            SimbaBasis::Dct { .. } => {
                let (c, u, v) = (idx / (h * w), (idx / w) % h, idx % w);
                let plane = &mut delta[c * h * w..(c + 1) * h * w];
                let rh = &self.cos_h[u * h..(u + 1) * h];
                let rw = &self.cos_w[v * w..(v + 1) * w];
                for (i, &a) in rh.iter().enumerate() {
                    let row = &mut plane[i * w..(i + 1) * w];
                    row.iter_mut()
                        .zip(rw)
                        .for_each(|(p, &b)| *p += scale * a * b);
                }
            }
        }
    }
}

impl Search for Simba {
    type State = SimbaState;

    fn start(&self, ctx: &ImageCtx<'_>, rng: &mut SeededRng) -> SimbaState {
        SimbaState {
            order: self.order(rng),
            position: 0,
            improved: false,
            negative: false,
            delta: vec![0.0; ctx.clean.len()],
            loss: ctx.clean_loss,
            pending: Vec::new(),
        }
    }

    fn propose(
        &self,
        st: &mut SimbaState,
        ctx: &ImageCtx<'_>,
        rng: &mut SeededRng,
    ) -> Vec<Vec<f32>> {
        // Skip candidates the projection leaves unchanged (a pixel already at the bound):
        // they would cost a query and tell nothing. After a pass over the whole basis that
        // improved the loss, a new pass (in a new order) starts; a pass that improved
        // nothing ends the search.
        loop {
            if st.position == st.order.len() {
                if !st.improved {
                    return Vec::new();
                }
                st.order = self.order(rng);
                st.position = 0;
                st.improved = false;
            }
            let idx = st.order[st.position];
            let mut candidate = st.delta.clone();
            let sign = if st.negative { -1.0 } else { 1.0 };
            self.add_basis(&mut candidate, idx, sign * self.step);
            let image = ctx.project(&mut candidate);
            if candidate != st.delta {
                st.pending = candidate;
                return vec![image];
            }
            advance(st);
        }
    }

    fn observe(&self, st: &mut SimbaState, _ctx: &ImageCtx<'_>, losses: &[f64]) {
        if losses[0] > st.loss {
            st.loss = losses[0];
            std::mem::swap(&mut st.delta, &mut st.pending);
            st.position += 1;
            st.negative = false;
            st.improved = true;
        } else {
            advance(st);
        }
    }
}

/// After a failed candidate: the other sign, or the next direction.
fn advance(st: &mut SimbaState) {
    if st.negative {
        st.position += 1;
        st.negative = false;
    } else {
        st.negative = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_rows_are_orthonormal() {
        let n = 7;
        let r = dct_rows(n);
        for a in 0..n {
            for b in 0..n {
                let dot: f32 = (0..n).map(|i| r[a * n + i] * r[b * n + i]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "rows {a}, {b}: {dot}");
            }
        }
    }

    #[test]
    fn dct_order_starts_with_low_frequencies_and_covers_every_index() {
        use rand::SeedableRng;
        let s = Simba::new(
            SimbaBasis::Dct {
                freq_dims: 2,
                stride: 3,
            },
            0.2,
            [2, 8, 8],
        );
        let order = s.order(&mut SeededRng::seed_from_u64(0));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..128).collect::<Vec<_>>());
        for &idx in &order[..8] {
            let (u, v) = ((idx / 8) % 8, idx % 8);
            assert!(u < 2 && v < 2, "index {idx} is not a low frequency");
        }
    }
}
