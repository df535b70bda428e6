//! What the attack maximises: the paper's output distance, or an objective that *is* the
//! clustering metric's numerator.
//!
//! The paper's `L_adv` pushes each image's output away from its clean output, which is not the
//! same as breaking the clustering: moving a mis-clustered image can fix it, and relabelling a
//! whole cluster consistently leaves NMI unchanged. [`AdvLoss::SoftMutualInformation`] instead
//! minimises the mutual information between the clean clusters `c_i` of a batch and the
//! adversarial memberships `q_i`, the numerator of NMI, differentiable in `q`:
//!
//! `P_ab = 1/B sum_i [c_i = a] q_ib`, `p_a = n_a / B`, `r_b = 1/B sum_i q_ib`,
//! `MI = sum_ab P_ab ln(P_ab / (p_a r_b))`, and `L_adv = -B MI`.
//!
//! Its gradient is `dL_adv/dq_ib = -ln(P_{c_i b} / (p_{c_i} r_b))` (the `+1` terms cancel), so
//! `L_adv = sum_i <w_i, q_i>` with those weights: the query-only estimators use that per-image
//! linearisation, the weights taken at the batch's current memberships.

use advclust_core::ClusterId;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Floor under the probabilities inside a logarithm.
const PROB_FLOOR: f64 = 1e-12;

/// What `L_adv` (maximised) measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdvLoss {
    /// The paper's distance between adversarial and clean outputs (phi), per
    /// [`crate::AdvDistance`]; for targeted attacks, minus the distance to the target.
    #[default]
    OutputDistance,
    /// Minus `B` times the soft mutual information between the clean clusters and the
    /// adversarial memberships of the batch (untargeted only).
    SoftMutualInformation,
    /// The log-membership margin of each image's clean cluster, summed over the batch:
    /// `sum_i max_{j != c_i} ln q_ij - ln q_ic_i` ([`log_margin_loss`]; untargeted only).
    /// Positive exactly for images that left their clean cluster, and still informative when
    /// memberships saturate.
    LogMargin,
}

impl AdvLoss {
    /// Short name: `distance`, `soft-mi` or `log-margin`.
    pub fn name(self) -> &'static str {
        match self {
            AdvLoss::OutputDistance => "distance",
            AdvLoss::SoftMutualInformation => "soft-mi",
            AdvLoss::LogMargin => "log-margin",
        }
    }
}

/// `-B MI(c; q)` and its gradient weights `w` (row-major `[B, k]`) for clean clusters `clean`
/// and memberships `q` (row-major `[B, k]`); `sum_i <w_i, q_i>` equals the returned value.
pub fn soft_mi_weights(clean: &[ClusterId], q: &[f32], k: usize) -> (Vec<f32>, f64) {
    let b = clean.len();
    if b == 0 || k == 0 {
        return (Vec::new(), 0.0);
    }
    let mut joint = vec![0.0f64; k * k];
    let mut pa = vec![0.0f64; k];
    let mut rb = vec![0.0f64; k];
    for (i, &c) in clean.iter().enumerate() {
        pa[c] += 1.0 / b as f64;
        for j in 0..k {
            let v = q[i * k + j] as f64 / b as f64;
            joint[c * k + j] += v;
            rb[j] += v;
        }
    }
    let mut w = vec![0.0f32; b * k];
    let mut value = 0.0f64;
    for (i, &c) in clean.iter().enumerate() {
        for j in 0..k {
            let ratio = joint[c * k + j].max(PROB_FLOOR) / (pa[c] * rb[j]).max(PROB_FLOOR);
            let wij = -ratio.ln();
            w[i * k + j] = wij as f32;
            value += wij * q[i * k + j] as f64;
        }
    }
    (w, value)
}

/// `-B MI(c; q)` as a differentiable scalar of memberships `q` `[B, k]` (the clean clusters
/// `clean`, one per row, are constants).
pub fn soft_mi_loss(q: Tensor<2>, clean: &[ClusterId]) -> Tensor<1> {
    let [b, k] = q.dims();
    let device = q.device();
    let mut onehot = vec![0.0f32; b * k];
    for (i, &c) in clean.iter().enumerate() {
        onehot[i * k + c] = 1.0;
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, k]), &device);
    let joint = onehot
        .clone()
        .transpose()
        .matmul(q.clone())
        .div_scalar(b as f64);
    let pa = onehot.mean_dim(0);
    let rb = q.mean_dim(0);
    let outer = pa.transpose().matmul(rb);
    let log_ratio = joint.clone().clamp_min(PROB_FLOOR).log() - outer.clamp_min(PROB_FLOOR).log();
    (joint * log_ratio).sum().mul_scalar(-(b as f64))
}

