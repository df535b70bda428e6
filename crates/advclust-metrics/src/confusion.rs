//! Majority-class mapping of clusters and a display-ordered confusion matrix.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;

use crate::contingency::ContingencyTable;
use crate::error::MetricsError;
use crate::label::Label;

/// Cluster label -> majority ground-truth class among the cluster's members.
pub type MajorityMapping<P, T> = BTreeMap<P, T>;

/// True-class x cluster count matrix with columns ordered for display.
///
/// Rows are the classes in ascending order. Each column is a cluster; columns
/// are sorted by their majority class, then by decreasing majority count, then
/// by cluster label, so a good clustering shows as a block diagonal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix<T, P> {
    classes: Vec<T>,
    clusters: Vec<P>,
    majority: Vec<usize>,
    counts: Vec<usize>,
    n_samples: usize,
}

/// Maps every predicted cluster to the majority ground-truth class among its
/// members, and builds the matching [`ConfusionMatrix`].
///
/// Ties go to the smallest class label. Unlike the one-to-one matching of
/// [`acc`](crate::acc), several clusters may map to the same class.
///
/// ```
/// use advclust_metrics::confusion_matrix;
///
/// let (mapping, matrix) = confusion_matrix(&["cat", "cat", "dog", "dog"], &[4, 4, 4, 9])?;
/// assert_eq!(mapping[&4], "cat");
/// assert_eq!(mapping[&9], "dog");
/// assert_eq!(matrix.purity(), 0.75);
/// # Ok::<(), advclust_metrics::MetricsError>(())
/// ```
///
/// # Errors
///
/// [`MetricsError::LengthMismatch`], [`MetricsError::EmptyInput`], or
/// [`MetricsError::TableTooLarge`] as for
/// [`ContingencyTable::new`].
#[expect(
    clippy::type_complexity,
    reason = "a (mapping, matrix) pair destructures more simply than a one-off struct"
)]
pub fn confusion_matrix<T: Label, P: Label>(
    labels_true: &[T],
    labels_pred: &[P],
) -> Result<(MajorityMapping<P, T>, ConfusionMatrix<T, P>), MetricsError> {
    let table = ContingencyTable::new(labels_true, labels_pred)?;
    let matrix = ConfusionMatrix::from_table(&table)?;
    Ok((matrix.mapping(), matrix))
}

impl<T: Label, P: Label> ConfusionMatrix<T, P> {
    /// Builds the display-ordered matrix from a contingency table.
    ///
    /// # Errors
    ///
    /// [`MetricsError::EmptyInput`] when the table holds no samples.
    pub fn from_table(table: &ContingencyTable<T, P>) -> Result<Self, MetricsError> {
        if table.n_samples() == 0 {
            return Err(MetricsError::EmptyInput);
        }
        let (n_classes, n_clusters) = (table.n_classes(), table.n_clusters());
        let counts = table.counts();
        // Majority row of each column: first maximum, i.e. smallest class.
        let majority: Vec<(usize, usize)> = (0..n_clusters)
            .map(|col| {
                (0..n_classes).fold((0, 0), |best, row| {
                    let count = counts[row * n_clusters + col];
                    if count > best.1 { (row, count) } else { best }
                })
            })
            .collect();
        let mut order: Vec<usize> = (0..n_clusters).collect();
        order.sort_by_key(|&col| (majority[col].0, Reverse(majority[col].1), col));
        let counts = (0..n_classes)
            .flat_map(|row| order.iter().map(move |&col| (row, col)))
            .map(|(row, col)| counts[row * n_clusters + col])
            .collect();
        Ok(Self {
            classes: table.classes().to_vec(),
            clusters: order
                .iter()
                .map(|&col| table.clusters()[col].clone())
                .collect(),
            majority: order.iter().map(|&col| majority[col].0).collect(),
            counts,
            n_samples: table.n_samples(),
        })
    }

    /// The cluster -> majority class mapping.
    pub fn mapping(&self) -> MajorityMapping<P, T> {
        self.clusters
            .iter()
            .zip(&self.majority)
            .map(|(cluster, &row)| (cluster.clone(), self.classes[row].clone()))
            .collect()
    }
}

