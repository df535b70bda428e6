//! The assignment solvers (sparse and dense) against brute force,
//! `pathfinding::kuhn_munkres` and hand-made tables.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use super::*;

fn counts_of(t: &[u32], p: &[u32]) -> PairCounts {
    crate::contingency::count(t, p).unwrap().counts
}

/// xorshift64: a tiny deterministic generator for the random tables.
struct Rng(u64);

impl Rng {
    fn below(&mut self, k: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % k as u64) as usize
    }
}

/// Random `rows x cols` weights in `0..=max`, zero with probability `zeros`%.
fn random_dense(rng: &mut Rng, rows: usize, cols: usize, max: usize, zeros: usize) -> Vec<usize> {
    (0..rows * cols)
        .map(|_| {
            if rng.below(100) < zeros {
                0
            } else {
                rng.below(max + 1)
            }
        })
        .collect()
}

/// The cells of a row-major dense matrix, zeros included.
fn cells_of(dense: &[usize], cols: usize) -> Vec<(usize, usize, usize)> {
    dense
        .iter()
        .enumerate()
        .map(|(i, &w)| (i / cols, i % cols, w))
        .collect()
}

/// The sparse contingency-table view of a dense matrix whose rows and
/// columns all have a non-zero cell.
fn pair_counts_of(dense: &[usize], rows: usize, cols: usize) -> PairCounts {
    let mut counts = PairCounts {
        n_samples: dense.iter().sum(),
        class_sizes: vec![0; rows],
        cluster_sizes: vec![0; cols],
        cells: Vec::new(),
    };
    for (row, col, count) in cells_of(dense, cols) {
        if count > 0 {
            counts.class_sizes[row] += count;
            counts.cluster_sizes[col] += count;
            counts
                .cells
                .push(crate::contingency::Cell { row, col, count });
        }
    }
    counts
}

/// Best total over all one-to-one partial matchings (every permutation of
/// the columns over the rows, rows allowed to stay unmatched).
fn brute_force(dense: &[usize], rows: usize, cols: usize) -> usize {
    fn best(dense: &[usize], cols: usize, row: usize, rows: usize, used: &mut [bool]) -> usize {
        if row == rows {
            return 0;
        }
        let mut top = best(dense, cols, row + 1, rows, used);
        for col in 0..cols {
            if !used[col] {
                used[col] = true;
                let total = dense[row * cols + col] + best(dense, cols, row + 1, rows, used);
                top = top.max(total);
                used[col] = false;
            }
        }
        top
    }
    best(dense, cols, 0, rows, &mut vec![false; cols])
}

/// Optimal totals of the sparse and the dense solver on the same dense
/// matrix, called directly (`solve` picks one by size).
fn both_solvers(dense: &[usize], rows: usize, cols: usize) -> (usize, usize) {
    let edges = cells_of(dense, cols).into_iter();
    let graph = if rows > cols {
        Graph::new(cols, rows, edges.map(|(r, c, w)| (c, r, w)))
    } else {
        Graph::new(rows, cols, edges)
    };
    let total = |col4row: Vec<usize>| -> usize {
        assert_eq!(col4row.len(), graph.n_rows());
        let mut used = vec![false; graph.n_cols];
        for &c in &col4row {
            assert!(
                !std::mem::replace(&mut used[c], true),
                "column {c} used twice"
            );
        }
        col4row
            .iter()
            .enumerate()
            .map(|(r, &c)| graph.weight(r, c))
            .sum()
    };
    (total(graph.solve_sparse()), total(dense::solve(&graph)))
}

/// Checks that a matching is one-to-one, of positive weights adding up to
/// its total.
fn check_matching(matching: &Matching, dense: &[usize], rows: usize, cols: usize) {
    let mut row_used = vec![false; rows];
    let mut col_used = vec![false; cols];
    let mut total = 0;
    for &(r, c) in &matching.pairs {
        assert!(!row_used[r] && !col_used[c], "{matching:?}");
        (row_used[r], col_used[c]) = (true, true);
        assert!(dense[r * cols + c] > 0);
        total += dense[r * cols + c];
    }
    assert_eq!(total, matching.total);
    assert!(matching.pairs.is_sorted());
}

