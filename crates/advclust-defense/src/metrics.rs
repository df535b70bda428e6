//! Detection metrics, computed exactly as scikit-learn and SSD's code compute them, so that a
//! number here can be set beside a published one: ROC AUC (`roc_auc_score`), average precision
//! (`average_precision_score`), the false-positive rate at 95 % true-positive rate (SSD's
//! `get_fpr`) and NumPy's default (linear) percentile.
//!
//! Convention throughout: label `true` is the positive class (adversarial, out-of-distribution),
//! and a higher score means "more anomalous".
//!
//! ```
//! use advclust_defense::metrics::{average_precision, roc_auc};
//! let labels = [false, false, true, true];
//! let scores = [0.1, 0.4, 0.35, 0.8];
//! assert!((roc_auc(&labels, &scores).unwrap() - 0.75).abs() < 1e-12);
//! assert!((average_precision(&labels, &scores).unwrap() - 0.8333333333333333).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{DefenseError, Result, check_finite};

/// NumPy's `percentile(values, q)` with the default `linear` method (`q` in `[0, 100]`),
/// including its two-sided interpolation formula, so the result is bit-identical.
pub fn percentile(values: &[f64], q: f64) -> Result<f64> {
    if values.is_empty() {
        return Err(DefenseError::Empty("the values of a percentile"));
    }
    if !(0.0..=100.0).contains(&q) {
        return Err(DefenseError::invalid(
            "q",
            format!("{q} is not in [0, 100]"),
        ));
    }
    check_finite("the values of a percentile", values)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let virtual_index = (sorted.len() - 1) as f64 * (q / 100.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let lo = below as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    Ok(if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    })
}

fn check_scored(labels: &[bool], scores: &[f64]) -> Result<()> {
    if labels.len() != scores.len() {
        return Err(DefenseError::ShapeMismatch(format!(
            "{} labels for {} scores",
            labels.len(),
            scores.len()
        )));
    }
    if labels.is_empty() {
        return Err(DefenseError::Empty("the scored samples"));
    }
    check_finite("the scores", scores)
}

/// scikit-learn's `_binary_clf_curve`: cumulative (false positives, true positives) at each
/// distinct score, from the highest score down.
fn binary_clf_curve(labels: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps) = (Vec::new(), Vec::new());
    let mut tp = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        }
        let last_of_value = order
            .get(rank + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_value {
            tps.push(tp);
            fps.push((rank + 1) as f64 - tp);
        }
    }
    (fps, tps)
}

/// Area under the ROC curve of `scores` for `labels` (scikit-learn's `roc_auc_score`: the
/// trapezoidal area of the curve through every distinct threshold, ties as diagonal steps).
/// Labels of one class only are [`DefenseError::SingleClass`], as scikit-learn raises.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    check_scored(labels, scores)?;
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(DefenseError::SingleClass {
            metric: "ROC AUC",
            class: positives > 0,
        });
    }
    let (fps, tps) = binary_clf_curve(labels, scores);
    // roc_curve(drop_intermediate=True): keep the end points and every corner.
    let m = fps.len();
    let keep: Vec<usize> = (0..m)
        .filter(|&i| {
            i == 0
                || i == m - 1
                || fps[i + 1] - 2.0 * fps[i] + fps[i - 1] != 0.0
                || tps[i + 1] - 2.0 * tps[i] + tps[i - 1] != 0.0
        })
        .collect();
    let (fp_total, tp_total) = (fps[m - 1], tps[m - 1]);
    let mut area = 0.0;
    let (mut x0, mut y0) = (0.0, 0.0);
    for &i in &keep {
        let (x1, y1) = (fps[i] / fp_total, tps[i] / tp_total);
        area += (x1 - x0) * (y1 + y0) / 2.0;
        (x0, y0) = (x1, y1);
    }
    Ok(area)
}

/// Average precision of `scores` for `labels` (scikit-learn's `average_precision_score`:
/// `sum_n (R_n - R_{n-1}) P_n` over the distinct thresholds, no interpolation). No positive
/// label is [`DefenseError::SingleClass`] (scikit-learn warns and returns 0 there); only
/// positives give 1, as in scikit-learn.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64> {
    check_scored(labels, scores)?;
    if !labels.iter().any(|&l| l) {
        return Err(DefenseError::SingleClass {
            metric: "average precision",
            class: false,
        });
    }
    let (fps, tps) = binary_clf_curve(labels, scores);
    let tp_total = tps[tps.len() - 1];
    let mut ap = 0.0;
    let mut previous_recall = 0.0;
    for (&fp, &tp) in fps.iter().zip(&tps) {
        let recall = tp / tp_total;
        let precision = tp / (tp + fp);
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    Ok(ap)
}

