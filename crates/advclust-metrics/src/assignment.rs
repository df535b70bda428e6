//! Best one-to-one matching of clusters to classes (Hungarian algorithm).

use pathfinding::kuhn_munkres::{Weights, kuhn_munkres};

use crate::contingency::{Cell, MAX_DENSE_CELLS, PairCounts};
use crate::error::MetricsError;

/// Largest total count of a one-to-one matching between rows and columns of
/// the contingency table.
///
/// Matched pairs outside the non-zero cells contribute nothing, so the optimum
/// is the sum of the optima of the connected blocks of the bipartite graph
/// whose edges are the non-zero cells. Each block is solved with
/// `pathfinding::kuhn_munkres` on a dense matrix oriented so that it never has
/// more rows than columns (which `kuhn_munkres` requires).
pub(crate) fn max_matching(counts: &PairCounts) -> Result<usize, MetricsError> {
    let n_rows = counts.class_sizes.len();
    let mut sets = DisjointSets::new(n_rows + counts.cluster_sizes.len());
    for cell in &counts.cells {
        sets.union(cell.row, n_rows + cell.col);
    }
    let mut block_of_root = vec![usize::MAX; sets.len()];
    let mut blocks: Vec<Vec<Cell>> = Vec::new();
    for &cell in &counts.cells {
        let root = sets.find(cell.row);
        if block_of_root[root] == usize::MAX {
            block_of_root[root] = blocks.len();
            blocks.push(Vec::new());
        }
        blocks[block_of_root[root]].push(cell);
    }
    blocks.iter().map(|block| block_matching(block)).sum()
}

/// Best matching inside one connected block of non-zero cells.
fn block_matching(cells: &[Cell]) -> Result<usize, MetricsError> {
    let mut rows: Vec<usize> = cells.iter().map(|c| c.row).collect();
    let mut cols: Vec<usize> = cells.iter().map(|c| c.col).collect();
    for ids in [&mut rows, &mut cols] {
        ids.sort_unstable();
        ids.dedup();
    }
    if rows.len() == 1 || cols.len() == 1 {
        return Ok(cells.iter().map(|c| c.count).max().unwrap_or(0));
    }
    let transpose = rows.len() > cols.len();
    let (n_rows, n_cols) = if transpose {
        (cols.len(), rows.len())
    } else {
        (rows.len(), cols.len())
    };
    if n_rows.saturating_mul(n_cols) > MAX_DENSE_CELLS {
        return Err(MetricsError::TableTooLarge {
            rows: n_rows,
            cols: n_cols,
            limit: MAX_DENSE_CELLS,
        });
    }
    let mut weights = DenseWeights {
        n_rows,
        n_cols,
        values: vec![0; n_rows * n_cols],
    };
    for cell in cells {
        // Both searches succeed: `rows` and `cols` come from these cells.
        let r = rows.binary_search(&cell.row).unwrap_or_default();
        let c = cols.binary_search(&cell.col).unwrap_or_default();
        let (r, c) = if transpose { (c, r) } else { (r, c) };
        weights.values[r * n_cols + c] = cell.count as i64;
    }
    let (_, assignment) = kuhn_munkres(&weights);
    Ok(assignment
        .iter()
        .enumerate()
        .map(|(r, &c)| weights.at(r, c) as usize)
        .sum())
}

/// Row-major integer weights for `kuhn_munkres`.
#[derive(Clone)]
struct DenseWeights {
    n_rows: usize,
    n_cols: usize,
    values: Vec<i64>,
}

impl Weights<i64> for DenseWeights {
    fn rows(&self) -> usize {
        self.n_rows
    }

    fn columns(&self) -> usize {
        self.n_cols
    }

    fn at(&self, row: usize, col: usize) -> i64 {
        self.values[row * self.n_cols + col]
    }

    fn neg(&self) -> Self {
        Self {
            values: self.values.iter().map(|v| -v).collect(),
            ..*self
        }
    }
}

/// Union-find with path halving and union by size.
struct DisjointSets {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn len(&self) -> usize {
        self.parent.len()
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(t: &[u32], p: &[u32]) -> PairCounts {
        crate::contingency::count(t, p).unwrap().counts
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
}
