//! Best one-to-one matching of clusters to classes: a rectangular
//! shortest-augmenting-path assignment solver (Jonker-Volgenant style, the
//! algorithm of `scipy.optimize.linear_sum_assignment`, Crouse 2016).
//!
//! The contingency table is the dense cost matrix `-count` of that problem,
//! but most of its cells are zero once there are many clusters, so the main
//! solver ([`sparse`]) keeps only the non-zero cells and handles the zero
//! cells implicitly. Small tables, and tables with at least half their cells
//! non-zero, go to a dense solver ([`dense`]) instead. Both orient the table
//! so that it has no more rows than columns and add the rows one by one,
//! each along a shortest augmenting path, so they find the same optimum as
//! scipy for any shape.
//!
//! Costs are exact `i64`; every dual variable stays within a few times the
//! largest weight, which [`MAX_TOTAL_WEIGHT`] bounds far from overflow.

use crate::contingency::PairCounts;
use crate::error::MetricsError;

mod dense;
mod sparse;

/// Largest sum of cell weights accepted by [`max_weight_matching`] and by
/// the accuracy (`2^60`; for the accuracy, the sum is the number of samples).
pub const MAX_TOTAL_WEIGHT: usize = 1 << 60;

/// Marks an unmatched row or column, or an unset distance.
const NONE: usize = usize::MAX;
const UNSET: i64 = i64::MAX;

/// A maximum-weight one-to-one matching of rows to columns, as returned by
/// [`max_weight_matching`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matching {
    /// Sum of the weights of the matched pairs.
    pub total: usize,
    /// The matched `(row, col)` pairs of positive weight, sorted by row.
    pub pairs: Vec<(usize, usize)>,
}

/// Maximum-weight one-to-one matching between rows and columns.
///
/// `cells` lists `(row, col, weight)` triples; any pair not listed weighs
/// zero, duplicated pairs add up and rows and columns are arbitrary ids (they
/// need not be contiguous). The total equals the optimum of
/// `scipy.optimize.linear_sum_assignment(dense, maximize=True)` on the dense
/// matrix of these weights, whatever its shape; pairs of weight zero are left
/// out of [`Matching::pairs`]. This is the solver behind [`acc`](crate::acc),
/// where the cells are the non-zero counts of the contingency table.
///
/// ```
/// use advclust_metrics::max_weight_matching;
///
/// // [[5, 4], [4, 0]]: the greedy choice (5) is beaten by 4 + 4.
/// let matching = max_weight_matching(&[(0, 0, 5), (0, 1, 4), (1, 0, 4)])?;
/// assert_eq!(matching.total, 8);
/// assert_eq!(matching.pairs, vec![(0, 1), (1, 0)]);
/// # Ok::<(), advclust_metrics::MetricsError>(())
/// ```
///
/// # Errors
///
/// [`MetricsError::WeightsTooLarge`] when the weights sum to more than
/// [`MAX_TOTAL_WEIGHT`].
pub fn max_weight_matching(cells: &[(usize, usize, usize)]) -> Result<Matching, MetricsError> {
    check_total(cells.iter().map(|&(_, _, w)| w))?;
    let rows = Renumbered::new(cells.iter().map(|&(r, _, _)| r), cells.len());
    let cols = Renumbered::new(cells.iter().map(|&(_, c, _)| c), cells.len());
    let edges = cells
        .iter()
        .enumerate()
        .map(|(i, &(r, c, w))| (rows.index(i, r), cols.index(i, c), w));
    let transpose = rows.len > cols.len;
    let graph = if transpose {
        Graph::new(cols.len, rows.len, edges.map(|(r, c, w)| (c, r, w)))
    } else {
        Graph::new(rows.len, cols.len, edges)
    };
    let col4row = graph.solve();
    let mut total = 0;
    let mut pairs = Vec::new();
    for (r, &c) in col4row.iter().enumerate() {
        let weight = graph.weight(r, c);
        if weight > 0 {
            // At most MAX_TOTAL_WEIGHT in all.
            total += weight;
            let (r, c) = if transpose { (c, r) } else { (r, c) };
            pairs.push((rows.id(r), cols.id(c)));
        }
    }
    if transpose {
        pairs.sort_unstable();
    }
    Ok(Matching { total, pairs })
}

