//! # advclust-core
//!
//! The vocabulary every other advclust crate speaks. A *victim* is a clustering model an
//! attacker can only query: a [`ClusterOracle`] answers a batch of images with soft cluster
//! memberships (n x k), a [`LabelOracle`] with cluster ids only. Images travel as a validated
//! host-side [`ImageBatch`] (NCHW f32 inside a [`ValueBox`]), answers as validated
//! [`Memberships`]. Every query goes through a [`QueryLedger`] (usually inside a [`Budgeted`]
//! oracle), the single place where batch calls and images are counted and where a hard budget
//! fails with a typed error *before* the call is made. A [`ThreatModel`] says how far an
//! adversarial image may move (L-infinity clip or L2 ball), and a
//! [`DifferentiableClusterModel`] is a burn module victim whose memberships keep the gradient
//! to the input; [`ModelOracle`] makes any such model an oracle. This crate knows nothing of
//! datasets, GANs or concrete models.

pub mod batch;
pub mod error;
pub mod files;
pub mod ledger;
pub mod memberships;
pub mod model;
pub mod oracle;
pub mod params;
pub mod random;
pub mod threat;

pub use batch::{ImageBatch, MAX_IMAGE_SIDE, ValueBox};
pub use error::{CoreError, ErrorKind, Result};
pub use files::{read_bounded, write_atomic};
pub use ledger::{Budgeted, QueryBudget, QueryCounts, QueryLedger};
pub use memberships::{ClusterId, Memberships, ROW_SUM_TOLERANCE, argmax_rows};
pub use model::{DifferentiableClusterModel, ModelOracle};
pub use oracle::{ArgmaxLabels, ClusterOracle, LabelOracle, answer_all, calls_one_by_one};
pub use params::ParamGuard;
pub use random::{RngState, SeededRng, derive_seed, standard_normal};
pub use threat::{
    NormKind, NormSummary, PerturbationNorms, ThreatModel, ThreatModelParams, per_sample_l2,
};

/// Reads tensor data back as `f32` values, converting the element type if needed.
pub fn tensor_to_vec(data: burn::tensor::TensorData) -> Result<Vec<f32>> {
    data.try_into_vec_as::<f32>()
        .map_err(|e| CoreError::Transport(format!("reading tensor data: {e:?}")))
}
