//! NMI, ARI and ACC, computed the way scikit-learn computes them.

use serde::{Deserialize, Serialize};

use crate::assignment::max_matching;
use crate::contingency::{PairCounts, count};
use crate::error::MetricsError;
use crate::label::Label;

/// How mutual information is normalised by the two entropies in
/// [`nmi_with`], as `average_method` in scikit-learn's
/// `normalized_mutual_info_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NmiNormalization {
    /// `(H(true) + H(pred)) / 2`, scikit-learn's default.
    #[default]
    Arithmetic,
    /// `sqrt(H(true) * H(pred))`.
    Geometric,
    /// `min(H(true), H(pred))`.
    Min,
    /// `max(H(true), H(pred))`.
    Max,
}

impl NmiNormalization {
    /// All four normalisations, in declaration order.
    pub const ALL: [Self; 4] = [Self::Arithmetic, Self::Geometric, Self::Min, Self::Max];

    /// The generalised mean of two entropies (sklearn's `_generalized_average`).
    pub fn average(self, h_true: f64, h_pred: f64) -> f64 {
        match self {
            Self::Arithmetic => (h_true + h_pred) / 2.0,
            Self::Geometric => (h_true * h_pred).sqrt(),
            Self::Min => h_true.min(h_pred),
            Self::Max => h_true.max(h_pred),
        }
    }
}

/// NMI, ARI and ACC of one clustering, as written to result files.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusteringScores {
    /// Normalised mutual information, arithmetic normalisation.
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
    /// Clustering accuracy under the best one-to-one cluster/class matching.
    pub acc: f64,
}

/// Normalised mutual information with arithmetic normalisation, equal to
/// scikit-learn's `normalized_mutual_info_score(labels_true, labels_pred)`.
///
/// In `[0, 1]`; `1.0` when the two partitions are identical up to renaming,
/// including when both are a single cluster or both are empty.
///
/// ```
/// let nmi = advclust_metrics::nmi(&[0, 0, 1, 1], &[5, 5, 3, 3])?;
/// assert_eq!(nmi, 1.0);
/// # Ok::<(), advclust_metrics::MetricsError>(())
/// ```
///
/// # Errors
///
/// [`MetricsError::LengthMismatch`] when the slices differ in length.
pub fn nmi<T: Label, P: Label>(labels_true: &[T], labels_pred: &[P]) -> Result<f64, MetricsError> {
    nmi_with(labels_true, labels_pred, NmiNormalization::Arithmetic)
}

/// Normalised mutual information with a chosen normalisation, equal to
/// `normalized_mutual_info_score(labels_true, labels_pred, average_method=...)`.
///
/// # Errors
///
/// [`MetricsError::LengthMismatch`] when the slices differ in length.
pub fn nmi_with<T: Label, P: Label>(
    labels_true: &[T],
    labels_pred: &[P],
    normalization: NmiNormalization,
) -> Result<f64, MetricsError> {
    Ok(nmi_from(
        &count(labels_true, labels_pred)?.counts,
        normalization,
    ))
}

/// Adjusted Rand index, equal to scikit-learn's `adjusted_rand_score`.
///
/// Pair counts are exact 128-bit integers, so large inputs (`n = 10^6` and
/// beyond) neither overflow nor lose precision. `1.0` for identical
/// partitions, for empty input and for a single sample.
///
/// ```
/// let ari = advclust_metrics::ari(&[0, 0, 1, 1], &[0, 1, 0, 1])?;
/// assert_eq!(ari, -0.5);
/// # Ok::<(), advclust_metrics::MetricsError>(())
/// ```
///
/// # Errors
///
/// [`MetricsError::LengthMismatch`] when the slices differ in length.
pub fn ari<T: Label, P: Label>(labels_true: &[T], labels_pred: &[P]) -> Result<f64, MetricsError> {
    Ok(ari_from(&count(labels_true, labels_pred)?.counts))
}

