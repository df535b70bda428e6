//! Typed errors and inputs that must not panic.

use advclust_metrics::{
    ContingencyTable, MAX_DENSE_CELLS, MetricsError, NmiNormalization, acc, ari, clustering_scores,
    confusion_matrix, nmi, nmi_with,
};

const MISMATCH: MetricsError = MetricsError::LengthMismatch {
    true_len: 3,
    pred_len: 2,
};

#[test]
fn length_mismatch_reports_both_lengths() {
    let (t, p) = ([1u8, 2, 3], [1i64, 2]);
    assert_eq!(nmi(&t, &p), Err(MISMATCH));
    for normalization in NmiNormalization::ALL {
        assert_eq!(nmi_with(&t, &p, normalization), Err(MISMATCH));
    }
    assert_eq!(ari(&t, &p), Err(MISMATCH));
    assert_eq!(acc(&t, &p), Err(MISMATCH));
    assert_eq!(clustering_scores(&t, &p), Err(MISMATCH));
    assert_eq!(ContingencyTable::new(&t, &p).unwrap_err(), MISMATCH);
    assert_eq!(confusion_matrix(&t, &p).unwrap_err(), MISMATCH);
    // Length is checked before emptiness.
    assert_eq!(
        acc::<u8, u8>(&[], &[1]),
        Err(MetricsError::LengthMismatch {
            true_len: 0,
            pred_len: 1
        })
    );
    assert_eq!(
        MISMATCH.to_string(),
        "label slices differ in length: 3 true labels vs 2 predicted labels"
    );
}

#[test]
fn empty_input_is_an_error_only_where_sklearn_has_no_value() {
    let empty: [u32; 0] = [];
    assert_eq!(acc(&empty, &empty), Err(MetricsError::EmptyInput));
    assert_eq!(
        clustering_scores(&empty, &empty),
        Err(MetricsError::EmptyInput)
    );
    assert_eq!(
        confusion_matrix(&empty, &empty).unwrap_err(),
        MetricsError::EmptyInput
    );
    let table = ContingencyTable::new(&empty, &empty).unwrap();
    assert_eq!(table.acc(), Err(MetricsError::EmptyInput));
    // scikit-learn returns 1.0 for NMI and ARI of empty labellings.
    assert_eq!(nmi(&empty, &empty), Ok(1.0));
    assert_eq!(ari(&empty, &empty), Ok(1.0));
    assert_eq!(table.nmi(NmiNormalization::Min), 1.0);
    assert_eq!(table.ari(), 1.0);
    assert!(MetricsError::EmptyInput.to_string().contains("empty"));
}

#[test]
fn oversized_dense_table_is_refused_but_scores_still_work() {
    // 10_000 singletons on both sides: a 10^8-cell dense table.
    let labels: Vec<u32> = (0..10_000).collect();
    let reversed: Vec<u32> = labels.iter().rev().copied().collect();
    assert_eq!(
        ContingencyTable::new(&labels, &reversed).unwrap_err(),
        MetricsError::TableTooLarge {
            rows: 10_000,
            cols: 10_000,
            limit: MAX_DENSE_CELLS
        }
    );
    // The metrics work on the sparse table, and so does the matching.
    let scores = clustering_scores(&labels, &reversed).unwrap();
    assert_eq!(scores.acc, 1.0);
    assert_eq!(scores.ari, 1.0);
    assert!((scores.nmi - 1.0).abs() < 1e-12);
}

#[test]
fn awkward_label_types_do_not_panic() {
    let t = [i64::MIN, i64::MAX, 0, i64::MIN];
    let p = [u128::MAX, 0, 0, u128::MAX];
    assert_eq!(acc(&t, &p), Ok(0.75));
    assert_eq!(
        ari(&t, &p).unwrap(),
        ari(&[0, 1, 2, 0], &[0, 1, 1, 0]).unwrap()
    );
    let t = [(1, "a"), (1, "b"), (1, "a")];
    let p = [Some('x'), None, Some('x')];
    assert_eq!(clustering_scores(&t, &p).map(|s| s.acc), Ok(1.0));
    let unit = [(), (), ()];
    assert_eq!(nmi(&unit, &[true, false, true]), Ok(0.0));
}

#[test]
fn acc_matches_brute_force_on_small_tables() {
    // Deterministic pseudo-random labellings with up to 4 classes/clusters.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |k: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % k
    };
    for _ in 0..200 {
        let n = 1 + next(30) as usize;
        let (kt, kp) = (1 + next(4), 1 + next(4));
        let t: Vec<u64> = (0..n).map(|_| next(kt)).collect();
        let p: Vec<u64> = (0..n).map(|_| next(kp) * 10).collect();
        let table = ContingencyTable::new(&t, &p).unwrap();
        let best = brute_force(&table);
        assert_eq!(acc(&t, &p).unwrap(), best as f64 / n as f64, "{t:?} {p:?}");
        // Symmetries that scikit-learn's scores share.
        assert_eq!(acc(&p, &t).unwrap(), acc(&t, &p).unwrap());
        assert_eq!(ari(&p, &t).unwrap(), ari(&t, &p).unwrap());
        assert!((nmi(&p, &t).unwrap() - nmi(&t, &p).unwrap()).abs() < 1e-15);
    }
}

/// Best matching by trying every injective map from classes to clusters
/// (with "unmatched" allowed), fine for tables up to 4 x 4.
fn brute_force(table: &ContingencyTable<u64, u64>) -> usize {
    fn go(table: &ContingencyTable<u64, u64>, row: usize, used: &mut Vec<bool>) -> usize {
        if row == table.n_classes() {
            return 0;
        }
        let mut best = go(table, row + 1, used);
        for col in 0..table.n_clusters() {
            if !used[col] {
                used[col] = true;
                let count = table.get(row, col).unwrap();
                best = best.max(count + go(table, row + 1, used));
                used[col] = false;
            }
        }
        best
    }
    go(table, 0, &mut vec![false; table.n_clusters()])
}