/// SSD's `get_fpr`: the fraction of `outliers` scored below the `100 * tpr`-th percentile of
/// `inliers` (the threshold that accepts a fraction `tpr` of the in-distribution samples), i.e.
/// the false-positive rate at that true-positive rate, in-distribution being the positive class.
pub fn fpr_at_tpr(inliers: &[f64], outliers: &[f64], tpr: f64) -> Result<f64> {
    if outliers.is_empty() {
        return Err(DefenseError::Empty("the outlier scores"));
    }
    check_finite("the outlier scores", outliers)?;
    let threshold = percentile(inliers, 100.0 * tpr)?;
    Ok(outliers.iter().filter(|&&s| s < threshold).count() as f64 / outliers.len() as f64)
}

/// The three numbers SSD reports for one candidate set against clean data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectionMetrics {
    /// False-positive rate at 95 % true-positive rate ([`fpr_at_tpr`]; lower is better).
    pub fpr95: f64,
    /// ROC AUC with the candidates as positives ([`roc_auc`]).
    pub auroc: f64,
    /// Average precision with the candidates as positives (AUPR-out, [`average_precision`]).
    pub aupr: f64,
}

impl DetectionMetrics {
    /// The metrics of `candidates` (positives) against `clean` (negatives) scores.
    pub fn of(clean: &[f64], candidates: &[f64]) -> Result<Self> {
        let labels: Vec<bool> = std::iter::repeat_n(false, clean.len())
            .chain(std::iter::repeat_n(true, candidates.len()))
            .collect();
        let scores: Vec<f64> = clean.iter().chain(candidates).copied().collect();
        Ok(DetectionMetrics {
            fpr95: fpr_at_tpr(clean, candidates, 0.95)?,
            auroc: roc_auc(&labels, &scores)?,
            aupr: average_precision(&labels, &scores)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_on_small_cases() {
        // numpy.percentile([1, 2, 3, 4], 95) == 3.8499999999999996
        assert_eq!(
            percentile(&[4.0, 1.0, 3.0, 2.0], 95.0).unwrap(),
            3.8499999999999996
        );
        assert_eq!(percentile(&[5.0], 95.0).unwrap(), 5.0);
        assert_eq!(percentile(&[1.0, 2.0], 0.0).unwrap(), 1.0);
        assert_eq!(percentile(&[1.0, 2.0], 100.0).unwrap(), 2.0);
        assert!(percentile(&[], 50.0).is_err());
        assert!(percentile(&[1.0], 101.0).is_err());
        assert!(percentile(&[f64::NAN], 50.0).is_err());
    }

    #[test]
    fn perfect_and_reversed_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&labels, &[0.0, 1.0, 2.0, 3.0]).unwrap(), 1.0);
        assert_eq!(roc_auc(&labels, &[3.0, 2.0, 1.0, 0.0]).unwrap(), 0.0);
        assert_eq!(roc_auc(&labels, &[1.0; 4]).unwrap(), 0.5);
        assert_eq!(
            average_precision(&labels, &[0.0, 1.0, 2.0, 3.0]).unwrap(),
            1.0
        );
        assert_eq!(average_precision(&labels, &[1.0; 4]).unwrap(), 0.5);
    }

    #[test]
    fn single_class_and_bad_input_are_typed_errors() {
        assert!(matches!(
            roc_auc(&[true, true], &[0.0, 1.0]),
            Err(DefenseError::SingleClass { class: true, .. })
        ));
        assert!(matches!(
            average_precision(&[false, false], &[0.0, 1.0]),
            Err(DefenseError::SingleClass { class: false, .. })
        ));
        assert_eq!(average_precision(&[true, true], &[0.0, 1.0]).unwrap(), 1.0);
        assert!(matches!(
            roc_auc(&[true], &[0.0, 1.0]),
            Err(DefenseError::ShapeMismatch(_))
        ));
        assert!(matches!(
            roc_auc(&[true, false], &[f64::NAN, 1.0]),
            Err(DefenseError::NonFinite { index: 0, .. })
        ));
        assert!(fpr_at_tpr(&[1.0], &[], 0.95).is_err());
    }
}