impl<T, P> ConfusionMatrix<T, P> {
    /// Class labels, one per row, ascending.
    pub fn classes(&self) -> &[T] {
        &self.classes
    }

    /// Cluster labels, one per column, in display order.
    pub fn clusters(&self) -> &[P] {
        &self.clusters
    }

    /// Row-major counts: `counts()[i * clusters().len() + j]`.
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// Count of row `class` and column `cluster` (display order), `None` when
    /// out of range.
    pub fn get(&self, class: usize, cluster: usize) -> Option<usize> {
        if class < self.classes.len() && cluster < self.clusters.len() {
            self.counts
                .get(class * self.clusters.len() + cluster)
                .copied()
        } else {
            None
        }
    }

    /// Majority class of column `cluster` (display order), `None` when out of
    /// range.
    pub fn majority_class(&self, cluster: usize) -> Option<&T> {
        self.majority
            .get(cluster)
            .and_then(|&row| self.classes.get(row))
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// Purity: fraction of samples that belong to the majority class of their
    /// cluster (the accuracy of the majority mapping).
    pub fn purity(&self) -> f64 {
        let n_clusters = self.clusters.len();
        let matched: usize = self
            .majority
            .iter()
            .enumerate()
            .map(|(col, &row)| self.counts[row * n_clusters + col])
            .sum();
        matched as f64 / self.n_samples as f64
    }
}

/// Text table: a header of cluster labels, then one row per class.
impl<T: fmt::Display, P: fmt::Display> fmt::Display for ConfusionMatrix<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header: Vec<String> = self.clusters.iter().map(ToString::to_string).collect();
        let rows: Vec<String> = self.classes.iter().map(ToString::to_string).collect();
        let counts: Vec<String> = self.counts.iter().map(ToString::to_string).collect();
        let corner = "true\\pred";
        let first = rows
            .iter()
            .map(String::len)
            .chain([corner.len()])
            .max()
            .unwrap_or(0);
        let width = header
            .iter()
            .chain(&counts)
            .map(String::len)
            .max()
            .unwrap_or(0);
        write!(f, "{corner:>first$}")?;
        for label in &header {
            write!(f, " {label:>width$}")?;
        }
        for (row, label) in rows.iter().enumerate() {
            write!(f, "\n{label:>first$}")?;
            for count in counts.iter().skip(row * header.len()).take(header.len()) {
                write!(f, " {count:>width$}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_and_display_order() {
        // Cluster 30 is mostly class 2, cluster 10 mostly class 1, cluster 20
        // a 1-1 tie between classes 1 and 2 (goes to class 1).
        let t = [1, 1, 1, 2, 2, 2, 2, 1, 2];
        let p = [10, 10, 30, 30, 30, 30, 10, 20, 20];
        let (mapping, m) = confusion_matrix(&t, &p).unwrap();
        assert_eq!(mapping, BTreeMap::from([(10, 1), (20, 1), (30, 2)]));
        assert_eq!(m.classes(), &[1, 2]);
        assert_eq!(m.clusters(), &[10, 20, 30]);
        assert_eq!(m.counts(), &[2, 1, 1, 1, 1, 3]);
        assert_eq!(m.majority_class(2), Some(&2));
        assert_eq!(m.majority_class(3), None);
        assert_eq!(m.get(1, 2), Some(3));
        assert_eq!(m.purity(), 6.0 / 9.0);
        let text = m.to_string();
        assert_eq!(
            text,
            "true\\pred 10 20 30\n        1  2  1  1\n        2  1  1  3"
        );
    }

    #[test]
    fn columns_follow_classes() {
        let t = ['a', 'a', 'b', 'b', 'c', 'c'];
        let p = [7, 7, 3, 3, 5, 5];
        let (_, m) = confusion_matrix(&t, &p).unwrap();
        assert_eq!(m.clusters(), &[7, 3, 5]);
        assert_eq!(m.counts(), &[2, 0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(m.purity(), 1.0);
    }

    #[test]
    fn empty_is_an_error() {
        assert_eq!(
            confusion_matrix::<u8, u8>(&[], &[]).unwrap_err(),
            MetricsError::EmptyInput
        );
    }
}
