//! Contingency tables: how many samples fall in each (class, cluster) pair.

use crate::error::{MetricsError, check_lengths};
use crate::label::{Encoded, KeyWindow, Label, encode, sort_distinct};

/// Largest number of cells of a dense table (`2^26`, 512 MiB of counts).
pub const MAX_DENSE_CELLS: usize = 1 << 26;

/// Dense contingency table of ground-truth classes (rows) against predicted
/// clusters (columns).
///
/// Labels are relabelled to contiguous indices in O(n): `classes()[i]` is the
/// label of row `i` and `clusters()[j]` the label of column `j`, both sorted
/// ascending like `numpy.unique`. This is the dense equivalent of
/// `sklearn.metrics.cluster.contingency_matrix`.
///
/// ```
/// use advclust_metrics::ContingencyTable;
///
/// let table = ContingencyTable::new(&[0, 0, 1, 1, 2, 2], &[1, 0, 2, 1, 0, 2])?;
/// assert_eq!(table.counts(), &[1, 1, 0, 0, 1, 1, 1, 0, 1]);
/// assert_eq!(table.get(2, 0), Some(1));
/// # Ok::<(), advclust_metrics::MetricsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContingencyTable<T, P> {
    classes: Vec<T>,
    clusters: Vec<P>,
    counts: Vec<usize>,
    n_samples: usize,
}

impl<T: Label, P: Label> ContingencyTable<T, P> {
    /// Builds the table from ground-truth and predicted labels.
    ///
    /// # Errors
    ///
    /// [`MetricsError::LengthMismatch`] when the slices differ in length, and
    /// [`MetricsError::TableTooLarge`] when `classes x clusters` exceeds
    /// [`MAX_DENSE_CELLS`].
    pub fn new(labels_true: &[T], labels_pred: &[P]) -> Result<Self, MetricsError> {
        let Counted {
            classes,
            clusters,
            counts: pairs,
        } = count(labels_true, labels_pred)?;
        let (rows, cols) = (classes.len(), clusters.len());
        let cells = rows
            .checked_mul(cols)
            .filter(|&cells| cells <= MAX_DENSE_CELLS)
            .ok_or(MetricsError::TableTooLarge {
                rows,
                cols,
                limit: MAX_DENSE_CELLS,
            })?;
        let mut counts = vec![0; cells];
        for cell in &pairs.cells {
            counts[cell.row * cols + cell.col] = cell.count;
        }
        Ok(Self {
            classes,
            clusters,
            counts,
            n_samples: pairs.n_samples,
        })
    }
}

impl<T, P> ContingencyTable<T, P> {
    /// Distinct ground-truth labels, one per row, ascending.
    pub fn classes(&self) -> &[T] {
        &self.classes
    }

    /// Distinct predicted labels, one per column, ascending.
    pub fn clusters(&self) -> &[P] {
        &self.clusters
    }

    /// Row-major counts: `counts()[i * n_clusters() + j]` samples have class
    /// `classes()[i]` and cluster `clusters()[j]`.
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// Count of row `class` and column `cluster`, `None` when out of range.
    pub fn get(&self, class: usize, cluster: usize) -> Option<usize> {
        if class < self.n_classes() && cluster < self.n_clusters() {
            self.counts
                .get(class * self.n_clusters() + cluster)
                .copied()
        } else {
            None
        }
    }

    /// Number of distinct ground-truth labels (rows).
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Number of distinct predicted labels (columns).
    pub fn n_clusters(&self) -> usize {
        self.clusters.len()
    }

    /// Number of samples, the sum of all counts.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// Number of samples in each class (row sums).
    pub fn class_sizes(&self) -> Vec<usize> {
        self.rows().map(|row| row.iter().sum()).collect()
    }

    /// Number of samples in each cluster (column sums).
    pub fn cluster_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0; self.n_clusters()];
        for row in self.rows() {
            for (size, &count) in sizes.iter_mut().zip(row) {
                *size += count;
            }
        }
        sizes
    }

    /// Iterator over the rows of the table, one slice per class.
    pub fn rows(&self) -> impl Iterator<Item = &[usize]> {
        // `max(1)` keeps `chunks` valid for a table with no columns (and
        // therefore no counts).
        self.counts.chunks(self.n_clusters().max(1))
    }

    /// Normalised mutual information, see [`nmi_with`](crate::nmi_with).
    pub fn nmi(&self, normalization: crate::NmiNormalization) -> f64 {
        crate::scores::nmi_from(&self.pair_counts(), normalization)
    }

    /// Adjusted Rand index, see [`ari`](crate::ari).
    pub fn ari(&self) -> f64 {
        crate::scores::ari_from(&self.pair_counts())
    }

    /// Clustering accuracy, see [`acc`](crate::acc).
    ///
    /// # Errors
    ///
    /// [`MetricsError::EmptyInput`] for a table of zero samples, and
    /// [`MetricsError::WeightsTooLarge`] as for [`acc`](crate::acc).
    pub fn acc(&self) -> Result<f64, MetricsError> {
        crate::scores::acc_from(&self.pair_counts())
    }

    /// Sparse view of the table.
    pub(crate) fn pair_counts(&self) -> PairCounts {
        PairCounts::from_dense(&self.counts, self.n_classes(), self.n_clusters())
    }
}

