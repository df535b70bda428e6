//! The sparse shortest-augmenting-path solver.
//!
//! * Rows are added one by one. Each row starts a Dijkstra search, in reduced
//!   costs `cost - u[row] - v[col]`, for the shortest augmenting path to a
//!   free column (scipy's `augmenting_path`).
//! * Column potentials start at zero and only ever decrease, and only on
//!   columns that are already matched, so every free column has the largest
//!   potential, zero. Through a zero cell, a scanned row therefore reaches
//!   every column at a distance at least `min(dist(row) - u[row])` over the
//!   scanned rows, and a free column at exactly that distance. The search
//!   thus keeps that one number instead of relaxing all zero cells, and
//!   stops at an arbitrary free column once nothing explicit is closer.
//! * A row whose nearest column is free is matched at once, without a
//!   search (most rows, when clusters resemble classes).
//! * Columns reached through non-zero cells wait in a short list scanned
//!   linearly, or in a binary heap once the list grows past
//!   [`OPEN_LIST_LIMIT`]; ties go to free columns, as in scipy. A search
//!   thus costs `O(E log E)` in the edges of the rows it reaches, not
//!   `O(k)` per step as on a dense matrix.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Graph, NONE, UNSET};

/// The column of every row in an optimal assignment of `graph` (no more
/// rows than columns).
pub(super) fn solve(graph: &Graph) -> Vec<usize> {
    let mut solver = Solver::new(graph);
    for row in 0..graph.n_rows() {
        solver.augment(graph, row);
    }
    solver.rows.iter().map(|row| row.col).collect()
}

/// Solver state of one row.
#[derive(Clone, Copy)]
struct Row {
    /// Dual variable.
    u: i64,
    /// Matched column, [`NONE`] before the row is added.
    col: usize,
}

/// Solver state of one column.
#[derive(Clone, Copy)]
struct Column {
    /// Dual variable.
    v: i64,
    /// Matched row, or [`NONE`].
    row: usize,
    /// Position in the list of free columns while unmatched.
    free_at: usize,
    /// Per search: tentative distance ([`UNSET`] if none), predecessor row,
    /// and whether the distance is final.
    dist: i64,
    path: usize,
    done: bool,
}

/// State of the shortest-augmenting-path solver.
struct Solver {
    rows: Vec<Row>,
    cols: Vec<Column>,
    /// Unmatched columns.
    free: Vec<usize>,
    /// Per search: columns with a distance, scanned rows and columns.
    touched: Vec<usize>,
    rows_seen: Vec<usize>,
    cols_seen: Vec<usize>,
    /// Per search: the columns with a tentative distance that is not final
    /// yet, in a list while it is short (found by a linear scan)...
    open: Vec<usize>,
    /// ... else in a heap of `(distance, column is matched, column)`,
    /// smallest first, with outdated entries skipped.
    heap: BinaryHeap<Reverse<(i64, bool, usize)>>,
    use_heap: bool,
}

/// Longest list of open columns before a search moves them to a heap.
const OPEN_LIST_LIMIT: usize = 64;

impl Solver {
    fn new(graph: &Graph) -> Self {
        let (n_rows, n_cols) = (graph.n_rows(), graph.n_cols);
        let column = Column {
            v: 0,
            row: NONE,
            free_at: 0,
            dist: UNSET,
            path: NONE,
            done: false,
        };
        let mut cols = vec![column; n_cols];
        for (at, col) in cols.iter_mut().rev().enumerate() {
            col.free_at = at;
        }
        Self {
            rows: vec![Row { u: 0, col: NONE }; n_rows],
            cols,
            free: (0..n_cols).rev().collect(),
            touched: Vec::new(),
            rows_seen: Vec::new(),
            cols_seen: Vec::new(),
            open: Vec::new(),
            heap: BinaryHeap::new(),
            use_heap: false,
        }
    }

    /// Adds row `start` to the matching along a shortest augmenting path and
    /// updates the dual variables (scipy's `augmenting_path` and the update
    /// that follows it).
    fn augment(&mut self, graph: &Graph, start: usize) {
        if self.direct(graph, start) {
            return;
        }
        let (sink, min_val) = self.shortest_path(graph, start);
        // Dual update: scanned rows and columns, in reduced-cost distances.
        self.rows[start].u += min_val;
        for &row in &self.rows_seen[1..] {
            let col = self.rows[row].col;
            self.rows[row].u += min_val - self.cols[col].dist;
        }
        for &col in &self.cols_seen {
            let col = &mut self.cols[col];
            col.v -= min_val - col.dist;
        }
        self.take_free(sink);
        // Flip the path from `sink` back to `start`.
        let mut col = sink;
        loop {
            let row = self.cols[col].path;
            self.cols[col].row = row;
            let previous = std::mem::replace(&mut self.rows[row].col, col);
            if row == start {
                break;
            }
            col = previous;
        }
        for &col in &self.touched {
            self.cols[col].dist = UNSET;
            self.cols[col].done = false;
        }
        self.touched.clear();
        self.rows_seen.clear();
        self.cols_seen.clear();
        self.open.clear();
        self.heap.clear();
        self.use_heap = false;
    }

