//! The CC loss: instance-level and cluster-level contrastive terms plus the entropy term.
//!
//! For a batch of `B` images seen through two augmentations (views `a` and `b`):
//!
//! - instance loss: NT-Xent over the `2B` L2-normalised embeddings with temperature
//!   `tau_I` (0.5): each embedding's positive is the other view of the same image, the other
//!   `2B - 2` embeddings are negatives; averaged over the `2B` anchors;
//! - cluster loss: the same NT-Xent over the `2K` *columns* of the two `[B, K]` assignment
//!   matrices (cosine similarity, temperature `tau_C` = 1.0), averaged over the `2K` anchors,
//!   plus `log K - H(p_a) + log K - H(p_b)`, where `p_v` is the batch marginal of view `v`'s
//!   assignments; minimising it maximises the entropy `H` and prevents the collapse of all
//!   images into one cluster.
//!
//! `L = L_ins + L_clu`, exactly as the CC reference code computes it.

use burn::tensor::Tensor;

/// The parts of the CC loss for one batch (all scalars `[1]`, still on the autodiff graph).
#[derive(Debug, Clone)]
pub struct CcLoss {
    /// `instance + cluster + entropy_weight * entropy_penalty`: what is minimised.
    pub total: Tensor<1>,
    /// Instance-level NT-Xent.
    pub instance: Tensor<1>,
    /// Cluster-level NT-Xent (without the entropy term).
    pub cluster: Tensor<1>,
    /// `2 log K - H(p_a) - H(p_b)` (zero when both marginals are uniform).
    pub entropy_penalty: Tensor<1>,
}

/// NT-Xent over `2M` rows: row `i` of `a` and row `i` of `b` are positives, everything else
/// negatives. Rows must be L2-normalised; returns the mean cross-entropy over the `2M` anchors.
pub fn nt_xent(a: Tensor<2>, b: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [m, _] = a.dims();
    let device = a.device();
    let pos = (a.clone() * b.clone()).sum_dim(1).div_scalar(temperature); // [M, 1]
    let r = Tensor::cat(vec![a, b], 0); // [2M, D]
    let sim = r.clone().matmul(r.transpose()).div_scalar(temperature); // [2M, 2M]
    let off_diag = Tensor::<2>::ones([2 * m, 2 * m], &device) - Tensor::<2>::eye(2 * m, &device);
    // Similarities are bounded by 1 / temperature, so exp cannot overflow for sane temperatures.
    let log_denominator = (sim.exp() * off_diag).sum_dim(1).log(); // [2M, 1]
    log_denominator.mean() - pos.mean()
}

/// Instance-level contrastive loss of CC: NT-Xent over the two views' L2-normalised
/// embeddings `[B, D]`.
pub fn instance_loss(z_a: Tensor<2>, z_b: Tensor<2>, temperature: f64) -> Tensor<1> {
    nt_xent(z_a, z_b, temperature)
}

/// `log K - H(p)` for the batch marginal `p` of soft assignments `[B, K]` (natural log).
pub fn entropy_penalty(c: Tensor<2>) -> Tensor<1> {
    let [_, k] = c.dims();
    let p = c.sum_dim(0); // [1, K]
    let p = p.clone() / p.sum().reshape([1, 1]);
    (p.clone() * p.clamp_min(1e-8).log())
        .sum()
        .add_scalar((k as f64).ln())
}

/// Cluster-level contrastive loss of CC: NT-Xent over the `2K` L2-normalised columns of the two
/// views' assignments `[B, K]`; returns `(contrast, entropy_penalty)` where the entropy
/// penalty is `log K - H(p_a) + log K - H(p_b)`.
pub fn cluster_loss(c_a: Tensor<2>, c_b: Tensor<2>, temperature: f64) -> (Tensor<1>, Tensor<1>) {
    let entropy = entropy_penalty(c_a.clone()) + entropy_penalty(c_b.clone());
    let cols = |c: Tensor<2>| {
        let t = c.transpose(); // [K, B]
        let norm = t.clone().square().sum_dim(1).sqrt().clamp_min(1e-8);
        t / norm
    };
    (nt_xent(cols(c_a), cols(c_b), temperature), entropy)
}

/// The full CC loss for two views: embeddings `z_*` `[B, D]` (L2-normalised) and assignments
/// `c_*` `[B, K]` (softmax).
pub fn cc_loss(
    z_a: Tensor<2>,
    z_b: Tensor<2>,
    c_a: Tensor<2>,
    c_b: Tensor<2>,
    instance_temperature: f64,
    cluster_temperature: f64,
    entropy_weight: f64,
) -> CcLoss {
    let instance = instance_loss(z_a, z_b, instance_temperature);
    let (cluster, entropy_penalty) = cluster_loss(c_a, c_b, cluster_temperature);
    let total =
        instance.clone() + cluster.clone() + entropy_penalty.clone().mul_scalar(entropy_weight);
    CcLoss {
        total,
        instance,
        cluster,
        entropy_penalty,
    }
}