/// One non-zero cell of a contingency table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    pub(crate) row: usize,
    pub(crate) col: usize,
    pub(crate) count: usize,
}

/// Sparse contingency table: marginals plus the non-zero cells in row-major
/// order (the order `scipy.sparse.find` gives sklearn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairCounts {
    pub(crate) n_samples: usize,
    pub(crate) class_sizes: Vec<usize>,
    pub(crate) cluster_sizes: Vec<usize>,
    pub(crate) cells: Vec<Cell>,
}

/// Distinct labels of both sides and their pair counts.
pub(crate) struct Counted<T, P> {
    pub(crate) classes: Vec<T>,
    pub(crate) clusters: Vec<P>,
    pub(crate) counts: PairCounts,
}

/// Largest dense table counted directly: linear in the number of samples.
fn dense_cell_limit(n: usize) -> usize {
    n.saturating_mul(2).max(1 << 16)
}

/// Counts the (class, cluster) pairs of two label slices of equal length.
pub(crate) fn count<T: Label, P: Label>(
    labels_true: &[T],
    labels_pred: &[P],
) -> Result<Counted<T, P>, MetricsError> {
    check_lengths(labels_true.len(), labels_pred.len())?;
    if let Some(counted) = count_int_labels(labels_true, labels_pred) {
        return Ok(counted);
    }
    let (t, p) = (encode(labels_true), encode(labels_pred));
    let counts = PairCounts::from_encoded(&t, &p);
    Ok(Counted {
        classes: t.distinct,
        clusters: p.distinct,
        counts,
    })
}

/// Samples used to guess the key windows of the fast path.
const WINDOW_SAMPLE: usize = 4096;

/// Fast path for integer-like labels with small key spans on both sides:
/// one pass counts straight into a table indexed by key offsets, with no
/// per-sample relabelling and no hashing. `None` when it does not apply.
///
/// The key windows are first guessed from a prefix of the samples (widened,
/// to save a full pass computing exact minima and maxima); when a key falls
/// outside the guess, the exact windows are computed and counting restarts.
fn count_int_labels<T: Label, P: Label>(
    labels_true: &[T],
    labels_pred: &[P],
) -> Option<Counted<T, P>> {
    let n = labels_true.len();
    let sample = n.min(WINDOW_SAMPLE);
    let seen_t = KeyWindow::of(&labels_true[..sample])?;
    let seen_p = KeyWindow::of(&labels_pred[..sample])?;
    if sample == n {
        return count_in_windows(labels_true, labels_pred, seen_t, seen_p);
    }
    // The exact windows contain the prefix windows: give up early when even
    // those make too large a table (e.g. ids spread over a wide range).
    if seen_t.span.checked_mul(seen_p.span)? > dense_cell_limit(n) {
        return None;
    }
    if let (Some(t), Some(p)) = (seen_t.widened(), seen_p.widened())
        && let Some(counted) = count_in_windows(labels_true, labels_pred, t, p)
    {
        return Some(counted);
    }
    let (t, p) = (KeyWindow::of(labels_true)?, KeyWindow::of(labels_pred)?);
    count_in_windows(labels_true, labels_pred, t, p)
}