/// Clustering accuracy: the fraction of samples matched under the one-to-one
/// mapping of clusters to classes that matches the most samples, equal to
/// `scipy.optimize.linear_sum_assignment(maximize=True)` on the contingency
/// matrix. The matching is exact, found by a sparse shortest-augmenting-path
/// solver ([`max_weight_matching`](crate::max_weight_matching)) on the
/// non-zero cells, fast even for thousands of clusters. The numbers of
/// clusters and classes may differ; unmatched clusters count as errors.
///
/// ```
/// let acc = advclust_metrics::acc(&[0, 0, 1, 1, 1], &[7, 7, 7, 2, 2])?;
/// assert_eq!(acc, 0.8);
/// # Ok::<(), advclust_metrics::MetricsError>(())
/// ```
///
/// # Errors
///
/// [`MetricsError::LengthMismatch`] when the slices differ in length,
/// [`MetricsError::EmptyInput`] when they are empty, and
/// [`MetricsError::WeightsTooLarge`] for more than
/// [`MAX_TOTAL_WEIGHT`](crate::MAX_TOTAL_WEIGHT) samples (only possible with
/// zero-sized labels).
pub fn acc<T: Label, P: Label>(labels_true: &[T], labels_pred: &[P]) -> Result<f64, MetricsError> {
    acc_from(&count(labels_true, labels_pred)?.counts)
}

/// NMI (arithmetic), ARI and ACC from one contingency table.
///
/// # Errors
///
/// As [`acc`]: length mismatch, empty input, or too many samples.
pub fn clustering_scores<T: Label, P: Label>(
    labels_true: &[T],
    labels_pred: &[P],
) -> Result<ClusteringScores, MetricsError> {
    let counts = count(labels_true, labels_pred)?.counts;
    Ok(ClusteringScores {
        acc: acc_from(&counts)?,
        nmi: nmi_from(&counts, NmiNormalization::Arithmetic),
        ari: ari_from(&counts),
    })
}

/// sklearn's `normalized_mutual_info_score` on a contingency table.
pub(crate) fn nmi_from(counts: &PairCounts, normalization: NmiNormalization) -> f64 {
    let (n_classes, n_clusters) = (counts.class_sizes.len(), counts.cluster_sizes.len());
    // Both labellings have zero entropy: a perfect match.
    if (n_classes == 1 && n_clusters == 1) || (n_classes == 0 && n_clusters == 0) {
        return 1.0;
    }
    let mi = mutual_info(counts);
    // A single cluster on one side only: no information shared.
    if mi == 0.0 {
        return 0.0;
    }
    let h_true = entropy(&counts.class_sizes);
    let h_pred = entropy(&counts.cluster_sizes);
    mi / normalization.average(h_true, h_pred)
}

/// sklearn's `mutual_info_score`, term by term (natural log).
fn mutual_info(counts: &PairCounts) -> f64 {
    if counts.class_sizes.len() <= 1 || counts.cluster_sizes.len() <= 1 {
        return 0.0;
    }
    let total = counts.n_samples as f64;
    let log_total = total.ln();
    let terms: Vec<f64> = counts
        .cells
        .iter()
        .map(|cell| {
            let count = cell.count as f64;
            let p = count / total;
            let outer = (counts.class_sizes[cell.row] as u128
                * counts.cluster_sizes[cell.col] as u128) as f64;
            let log_outer = -outer.ln() + log_total + log_total;
            let term = p * (count.ln() - log_total) + p * log_outer;
            if term.abs() < f64::EPSILON { 0.0 } else { term }
        })
        .collect();
    pairwise_sum(&terms).max(0.0)
}

/// sklearn's `_entropy` from the label counts (natural log).
fn entropy(sizes: &[usize]) -> f64 {
    match sizes.len() {
        0 => return 1.0,
        1 => return 0.0,
        _ => {}
    }
    let sizes: Vec<f64> = sizes.iter().map(|&s| s as f64).collect();
    let total = pairwise_sum(&sizes);
    let log_total = total.ln();
    let terms: Vec<f64> = sizes
        .iter()
        .map(|&s| (s / total) * (s.ln() - log_total))
        .collect();
    -pairwise_sum(&terms)
}