/// Largest total count of a one-to-one matching between the rows and the
/// columns of a contingency table.
pub(crate) fn max_matching(counts: &PairCounts) -> Result<usize, MetricsError> {
    check_total(counts.cells.iter().map(|cell| cell.count))?;
    let (n_rows, n_cols) = (counts.class_sizes.len(), counts.cluster_sizes.len());
    let cells = counts.cells.iter();
    let graph = if n_rows > n_cols {
        Graph::new(n_cols, n_rows, cells.map(|c| (c.col, c.row, c.count)))
    } else {
        Graph::new(n_rows, n_cols, cells.map(|c| (c.row, c.col, c.count)))
    };
    let col4row = graph.solve();
    // At most MAX_TOTAL_WEIGHT in all.
    Ok(col4row
        .iter()
        .enumerate()
        .map(|(r, &c)| graph.weight(r, c))
        .sum())
}

/// Checks that the weights sum to at most [`MAX_TOTAL_WEIGHT`].
fn check_total(weights: impl Iterator<Item = usize>) -> Result<(), MetricsError> {
    let mut total: usize = 0;
    for weight in weights {
        total = total
            .checked_add(weight)
            .filter(|&t| t <= MAX_TOTAL_WEIGHT)
            .ok_or(MetricsError::WeightsTooLarge {
                limit: MAX_TOTAL_WEIGHT,
            })?;
    }
    Ok(())
}

/// The ids of one side (rows or columns) as indices `0..len` of the solver.
///
/// Ids within a small range are used as they are: ids that do not occur
/// are just empty rows or unused columns, which change nothing. Ids spread
/// over a wide range are renumbered in ascending order.
struct Renumbered {
    /// Number of indices.
    len: usize,
    /// The index of each cell's id, and the id of each index; `None` when
    /// indices are the ids.
    map: Option<(Vec<usize>, Vec<usize>)>,
}

impl Renumbered {
    /// Indices for the ids of `n` cells.
    fn new(ids: impl Iterator<Item = usize> + Clone, n: usize) -> Self {
        let Some(max) = ids.clone().max() else {
            return Self { len: 0, map: None };
        };
        if max <= n.saturating_mul(2).saturating_add(16) {
            return Self {
                len: max + 1,
                map: None,
            };
        }
        let mut distinct: Vec<usize> = ids.clone().collect();
        distinct.sort_unstable();
        distinct.dedup();
        // Every id is in `distinct`, so the search always succeeds.
        let index = ids
            .map(|id| distinct.binary_search(&id).unwrap_or_default())
            .collect();
        Self {
            len: distinct.len(),
            map: Some((index, distinct)),
        }
    }

    /// Index of cell `cell`, whose id is `id`.
    fn index(&self, cell: usize, id: usize) -> usize {
        self.map.as_ref().map_or(id, |(index, _)| index[cell])
    }

    /// Id of index `index`.
    fn id(&self, index: usize) -> usize {
        self.map.as_ref().map_or(index, |(_, ids)| ids[index])
    }
}

/// Non-zero weights in compressed sparse rows, negated into costs, with no
/// more rows than columns.
struct Graph {
    n_cols: usize,
    /// Edges of row `r` are `start[r]..start[r + 1]`, sorted by column.
    start: Vec<usize>,
    col: Vec<usize>,
    cost: Vec<i64>,
}