#[test]
fn random_small_rectangular_tables_match_brute_force() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..2_000 {
        let (rows, cols) = (1 + rng.below(6), 1 + rng.below(6));
        // Few weight values and many zeros: plenty of ties.
        let max = [1, 2, 3, 9, 1000][rng.below(5)];
        let zeros = [0, 30, 60, 90][rng.below(4)];
        let dense = random_dense(&mut rng, rows, cols, max, zeros);
        let want = brute_force(&dense, rows, cols);
        let matching = max_weight_matching(&cells_of(&dense, cols)).unwrap();
        assert_eq!(matching.total, want, "case {case}: {rows}x{cols} {dense:?}");
        check_matching(&matching, &dense, rows, cols);
        let context = format!("case {case}: {rows}x{cols} {dense:?}");
        assert_eq!(both_solvers(&dense, rows, cols), (want, want), "{context}");
        // The contingency-table entry point, when every row and column has a
        // non-zero cell (as in a real table).
        let counts = pair_counts_of(&dense, rows, cols);
        if counts
            .class_sizes
            .iter()
            .chain(&counts.cluster_sizes)
            .all(|&s| s > 0)
        {
            assert_eq!(max_matching(&counts).unwrap(), want, "case {case}");
        }
    }
}

#[test]
fn larger_random_tables_match_kuhn_munkres() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for case in 0..40 {
        let rows = 1 + rng.below(60);
        let cols = rows + rng.below(40);
        let max = [1, 3, 50][rng.below(3)];
        let zeros = [0, 50, 90, 97][rng.below(4)];
        let dense = random_dense(&mut rng, rows, cols, max, zeros);
        let weights: Vec<i64> = dense.iter().map(|&w| w as i64).collect();
        let reference = Matrix::from_vec(rows, cols, weights).unwrap();
        let (want, _) = kuhn_munkres(&reference);
        // Both orientations: `kuhn_munkres` needs rows <= cols, ours not.
        let matching = max_weight_matching(&cells_of(&dense, cols)).unwrap();
        assert_eq!(matching.total as i64, want, "case {case}: {rows}x{cols}");
        check_matching(&matching, &dense, rows, cols);
        let transposed: Vec<(usize, usize, usize)> = cells_of(&dense, cols)
            .into_iter()
            .map(|(r, c, w)| (c, r, w))
            .collect();
        let matching = max_weight_matching(&transposed).unwrap();
        assert_eq!(matching.total as i64, want, "case {case} transposed");
        let (sparse, dense) = both_solvers(&dense, rows, cols);
        assert_eq!((sparse as i64, dense as i64), (want, want), "case {case}");
    }
}

#[test]
fn ties_everywhere() {
    // 5 x 7, all weights equal: any 5 distinct pairs.
    let dense = vec![3; 35];
    let matching = max_weight_matching(&cells_of(&dense, 7)).unwrap();
    assert_eq!(matching.total, 15);
    check_matching(&matching, &dense, 5, 7);
    // Two identical rows competing for one good column.
    let dense = [4, 1, 1, 4, 1, 1];
    assert_eq!(max_weight_matching(&cells_of(&dense, 3)).unwrap().total, 5);
}

#[test]
fn zeros_and_empty_inputs() {
    assert_eq!(max_weight_matching(&[]).unwrap(), Matching::default());
    let zeros = max_weight_matching(&cells_of(&[0; 12], 4)).unwrap();
    assert_eq!(zeros, Matching::default());
    // Explicit zero cells next to a positive one.
    let matching = max_weight_matching(&[(0, 0, 0), (1, 1, 0), (1, 0, 2)]).unwrap();
    assert_eq!(matching.total, 2);
    assert_eq!(matching.pairs, vec![(1, 0)]);
}

#[test]
fn single_row_and_single_column() {
    let row = [3, 9, 0, 9, 1];
    let matching = max_weight_matching(&cells_of(&row, 5)).unwrap();
    assert_eq!(matching.total, 9);
    assert_eq!(matching.pairs.len(), 1);
    let column = max_weight_matching(&cells_of(&row, 1)).unwrap();
    assert_eq!(column.total, 9);
    assert_eq!(column.pairs.len(), 1);
    let t = [0, 0, 0, 0];
    let p = [1, 1, 2, 3];
    assert_eq!(max_matching(&counts_of(&t, &p)).unwrap(), 2);
    assert_eq!(max_matching(&counts_of(&p, &t)).unwrap(), 2);
}

#[test]
fn sparse_ids_and_repeated_cells() {
    // Ids far apart (the sorting path of `compact`) and a repeated pair.
    let far = usize::MAX - 1;
    let cells = [(far, 7, 2), (far, 7, 3), (far, 1 << 40, 4), (3, 1 << 40, 4)];
    let matching = max_weight_matching(&cells).unwrap();
    assert_eq!(matching.total, 9);
    assert_eq!(matching.pairs, vec![(3, 1 << 40), (far, 7)]);
}