/// Counts pairs in a `window_t.span x window_p.span` table; `None` when the
/// table would be too large or a key falls outside its window.
fn count_in_windows<T: Label, P: Label>(
    labels_true: &[T],
    labels_pred: &[P],
    window_t: KeyWindow,
    window_p: KeyWindow,
) -> Option<Counted<T, P>> {
    let (span_t, span_p) = (window_t.span, window_p.span);
    if span_t.checked_mul(span_p)? > dense_cell_limit(labels_true.len()) {
        return None;
    }
    let mut table = vec![0usize; span_t * span_p];
    // One label per key, checked against every sample so that labels which
    // are not `==` can never share a key (see `label::encode_dense`).
    let mut reps_t: Vec<Option<&T>> = vec![None; span_t];
    let mut reps_p: Vec<Option<&P>> = vec![None; span_p];
    for (x, y) in labels_true.iter().zip(labels_pred) {
        let (i, j) = (window_t.offset(x)?, window_p.offset(y)?);
        check_rep(&mut reps_t, i, x)?;
        check_rep(&mut reps_p, j, y)?;
        *table.get_mut(i * span_p + j)? += 1;
    }

    // Keep the keys that occur, in key order.
    let rows: Vec<usize> = (0..span_t).filter(|&i| reps_t[i].is_some()).collect();
    let cols: Vec<usize> = (0..span_p).filter(|&j| reps_p[j].is_some()).collect();
    let mut counts = PairCounts {
        n_samples: labels_true.len(),
        class_sizes: vec![0; rows.len()],
        cluster_sizes: vec![0; cols.len()],
        cells: Vec::new(),
    };
    for (row, &i) in rows.iter().enumerate() {
        for (col, &j) in cols.iter().enumerate() {
            let count = table[i * span_p + j];
            if count > 0 {
                counts.class_sizes[row] += count;
                counts.cluster_sizes[col] += count;
                counts.cells.push(Cell { row, col, count });
            }
        }
    }
    let (classes, row_remap) =
        sort_distinct(rows.iter().filter_map(|&i| reps_t[i].cloned()).collect());
    let (clusters, col_remap) =
        sort_distinct(cols.iter().filter_map(|&j| reps_p[j].cloned()).collect());
    counts.relabel(row_remap.as_deref(), col_remap.as_deref());
    Some(Counted {
        classes,
        clusters,
        counts,
    })
}

/// Records `label` as the representative of `key`, or checks that it equals
/// the one already recorded.
#[inline]
fn check_rep<'a, T: PartialEq>(reps: &mut [Option<&'a T>], key: usize, label: &'a T) -> Option<()> {
    match reps.get_mut(key)? {
        Some(rep) => (*rep == label).then_some(()),
        slot @ None => {
            *slot = Some(label);
            Some(())
        }
    }
}

impl PairCounts {
    /// Renumbers rows and columns (`remap[old] = new`) and restores the
    /// row-major order of the cells.
    fn relabel(&mut self, row_remap: Option<&[usize]>, col_remap: Option<&[usize]>) {
        if let Some(remap) = row_remap {
            self.class_sizes = permuted(&self.class_sizes, remap);
            for cell in &mut self.cells {
                cell.row = remap[cell.row];
            }
        }
        if let Some(remap) = col_remap {
            self.cluster_sizes = permuted(&self.cluster_sizes, remap);
            for cell in &mut self.cells {
                cell.col = remap[cell.col];
            }
        }
        if row_remap.is_some() || col_remap.is_some() {
            self.cells.sort_unstable_by_key(|cell| (cell.row, cell.col));
        }
    }

    fn from_encoded<T, P>(t: &Encoded<T>, p: &Encoded<P>) -> Self {
        let (rows, cols) = (t.distinct.len(), p.distinct.len());
        // Dense counting when the table is not much larger than the data,
        // otherwise sort the (row, col) pairs (e.g. many singletons).
        match rows.checked_mul(cols) {
            Some(cells) if cells <= dense_cell_limit(t.index.len()) => {
                let counts = dense_counts(&t.index, &p.index, cols, cells);
                Self::from_dense(&counts, rows, cols)
            }
            _ => Self::from_sorted_pairs(&t.index, &p.index, rows, cols),
        }
    }

    fn from_dense(counts: &[usize], rows: usize, cols: usize) -> Self {
        let mut class_sizes = vec![0; rows];
        let mut cluster_sizes = vec![0; cols];
        let mut cells = Vec::new();
        for (row, (row_counts, class_size)) in counts
            .chunks(cols.max(1))
            .zip(class_sizes.iter_mut())
            .enumerate()
        {
            for (col, (&count, cluster_size)) in
                row_counts.iter().zip(cluster_sizes.iter_mut()).enumerate()
            {
                if count > 0 {
                    *class_size += count;
                    *cluster_size += count;
                    cells.push(Cell { row, col, count });
                }
            }
        }
        let n_samples = class_sizes.iter().sum();
        Self {
            n_samples,
            class_sizes,
            cluster_sizes,
            cells,
        }
    }

    fn from_sorted_pairs(t: &[usize], p: &[usize], rows: usize, cols: usize) -> Self {
        let mut pairs: Vec<(usize, usize)> = t.iter().copied().zip(p.iter().copied()).collect();
        pairs.sort_unstable();
        let mut class_sizes = vec![0; rows];
        let mut cluster_sizes = vec![0; cols];
        let mut cells: Vec<Cell> = Vec::new();
        for (row, col) in pairs {
            class_sizes[row] += 1;
            cluster_sizes[col] += 1;
            match cells.last_mut() {
                Some(last) if last.row == row && last.col == col => last.count += 1,
                _ => cells.push(Cell { row, col, count: 1 }),
            }
        }
        Self {
            n_samples: t.len(),
            class_sizes,
            cluster_sizes,
            cells,
        }
    }
}

