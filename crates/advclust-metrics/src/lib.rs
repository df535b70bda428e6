//! # advclust-metrics
//!
//! External clustering metrics that agree with scikit-learn to within `1e-9`:
//! normalised mutual information ([`nmi`], [`nmi_with`], as
//! `normalized_mutual_info_score`), the adjusted Rand index ([`ari`], as
//! `adjusted_rand_score`) and clustering accuracy ([`acc`], the best
//! one-to-one cluster/class matching, as
//! `scipy.optimize.linear_sum_assignment` on the contingency matrix, found by
//! a sparse shortest-augmenting-path solver, [`max_weight_matching`]). Every
//! metric is a function of the [`ContingencyTable`] of ground-truth classes
//! against predicted clusters, which is built in O(n): labels of any
//! [`Label`] type (integers, strings, non-contiguous or negative ids; true and
//! predicted labels may even differ in type) are relabelled to contiguous
//! indices, in a single pass straight into the table when they are integers
//! within a small range and through a hash map otherwise. Formulas, special cases and summation order mirror scikit-learn,
//! and pair counts for the ARI are exact 128-bit integers so nothing overflows
//! at millions of samples. [`confusion_matrix`] adds the majority-class
//! mapping of clusters and a display-ordered [`ConfusionMatrix`];
//! [`clustering_scores`] returns all three scores from one table as a
//! serialisable [`ClusteringScores`]. Invalid input is reported through
//! [`MetricsError`], never by panicking.
//!
//! ```
//! use advclust_metrics::{clustering_scores, nmi_with, NmiNormalization};
//!
//! let truth = [0u8, 0, 0, 1, 1, 1];
//! let clusters = [17i64, 17, 3, 3, 3, 3];
//! let scores = clustering_scores(&truth, &clusters)?;
//! assert!((scores.acc - 5.0 / 6.0).abs() < 1e-12);
//! assert!(scores.nmi > 0.0 && scores.nmi < 1.0);
//! assert!(nmi_with(&truth, &clusters, NmiNormalization::Max)? <= scores.nmi);
//! # Ok::<(), advclust_metrics::MetricsError>(())
//! ```

#![warn(missing_docs)]

mod assignment;
mod confusion;
mod contingency;
mod error;
mod label;
mod scores;

pub use assignment::{MAX_TOTAL_WEIGHT, Matching, max_weight_matching};
pub use confusion::{ConfusionMatrix, MajorityMapping, confusion_matrix};
pub use contingency::{ContingencyTable, MAX_DENSE_CELLS};
pub use error::MetricsError;
pub use label::Label;
pub use scores::{ClusteringScores, NmiNormalization, acc, ari, clustering_scores, nmi, nmi_with};
