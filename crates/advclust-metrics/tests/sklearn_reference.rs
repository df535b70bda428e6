//! Compares every metric with scikit-learn / scipy on the cases stored in
//! `reference/sklearn_reference.json` (written by `reference/make_reference.py`).

use std::fmt::Debug;

use advclust_metrics::{
    ContingencyTable, Label, MetricsError, NmiNormalization, acc, ari, clustering_scores, nmi,
    nmi_with,
};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-9;
const REFERENCE: &str = include_str!("reference/sklearn_reference.json");

#[derive(Deserialize)]
struct Reference {
    sklearn_version: String,
    cases: Vec<Case>,
    large_cases: Vec<LargeCase>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Deserialize)]
struct Expected {
    nmi: Nmi,
    ari: f64,
    acc: Option<f64>,
}

#[derive(Deserialize)]
struct Nmi {
    arithmetic: f64,
    geometric: f64,
    min: f64,
    max: f64,
}

impl Nmi {
    fn get(&self, normalization: NmiNormalization) -> f64 {
        match normalization {
            NmiNormalization::Arithmetic => self.arithmetic,
            NmiNormalization::Geometric => self.geometric,
            NmiNormalization::Min => self.min,
            NmiNormalization::Max => self.max,
        }
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    labels_true: Labels,
    labels_pred: Labels,
    #[serde(flatten)]
    expected: Expected,
}

#[derive(Deserialize)]
struct LargeCase {
    name: String,
    n: u64,
    k_true: u64,
    k_pred: u64,
    seed_true: u64,
    seed_pred: u64,
    seed_noise: u64,
    keep_percent: u64,
    first_true: Vec<i64>,
    first_pred: Vec<i64>,
    #[serde(flatten)]
    expected: Expected,
}

fn reference() -> Reference {
    serde_json::from_str(REFERENCE).expect("reference JSON parses")
}

/// Largest absolute difference seen, per metric.
#[derive(Default, Debug)]
struct MaxDiff {
    nmi: f64,
    ari: f64,
    acc: f64,
    checks: usize,
}

impl MaxDiff {
    fn record(&mut self, which: &str, context: &str, got: f64, want: f64) {
        let diff = (got - want).abs();
        assert!(
            diff <= TOLERANCE,
            "{context}: {which} = {got:e}, sklearn = {want:e}, |diff| = {diff:e}"
        );
        let slot = match which {
            "ari" => &mut self.ari,
            "acc" => &mut self.acc,
            _ => &mut self.nmi,
        };
        *slot = slot.max(diff);
        self.checks += 1;
    }