    /// The first step of [`Solver::shortest_path`] without the heap: when
    /// the nearest column of row `start` is free (ties going to free columns)
    /// it is the sink, reached in one step, and only `u[start]` changes.
    /// Returns whether that was the case and the row was matched.
    fn direct(&mut self, graph: &Graph, start: usize) -> bool {
        // The start row has `u = 0`, and every free column `v = 0`.
        let (mut best, mut best_col, mut best_free) = (0, NONE, true);
        let edges = graph.start[start]..graph.start[start + 1];
        for (&c, &cost) in graph.col[edges.clone()].iter().zip(&graph.cost[edges]) {
            let col = &self.cols[c];
            let d = cost - col.v;
            let free = col.row == NONE;
            if d < best || (d == best && free && !best_free) {
                (best, best_col, best_free) = (d, c, free);
            }
        }
        if !best_free {
            return false;
        }
        // No edge at all beats a zero cell to a free column.
        let sink = if best_col == NONE {
            self.free[self.free.len() - 1]
        } else {
            best_col
        };
        self.rows[start] = Row { u: best, col: sink };
        self.cols[sink].row = start;
        self.take_free(sink);
        true
    }

    /// Removes `col` from the free columns.
    fn take_free(&mut self, col: usize) {
        let at = self.cols[col].free_at;
        self.free.swap_remove(at);
        if let Some(&moved) = self.free.get(at) {
            self.cols[moved].free_at = at;
        }
    }

    /// Dijkstra from row `start` to the nearest free column: the column and
    /// its distance. Every scanned column is left with its final distance.
    fn shortest_path(&mut self, graph: &Graph, start: usize) -> (usize, i64) {
        let mut row = start;
        let mut min_val = 0;
        // Smallest `dist(row) - u[row]` over scanned rows: the distance of
        // every free column through a zero cell.
        let (mut zero_dist, mut zero_row) = (UNSET, NONE);
        loop {
            self.rows_seen.push(row);
            let base = min_val - self.rows[row].u;
            if base < zero_dist {
                (zero_dist, zero_row) = (base, row);
            }
            let edges = graph.start[row]..graph.start[row + 1];
            for (&c, &cost) in graph.col[edges.clone()].iter().zip(&graph.cost[edges]) {
                let col = &mut self.cols[c];
                if col.done {
                    continue;
                }
                let d = base + cost - col.v;
                if d < col.dist {
                    let new = col.dist == UNSET;
                    col.dist = d;
                    col.path = row;
                    if self.use_heap {
                        self.heap.push(Reverse((d, col.row != NONE, c)));
                    } else if new {
                        self.open.push(c);
                    }
                    if new {
                        self.touched.push(c);
                    }
                }
            }
            if !self.use_heap && self.open.len() > OPEN_LIST_LIMIT {
                for &c in &self.open {
                    let col = &self.cols[c];
                    self.heap.push(Reverse((col.dist, col.row != NONE, c)));
                }
                self.open.clear();
                self.use_heap = true;
            }
            match self.take_nearest(zero_dist) {
                Some((d, matched, c)) => {
                    self.cols[c].done = true;
                    self.cols_seen.push(c);
                    min_val = d;
                    if !matched {
                        return (c, d);
                    }
                    row = self.cols[c].row;
                }
                None => {
                    // A free column through a zero cell. There is one, as
                    // there are no more rows than columns; `zero_row` has no
                    // edge to any free column (that edge would be closer).
                    let c = self.free[self.free.len() - 1];
                    let col = &mut self.cols[c];
                    if col.dist == UNSET {
                        self.touched.push(c);
                    }
                    col.dist = zero_dist;
                    col.path = zero_row;
                    col.done = true;
                    self.cols_seen.push(c);
                    return (c, zero_dist);
                }
            }
        }
    }

    /// Removes and returns the open column nearest the start, as
    /// `(distance, is matched, column)` with ties going to free columns, when
    /// it beats a free column reached through a zero cell at `zero_dist`.
    fn take_nearest(&mut self, zero_dist: i64) -> Option<(i64, bool, usize)> {
        let beats =
            |(d, matched, _): (i64, bool, usize)| d < zero_dist || (d == zero_dist && !matched);
        if self.use_heap {
            while let Some(&Reverse((d, _, c))) = self.heap.peek() {
                if self.cols[c].done || d != self.cols[c].dist {
                    self.heap.pop();
                } else {
                    break;
                }
            }
            let &Reverse(nearest) = self.heap.peek()?;
            if !beats(nearest) {
                return None;
            }
            self.heap.pop();
            Some(nearest)
        } else {
            let mut best: Option<(usize, (i64, bool, usize))> = None;
            for (at, &c) in self.open.iter().enumerate() {
                let key = (self.cols[c].dist, self.cols[c].row != NONE, c);
                if best.is_none_or(|(_, b)| key < b) {
                    best = Some((at, key));
                }
            }
            let (at, nearest) = best?;
            if !beats(nearest) {
                return None;
            }
            self.open.swap_remove(at);
            Some(nearest)
        }
    }
}
