//! CC (Contrastive Clustering, Li et al., AAAI 2021): the model, its loss and its training run.
//!
//! This folder is the template every victim follows: `model.rs` (config, module, the
//! [`advclust_core::DifferentiableClusterModel`] impl), `loss.rs`, and `train.rs` (the
//! victim's training step on the shared [`crate::runner`]).

pub mod loss;
pub mod model;
pub mod train;

pub use loss::{CcLoss, cc_loss, cluster_loss, instance_loss};
pub use model::{CcConfig, CcModel, CcOutput};
pub use train::{
    CcTrainConfig, CcTrainReport, EpochRecord, finetune_cc, train_cc, train_cc_with,
    trainable_parameters,
};