    fn max(&self) -> f64 {
        self.nmi.max(self.ari).max(self.acc)
    }
}

/// Checks every public entry point on one pair of label slices.
fn check<T: Label + Debug, P: Label + Debug>(
    context: &str,
    labels_true: &[T],
    labels_pred: &[P],
    expected: &Expected,
    diffs: &mut MaxDiff,
) {
    for normalization in NmiNormalization::ALL {
        let got = nmi_with(labels_true, labels_pred, normalization).unwrap();
        let want = expected.nmi.get(normalization);
        diffs.record("nmi", &format!("{context} ({normalization:?})"), got, want);
    }
    let got = nmi(labels_true, labels_pred).unwrap();
    diffs.record("nmi", context, got, expected.nmi.arithmetic);
    diffs.record(
        "ari",
        context,
        ari(labels_true, labels_pred).unwrap(),
        expected.ari,
    );

    let table = ContingencyTable::new(labels_true, labels_pred).unwrap();
    diffs.record("ari", context, table.ari(), expected.ari);
    let got = table.nmi(NmiNormalization::Geometric);
    diffs.record("nmi", context, got, expected.nmi.geometric);

    match expected.acc {
        Some(want) => {
            diffs.record("acc", context, acc(labels_true, labels_pred).unwrap(), want);
            diffs.record("acc", context, table.acc().unwrap(), want);
            let scores = clustering_scores(labels_true, labels_pred).unwrap();
            diffs.record("nmi", context, scores.nmi, expected.nmi.arithmetic);
            diffs.record("ari", context, scores.ari, expected.ari);
            diffs.record("acc", context, scores.acc, want);
        }
        None => {
            assert_eq!(acc(labels_true, labels_pred), Err(MetricsError::EmptyInput));
            assert_eq!(table.acc(), Err(MetricsError::EmptyInput));
            assert_eq!(
                clustering_scores(labels_true, labels_pred),
                Err(MetricsError::EmptyInput)
            );
        }
    }
}

/// Runs `check` on the labels as stored and, where they fit, as other
/// integer types (true and predicted labels of different types).
fn check_all_types(case: &Case, diffs: &mut MaxDiff) {
    let context = case.name.as_str();
    match (&case.labels_true, &case.labels_pred) {
        (Labels::Ints(t), Labels::Ints(p)) => {
            check(context, t, p, &case.expected, diffs);
            if let (Some(t), Some(p)) = (convert::<u8>(t), convert::<usize>(p)) {
                check(
                    &format!("{context} as u8/usize"),
                    &t,
                    &p,
                    &case.expected,
                    diffs,
                );
            }
            if let (Some(t), Some(p)) = (convert::<u64>(t), convert::<u16>(p)) {
                check(
                    &format!("{context} as u64/u16"),
                    &t,
                    &p,
                    &case.expected,
                    diffs,
                );
            }
            if let (Some(t), Some(p)) = (convert::<i32>(t), convert::<i16>(p)) {
                check(
                    &format!("{context} as i32/i16"),
                    &t,
                    &p,
                    &case.expected,
                    diffs,
                );
            }
            // Integers as strings: same partitions, hashing path, other order.
            let (ts, ps) = (to_strings(t), to_strings(p));
            check(
                &format!("{context} as String"),
                &ts,
                &ps,
                &case.expected,
                diffs,
            );
        }
        (Labels::Strings(t), Labels::Strings(p)) => {
            check(context, t, p, &case.expected, diffs);
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            check(
                &format!("{context} String/&str"),
                t,
                &p,
                &case.expected,
                diffs,
            );
        }
        (Labels::Ints(t), Labels::Strings(p)) => check(context, t, p, &case.expected, diffs),
        (Labels::Strings(t), Labels::Ints(p)) => check(context, t, p, &case.expected, diffs),
    }
}

fn convert<U: TryFrom<i64>>(labels: &[i64]) -> Option<Vec<U>> {
    labels.iter().map(|&x| U::try_from(x).ok()).collect()
}

fn to_strings(labels: &[i64]) -> Vec<String> {
    labels.iter().map(|x| format!("id{x}")).collect()
}

#[test]
fn matches_sklearn_on_every_stored_case() {
    let reference = reference();
    assert!(reference.cases.len() >= 50, "expected edge + random cases");
    let mut diffs = MaxDiff::default();
    for case in &reference.cases {
        check_all_types(case, &mut diffs);
    }
    println!(
        "sklearn {}: {} cases, {} comparisons, max |diff| nmi {:e}, ari {:e}, acc {:e}, overall {:e}",
        reference.sklearn_version,
        reference.cases.len(),
        diffs.checks,
        diffs.nmi,
        diffs.ari,
        diffs.acc,
        diffs.max()
    );
}

#[test]
fn stored_cases_cover_the_edge_cases() {
    let reference = reference();
    let names: Vec<&str> = reference.cases.iter().map(|c| c.name.as_str()).collect();
    for required in [
        "empty",
        "n1",
        "identical",
        "permuted",
        "one_cluster_true",
        "one_cluster_pred",
        "one_cluster_both",
        "all_singletons_both",
        "k_pred_gt_k_true",
        "k_pred_lt_k_true",
        "noncontiguous_3_17_1000",
        "negative_ids",
    ] {
        assert!(names.contains(&required), "missing case {required}");
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("random_") && n.contains("_style"))
            .count(),
        30
    );
}

fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, i: u64) -> u64 {
    splitmix64(seed.wrapping_mul(1 << 32).wrapping_add(i))
}

/// Same generator as `generate` in `make_reference.py`.
fn generate(case: &LargeCase) -> (Vec<i64>, Vec<i64>) {
    let truth: Vec<u64> = (0..case.n)
        .map(|i| hash(case.seed_true, i) % case.k_true)
        .collect();
    let pred = (0..case.n)
        .map(|i| {
            if hash(case.seed_noise, i) % 100 < case.keep_percent {
                truth[i as usize] % case.k_pred
            } else {
                hash(case.seed_pred, i) % case.k_pred
            }
        })
        .map(|x| x as i64)
        .collect();
    (truth.into_iter().map(|x| x as i64).collect(), pred)
}

#[test]
fn million_samples_match_sklearn_without_overflow() {
    let reference = reference();
    assert!(!reference.large_cases.is_empty());
    let mut diffs = MaxDiff::default();
    for case in &reference.large_cases {
        let (t, p) = generate(case);
        assert_eq!(t.len(), 1_000_000);
        assert_eq!(
            t[..8],
            case.first_true[..],
            "{}: generator differs",
            case.name
        );
        assert_eq!(
            p[..8],
            case.first_pred[..],
            "{}: generator differs",
            case.name
        );
        check(&case.name, &t, &p, &case.expected, &mut diffs);
        let (t, p) = (convert::<u32>(&t).unwrap(), convert::<u8>(&p).unwrap());
        check(
            &format!("{} as u32/u8", case.name),
            &t,
            &p,
            &case.expected,
            &mut diffs,
        );
        // Pair counts are exact, so the ARI equals sklearn's bit for bit.
        assert_eq!(ari(&t, &p).unwrap(), case.expected.ari, "{}", case.name);
    }
    println!(
        "n = 10^6: {} cases, max |diff| nmi {:e}, ari {:e}, acc {:e}",
        reference.large_cases.len(),
        diffs.nmi,
        diffs.ari,
        diffs.acc
    );
}