impl Graph {
    /// Builds the graph from `(row, col, weight)` edges with `row < n_rows`,
    /// `col < n_cols`, `n_rows <= n_cols` and weights summing to at most
    /// [`MAX_TOTAL_WEIGHT`] (so that they fit `i64`). Zero weights are
    /// dropped and repeated pairs merged.
    fn new(
        n_rows: usize,
        n_cols: usize,
        edges: impl Iterator<Item = (usize, usize, usize)> + Clone,
    ) -> Self {
        debug_assert!(n_rows <= n_cols);
        let (low, _) = edges.size_hint();
        let mut graph = Self {
            n_cols,
            start: Vec::with_capacity(n_rows + 1),
            col: Vec::with_capacity(low),
            cost: Vec::with_capacity(low),
        };
        // Fast path: edges already in row-major order without repeats, as
        // the cells of a contingency table are.
        graph.start.push(0);
        for (r, c, w) in edges.clone().filter(|&(_, _, w)| w > 0) {
            let row = graph.start.len() - 1;
            if r < row
                || (r == row && graph.col.len() > graph.start[row] && graph.col.last() >= Some(&c))
            {
                return Self::from_unsorted(n_rows, n_cols, edges);
            }
            while graph.start.len() <= r {
                graph.start.push(graph.col.len());
            }
            graph.col.push(c);
            graph.cost.push(-(w as i64));
        }
        graph.start.resize(n_rows + 1, graph.col.len());
        graph
    }

    /// [`Graph::new`] for edges in any order: a counting sort by row, then
    /// a sort of each row by column that merges repeated pairs.
    fn from_unsorted(
        n_rows: usize,
        n_cols: usize,
        edges: impl Iterator<Item = (usize, usize, usize)> + Clone,
    ) -> Self {
        let edges = edges.filter(|&(_, _, w)| w > 0);
        let mut start = vec![0usize; n_rows + 1];
        for (r, _, _) in edges.clone() {
            start[r + 1] += 1;
        }
        for r in 0..n_rows {
            start[r + 1] += start[r];
        }
        let mut next = start.clone();
        let mut slots = vec![(0usize, 0i64); start[n_rows]];
        for (r, c, w) in edges {
            slots[next[r]] = (c, -(w as i64));
            next[r] += 1;
        }
        let (mut col, mut cost) = (
            Vec::with_capacity(slots.len()),
            Vec::with_capacity(slots.len()),
        );
        let mut begin = 0;
        for r in 0..n_rows {
            let row = &mut slots[begin..start[r + 1]];
            begin = start[r + 1];
            row.sort_unstable_by_key(|&(c, _)| c);
            start[r] = col.len();
            for &(c, w) in row.iter() {
                if col.len() > start[r] && col.last() == Some(&c) {
                    // Repeated pair: the sum stays within MAX_TOTAL_WEIGHT.
                    if let Some(last) = cost.last_mut() {
                        *last += w;
                    }
                } else {
                    col.push(c);
                    cost.push(w);
                }
            }
        }
        start[n_rows] = col.len();
        Self {
            n_cols,
            start,
            col,
            cost,
        }
    }

    fn n_rows(&self) -> usize {
        self.start.len() - 1
    }

    /// Weight of the edge `(row, col)`, zero when there is none.
    fn weight(&self, row: usize, col: usize) -> usize {
        let range = self.start[row]..self.start[row + 1];
        match self.col[range.clone()].binary_search(&col) {
            Ok(at) => self.cost[range.start + at].unsigned_abs() as usize,
            Err(_) => 0,
        }
    }

    /// Solves the assignment: the column of every row. Small problems, and
    /// tables with at least half their cells non-zero, go to the dense
    /// solver (whose matrix is then at most twice the size of the edges).
    fn solve(&self) -> Vec<usize> {
        let cells = self.n_rows().checked_mul(self.n_cols);
        let dense =
            cells.is_some_and(|cells| cells <= dense::DENSE_LIMIT || cells / 2 <= self.col.len());
        if dense {
            dense::solve(self)
        } else {
            self.solve_sparse()
        }
    }

    /// [`Graph::solve`] by the sparse solver.
    fn solve_sparse(&self) -> Vec<usize> {
        sparse::solve(self)
    }
}

#[cfg(test)]
mod tests;
