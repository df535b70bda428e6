//! The dense shortest-augmenting-path solver for small or dense problems:
//! scipy's `linear_sum_assignment` (Crouse 2016) on the full cost matrix, in
//! exact integers, plus the sparse solver's one-step shortcut. On a few
//! dozen rows and columns, or when most cells are non-zero, its plain array
//! scans beat the bookkeeping of the sparse solver.

use super::{Graph, NONE, UNSET};

/// Largest `rows x cols` problem always solved densely.
pub(super) const DENSE_LIMIT: usize = 1024;

/// The column of every row in an optimal assignment of `graph` (no more
/// rows than columns).
pub(super) fn solve(graph: &Graph) -> Vec<usize> {
    let (n_rows, n_cols) = (graph.n_rows(), graph.n_cols);
    let mut cost = vec![0i64; n_rows * n_cols];
    for row in 0..n_rows {
        let edges = graph.start[row]..graph.start[row + 1];
        for (&col, &c) in graph.col[edges.clone()].iter().zip(&graph.cost[edges]) {
            cost[row * n_cols + col] = c;
        }
    }
    // One array per variable, as in scipy: the inner loop reads only what
    // it needs.
    let mut u = vec![0i64; n_rows];
    let mut col4row = vec![NONE; n_rows];
    let mut row_seen = vec![false; n_rows];
    let mut v = vec![0i64; n_cols];
    let mut row4col = vec![NONE; n_cols];
    let mut dist = vec![UNSET; n_cols];
    let mut path = vec![NONE; n_cols];
    let mut col_seen = vec![false; n_cols];
    let mut remaining = Vec::with_capacity(n_cols);
    for start in 0..n_rows {
        let costs = &cost[start * n_cols..(start + 1) * n_cols];
        // First step without the bookkeeping (`u[start] = 0`): done when the
        // nearest column is free, ties going to free columns.
        let (mut lowest, mut nearest) = (UNSET, 0);
        for (c, ((&cost, &v), &row)) in costs.iter().zip(&v).zip(&row4col).enumerate() {
            let d = cost - v;
            if d < lowest || (d == lowest && row == NONE) {
                (lowest, nearest) = (d, c);
            }
        }
        if row4col[nearest] == NONE {
            u[start] = lowest;
            col4row[start] = nearest;
            row4col[nearest] = start;
            continue;
        }
        dist.fill(UNSET);
        col_seen.fill(false);
        row_seen.fill(false);
        remaining.clear();
        remaining.extend((0..n_cols).rev());
        let (mut row, mut min_val) = (start, 0);
        let sink = loop {
            row_seen[row] = true;
            let base = min_val - u[row];
            let costs = &cost[row * n_cols..(row + 1) * n_cols];
            let (mut lowest, mut index) = (UNSET, 0);
            for (at, &c) in remaining.iter().enumerate() {
                let d = base + costs[c] - v[c];
                if d < dist[c] {
                    (dist[c], path[c]) = (d, row);
                }
                if dist[c] < lowest || (dist[c] == lowest && row4col[c] == NONE) {
                    (lowest, index) = (dist[c], at);
                }
            }
            // `remaining` is never empty: a free column is left.
            let c = remaining.swap_remove(index);
            min_val = lowest;
            col_seen[c] = true;
            if row4col[c] == NONE {
                break c;
            }
            row = row4col[c];
        };
        u[start] += min_val;
        for r in (0..n_rows).filter(|&r| row_seen[r] && r != start) {
            u[r] += min_val - dist[col4row[r]];
        }
        for c in (0..n_cols).filter(|&c| col_seen[c]) {
            v[c] -= min_val - dist[c];
        }
        let mut c = sink;
        loop {
            let r = path[c];
            row4col[c] = r;
            let previous = std::mem::replace(&mut col4row[r], c);
            if r == start {
                break;
            }
            c = previous;
        }
    }
    col4row
}