/// `sum_i max_{j != c_i} ln q_ij - ln q_ic_i` for memberships `q` (`[B, k]`) and clean clusters
/// `clean` (one per row), differentiable in `q`; probabilities are floored before the logarithm.
pub fn log_margin_loss(q: Tensor<2>, clean: &[ClusterId]) -> Tensor<1> {
    let [b, k] = q.dims();
    let mut onehot = vec![0.0f32; b * k];
    for (i, &c) in clean.iter().enumerate() {
        onehot[i * k + c] = 1.0;
    }
    let mask = Tensor::<2>::from_data(TensorData::new(onehot, [b, k]), &q.device());
    let log_q = q.clamp_min(PROB_FLOOR).log();
    let own = (log_q.clone() * mask.clone()).sum_dim(1);
    let other = (log_q - mask.mul_scalar(1e9)).max_dim(1);
    (other - own).sum()
}

/// [`log_margin_loss`] of one image's memberships `m` with clean cluster `c`, on the host.
pub(crate) fn log_margin(m: &[f32], c: ClusterId) -> f64 {
    let ln = |v: f32| (v as f64).max(PROB_FLOOR).ln();
    let other = m
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != c)
        .map(|(_, &v)| ln(v))
        .fold(f64::NEG_INFINITY, f64::max);
    other - ln(m[c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// MI of clean clusters and memberships straight from the definition.
    fn mutual_information(clean: &[usize], q: &[f32], k: usize) -> f64 {
        let b = clean.len() as f64;
        let mut mi = 0.0;
        for a in 0..k {
            let pa = clean.iter().filter(|&&c| c == a).count() as f64 / b;
            for j in 0..k {
                let pab: f64 = clean
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == a)
                    .map(|(i, _)| q[i * k + j] as f64)
                    .sum::<f64>()
                    / b;
                let rb: f64 = (0..clean.len()).map(|i| q[i * k + j] as f64).sum::<f64>() / b;
                if pab > 0.0 {
                    mi += pab * (pab / (pa * rb)).ln();
                }
            }
        }
        mi
    }

    fn batch() -> (Vec<usize>, Vec<f32>) {
        let clean = vec![0, 1, 2, 0, 1, 2, 0];
        let raw: Vec<f32> = (0..21).map(|i| ((i * 7 + 3) % 11) as f32 + 1.0).collect();
        let mut q = raw.clone();
        for row in q.chunks_mut(3) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        (clean, q)
    }

    #[test]
    fn weights_give_minus_b_times_the_mutual_information() {
        let (clean, q) = batch();
        let (_, value) = soft_mi_weights(&clean, &q, 3);
        let mi = mutual_information(&clean, &q, 3);
        assert!((value + 7.0 * mi).abs() < 1e-5, "{value} vs {}", -7.0 * mi);
        // Memberships equal to the clean one-hot clusters: MI is the clusters' entropy.
        let onehot: Vec<f32> = clean
            .iter()
            .flat_map(|&c| (0..3).map(move |j| if j == c { 1.0 } else { 0.0 }))
            .collect();
        let h = -[3.0f64, 2.0, 2.0]
            .iter()
            .map(|n| n / 7.0 * (n / 7.0).ln())
            .sum::<f64>();
        assert!((soft_mi_weights(&clean, &onehot, 3).1 + 7.0 * h).abs() < 1e-5);
    }

    #[test]
    fn weights_are_the_gradient_of_the_differentiable_loss() {
        let (clean, q) = batch();
        let dev = Device::flex().autodiff();
        let qt = Tensor::<2>::from_data(TensorData::new(q.clone(), [7, 3]), &dev).require_grad();
        let loss = soft_mi_loss(qt.clone(), &clean);
        let (w, value) = soft_mi_weights(&clean, &q, 3);
        let got = loss.clone().into_scalar::<f32>() as f64;
        assert!((got - value).abs() < 1e-4, "{got} vs {value}");
        let grads = loss.backward();
        let g = advclust_core::tensor_to_vec(qt.grad(&grads).unwrap().into_data()).unwrap();
        for (a, b) in g.iter().zip(&w) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn log_margin_matches_the_host_value_and_is_positive_exactly_when_flipped() {
        let device = Device::flex();
        let q = vec![0.7f32, 0.2, 0.1, 0.1, 0.3, 0.6];
        let clean = [0usize, 1];
        let t = Tensor::<2>::from_data(TensorData::new(q.clone(), [2, 3]), &device);
        let total = log_margin_loss(t, &clean).into_scalar::<f32>() as f64;
        let (a, b) = (log_margin(&q[..3], 0), log_margin(&q[3..], 1));
        assert!(a < 0.0 && b > 0.0, "{a} {b}");
        assert!((total - (a + b)).abs() < 1e-5, "{total} vs {}", a + b);
        assert!(((0.2f64 / 0.7).ln() - a).abs() < 1e-6);
        // Saturated memberships still give a finite, informative value.
        assert!(log_margin(&[1.0, 0.0, 0.0], 0) < -20.0);
    }
}