#[test]
fn oversized_weights_are_an_error() {
    let too_large = Err(MetricsError::WeightsTooLarge {
        limit: MAX_TOTAL_WEIGHT,
    });
    assert_eq!(max_weight_matching(&[(0, 0, usize::MAX)]), too_large);
    assert_eq!(
        too_large.clone().unwrap_err().to_string(),
        format!("matching weights sum to more than {MAX_TOTAL_WEIGHT}")
    );
    let half = MAX_TOTAL_WEIGHT / 2 + 1;
    assert_eq!(
        max_weight_matching(&[(0, 0, half), (1, 1, half)]),
        too_large
    );
    let at_limit = max_weight_matching(&[(0, 0, MAX_TOTAL_WEIGHT), (0, 1, 0)]).unwrap();
    assert_eq!(at_limit.total, MAX_TOTAL_WEIGHT);
}

#[test]
fn permuted_diagonal_with_noise() {
    // A contingency table like the benchmark's: a strong permuted diagonal
    // plus scattered noise; the diagonal is the optimum.
    let k = 300;
    let mut rng = Rng(7);
    let mut dense = vec![0; k * k];
    for r in 0..k {
        dense[r * k + (r * 7 + 3) % k] = 20;
        for _ in 0..5 {
            dense[r * k + rng.below(k)] += 1;
        }
    }
    let weights: Vec<i64> = dense.iter().map(|&w| w as i64).collect();
    let (want, _) = kuhn_munkres(&Matrix::from_vec(k, k, weights).unwrap());
    let counts = pair_counts_of(&dense, k, k);
    assert_eq!(max_matching(&counts).unwrap() as i64, want);
}

#[test]
fn thousands_of_random_clusters() {
    // Labels with no relation to the classes (k = 3000, 20 samples per
    // class): the hard case that took the Hungarian solver minutes at this
    // size. The optimum beats the identity matching and stays below the
    // number of samples and the summed row maxima.
    let (k, n) = (3_000u32, 60_000);
    let mut rng = Rng(11);
    let t: Vec<u32> = (0..n).map(|_| rng.below(k as usize) as u32).collect();
    let p: Vec<u32> = (0..n).map(|_| rng.below(k as usize) as u32).collect();
    let counts = counts_of(&t, &p);
    let identity: usize = counts
        .cells
        .iter()
        .filter(|c| c.row == c.col)
        .map(|c| c.count)
        .sum();
    let mut row_max = vec![0; counts.class_sizes.len()];
    for cell in &counts.cells {
        row_max[cell.row] = row_max[cell.row].max(cell.count);
    }
    let best = max_matching(&counts).unwrap();
    assert!(best > identity && best <= row_max.iter().sum::<usize>());
    let cells: Vec<(usize, usize, usize)> = counts
        .cells
        .iter()
        .map(|c| (c.row, c.col, c.count))
        .collect();
    assert_eq!(max_weight_matching(&cells).unwrap().total, best);
}

#[test]
fn rectangular_both_ways() {
    // 2 classes, 3 clusters and the transpose.
    let t = [0, 0, 0, 1, 1, 1, 1];
    let p = [0, 0, 1, 1, 2, 2, 2];
    assert_eq!(max_matching(&counts_of(&t, &p)).unwrap(), 5);
    assert_eq!(max_matching(&counts_of(&p, &t)).unwrap(), 5);
}

#[test]
fn disconnected_blocks_add_up() {
    // Block {0,1}x{0,1} and singleton block {2}x{2}.
    let t = [0, 0, 1, 1, 1, 2, 2];
    let p = [0, 1, 1, 1, 0, 2, 2];
    assert_eq!(max_matching(&counts_of(&t, &p)).unwrap(), 5);
}

#[test]
fn greedy_is_not_optimal_here() {
    // Table [[5, 4], [4, 0]]: greedy takes (0,0)=5 then (1,1)=0, total 5;
    // the optimum is (0,1) + (1,0) = 8.
    let t: Vec<u32> = [[0; 9].as_slice(), &[1; 4]].concat();
    let p: Vec<u32> = [[0; 5].as_slice(), &[1; 4], &[0; 4]].concat();
    assert_eq!(max_matching(&counts_of(&t, &p)).unwrap(), 8);
}
