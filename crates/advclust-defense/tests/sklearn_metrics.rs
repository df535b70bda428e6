//! The detection metrics against scikit-learn and NumPy on stored reference cases
//! (`tests/data/sklearn-metrics.json`, written by `scripts/defense-reference.py`): random
//! scores, ties, all-equal scores, perfect and reversed rankings, tiny and imbalanced sets and
//! single-class labels (undefined in scikit-learn, a typed error here).

use advclust_defense::DefenseError;
use advclust_defense::metrics::{average_precision, fpr_at_tpr, percentile, roc_auc};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    labels: Vec<u8>,
    scores: Vec<f64>,
    roc_auc: Option<f64>,
    average_precision: Option<f64>,
    percentile95_negatives: Option<f64>,
    fpr95: Option<f64>,
}

#[derive(Deserialize)]
struct Reference {
    sklearn: String,
    cases: Vec<Case>,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("data/sklearn-metrics.json")).unwrap()
}

#[test]
fn metrics_equal_scikit_learn_within_1e_12() {
    let reference = reference();
    assert!(
        reference.cases.len() >= 15,
        "scikit-learn {}",
        reference.sklearn
    );
    for case in &reference.cases {
        let labels: Vec<bool> = case.labels.iter().map(|&l| l == 1).collect();
        let close = |what: &str, ours: f64, theirs: f64| {
            assert!(
                (ours - theirs).abs() <= 1e-12,
                "{} {what}: ours {ours}, scikit-learn {theirs}",
                case.name
            );
        };
        match case.roc_auc {
            Some(expected) => close("roc_auc", roc_auc(&labels, &case.scores).unwrap(), expected),
            None => assert!(matches!(
                roc_auc(&labels, &case.scores),
                Err(DefenseError::SingleClass { .. })
            )),
        }
        match case.average_precision {
            Some(expected) => close(
                "average_precision",
                average_precision(&labels, &case.scores).unwrap(),
                expected,
            ),
            None => assert!(matches!(
                average_precision(&labels, &case.scores),
                Err(DefenseError::SingleClass { .. })
            )),
        }
        if let (Some(p95), Some(fpr)) = (case.percentile95_negatives, case.fpr95) {
            let of_class = |class: bool| -> Vec<f64> {
                labels
                    .iter()
                    .zip(&case.scores)
                    .filter(|(l, _)| **l == class)
                    .map(|(_, s)| *s)
                    .collect()
            };
            let (neg, pos) = (of_class(false), of_class(true));
            assert_eq!(
                percentile(&neg, 95.0).unwrap(),
                p95,
                "{} percentile",
                case.name
            );
            close("fpr95", fpr_at_tpr(&neg, &pos, 0.95).unwrap(), fpr);
        }
    }
}