/// `values` moved to their new positions, `out[remap[i]] = values[i]`.
fn permuted(values: &[usize], remap: &[usize]) -> Vec<usize> {
    let mut out = vec![0; values.len()];
    for (&value, &new) in values.iter().zip(remap) {
        out[new] = value;
    }
    out
}

/// Row-major dense counts of `(t[i], p[i])` pairs in a table with `cols`
/// columns and `cells` cells.
fn dense_counts(t: &[usize], p: &[usize], cols: usize, cells: usize) -> Vec<usize> {
    let mut counts = vec![0; cells];
    for (&row, &col) in t.iter().zip(p) {
        counts[row * cols + col] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_paths_agree() {
        let t: Vec<usize> = (0..500).map(|i| (i * 7) % 13).collect();
        let p: Vec<usize> = (0..500).map(|i| (i * 11) % 17).collect();
        let (et, ep) = (encode(&t), encode(&p));
        let (rows, cols) = (et.distinct.len(), ep.distinct.len());
        let dense = PairCounts::from_dense(
            &dense_counts(&et.index, &ep.index, cols, rows * cols),
            rows,
            cols,
        );
        let sparse = PairCounts::from_sorted_pairs(&et.index, &ep.index, rows, cols);
        assert_eq!(dense, sparse);
        assert_eq!(dense.n_samples, 500);
    }

    #[test]
    fn int_fast_path_matches_generic_path() {
        let t: Vec<i16> = (0..300).map(|i| ((i * 7) % 13) - 6).collect();
        let p: Vec<u8> = (0..300).map(|i| ((i * 11) % 17) as u8 * 3).collect();
        let fast = count_int_labels(&t, &p).expect("small integer spans");
        let (et, ep) = (encode(&t), encode(&p));
        assert_eq!(fast.classes, et.distinct);
        assert_eq!(fast.clusters, ep.distinct);
        assert_eq!(fast.counts, PairCounts::from_encoded(&et, &ep));
    }

    #[test]
    fn int_fast_path_reorders_by_ord() {
        // `Reverse<u32>` hashes as its inner integer but sorts the other way.
        use std::cmp::Reverse;
        let t: Vec<u32> = (0..200).map(|i| (i * 7) % 5).collect();
        let p: Vec<u32> = (0..200).map(|i| (i * 3) % 4 + 10).collect();
        let rev_t: Vec<Reverse<u32>> = t.iter().copied().map(Reverse).collect();
        let rev_p: Vec<Reverse<u32>> = p.iter().copied().map(Reverse).collect();
        let fast = count_int_labels(&rev_t, &rev_p).expect("integer keys");
        let (et, ep) = (encode(&rev_t), encode(&rev_p));
        assert_eq!(fast.classes, (0..5).rev().map(Reverse).collect::<Vec<_>>());
        assert_eq!(fast.classes, et.distinct);
        assert_eq!(fast.clusters, ep.distinct);
        assert_eq!(fast.counts, PairCounts::from_encoded(&et, &ep));
    }

    #[test]
    fn keys_beyond_the_guessed_window_are_recounted() {
        // The first WINDOW_SAMPLE labels are 0..4; later ones reach 1000.
        let t: Vec<u32> = (0..10_000u32)
            .map(|i| if i < 5_000 { i % 4 } else { 1_000 - i % 3 })
            .collect();
        let p: Vec<i8> = (0..10_000).map(|i| (i % 7) as i8 - 3).collect();
        let fast = count_int_labels(&t, &p).expect("exact windows fit");
        let (et, ep) = (encode(&t), encode(&p));
        assert_eq!(fast.classes, vec![0, 1, 2, 3, 998, 999, 1000]);
        assert_eq!(fast.classes, et.distinct);
        assert_eq!(fast.counts, PairCounts::from_encoded(&et, &ep));
    }

    #[test]
    fn table_accessors() {
        let table = ContingencyTable::new(&["b", "a", "b"], &[9u8, 9, 4]).unwrap();
        assert_eq!(table.classes(), &["a", "b"]);
        assert_eq!(table.clusters(), &[4, 9]);
        assert_eq!(table.counts(), &[0, 1, 1, 1]);
        assert_eq!(table.class_sizes(), vec![1, 2]);
        assert_eq!(table.cluster_sizes(), vec![1, 2]);
        assert_eq!(table.get(2, 0), None);
        assert_eq!(table.n_samples(), 3);
        let empty = ContingencyTable::<u8, u8>::new(&[], &[]).unwrap();
        assert_eq!(empty.rows().count(), 0);
        assert!(empty.class_sizes().is_empty());
    }
}