/// sklearn's `adjusted_rand_score` on a contingency table.
///
/// Works with unordered pair counts (sklearn's pair confusion matrix holds
/// ordered pairs, i.e. exactly twice as many): the four counts scale by the
/// same power of two, so the result is bit-identical.
pub(crate) fn ari_from(counts: &PairCounts) -> f64 {
    let pairs = |x: usize| {
        let x = x as u128;
        x * x.saturating_sub(1) / 2
    };
    let same_both: u128 = counts.cells.iter().map(|c| pairs(c.count)).sum();
    let same_true: u128 = counts.class_sizes.iter().map(|&s| pairs(s)).sum();
    let same_pred: u128 = counts.cluster_sizes.iter().map(|&s| pairs(s)).sum();
    let tp = same_both;
    let fp = same_pred - same_both;
    let fn_ = same_true - same_both;
    let tn = pairs(counts.n_samples) - tp - fp - fn_;
    // Special cases: empty data or full agreement.
    if fn_ == 0 && fp == 0 {
        return 1.0;
    }
    match exact_ari_terms(tp, fp, fn_, tn) {
        Some((numerator, denominator)) => 2.0 * numerator / denominator,
        // Only for n beyond ~2^32 samples: fall back to floating point.
        None => {
            let [tp, fp, fn_, tn] = [tp, fp, fn_, tn].map(|x| x as f64);
            2.0 * (tp * tn - fn_ * fp) / ((tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn))
        }
    }
}

/// `tp*tn - fn*fp` and `(tp+fn)*(fn+tn) + (tp+fp)*(fp+tn)` in exact integer
/// arithmetic, each rounded once to `f64`; `None` on `u128` overflow.
fn exact_ari_terms(tp: u128, fp: u128, fn_: u128, tn: u128) -> Option<(f64, f64)> {
    let agree = tp.checked_mul(tn)?;
    let disagree = fn_.checked_mul(fp)?;
    let numerator = if agree >= disagree {
        (agree - disagree) as f64
    } else {
        -((disagree - agree) as f64)
    };
    let left = tp.checked_add(fn_)?.checked_mul(fn_.checked_add(tn)?)?;
    let right = tp.checked_add(fp)?.checked_mul(fp.checked_add(tn)?)?;
    Some((numerator, left.checked_add(right)? as f64))
}

/// Clustering accuracy on a contingency table.
pub(crate) fn acc_from(counts: &PairCounts) -> Result<f64, MetricsError> {
    if counts.n_samples == 0 {
        return Err(MetricsError::EmptyInput);
    }
    Ok(max_matching(counts)? as f64 / counts.n_samples as f64)
}

/// numpy's pairwise summation (`np.sum` on a contiguous float64 array), so
/// sums round the way scikit-learn's do.
fn pairwise_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |acc, &v| acc + v)
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&values[..8]);
        let unrolled = n - n % 8;
        for chunk in values[8..unrolled].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[unrolled..] {
            sum += v;
        }
        sum
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_small_and_large() {
        assert_eq!(pairwise_sum(&[]), 0.0);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(pairwise_sum(&values), 500_500.0);
    }

    #[test]
    fn normalisation_averages() {
        assert_eq!(NmiNormalization::Arithmetic.average(1.0, 4.0), 2.5);
        assert_eq!(NmiNormalization::Geometric.average(1.0, 4.0), 2.0);
        assert_eq!(NmiNormalization::Min.average(1.0, 4.0), 1.0);
        assert_eq!(NmiNormalization::Max.average(1.0, 4.0), 4.0);
        assert_eq!(NmiNormalization::default(), NmiNormalization::Arithmetic);
    }

    #[test]
    fn scores_serialise() {
        let scores = clustering_scores(&[0, 0, 1, 1], &[1, 1, 0, 0]).unwrap();
        assert_eq!(
            scores,
            ClusteringScores {
                nmi: 1.0,
                ari: 1.0,
                acc: 1.0
            }
        );
        let json = serde_json::to_string(&scores).unwrap();
        assert_eq!(json, r#"{"nmi":1.0,"ari":1.0,"acc":1.0}"#);
        let norm: NmiNormalization = serde_json::from_str(r#""geometric""#).unwrap();
        assert_eq!(norm, NmiNormalization::Geometric);
    }
}
