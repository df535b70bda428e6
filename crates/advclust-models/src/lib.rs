//! # advclust-models
//!
//! Victim deep clustering models for advclust, written as burn modules that run (and train) on
//! the CPU. The first victim is **CC**, Contrastive Clustering (Li et al., AAAI 2021): a small
//! ResNet backbone feeds two heads, an *instance head* whose L2-normalised embeddings are
//! pulled together for two augmentations of the same image and pushed apart from all other
//! images (instance-level NT-Xent), and a *cluster head* whose softmax over `k` clusters is
//! trained with the same contrast applied to the *columns* of the assignment matrix
//! (cluster-level NT-Xent) plus an entropy term that keeps the clusters balanced. The cluster
//! head's softmax is the model's soft membership, its argmax the predicted cluster. A
//! [`CcModel`] takes images in `[0, 1]` (normalisation is inside), implements
//! [`advclust_core::DifferentiableClusterModel`] (memberships keep the gradient to the input),
//! and so becomes a black-box oracle through [`advclust_core::ModelOracle`]. Models are saved
//! as burnpack weights plus a JSON description, and load with no other information; a CC model
//! trained on the MNIST test split is embedded ([`pretrained_cc_mnist`]).
//!
//! ```
//! use advclust_core::{ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle};
//! use advclust_models::{CcConfig, CcModel};
//! use burn::tensor::Device;
//!
//! let device = Device::flex();
//! // A tiny CC model for 1 x 28 x 28 images and k = 10 clusters.
//! let config = CcConfig::new([1, 28, 28], 10, &[8, 16]);
//! let model = CcModel::new(&config, 42, &device)?;
//! assert_eq!(model.num_clusters(), 10);
//!
//! // The black-box view: memberships of a host batch.
//! let mut oracle = ModelOracle::new(&model, &device);
//! let batch = ImageBatch::unit(vec![0.5; 4 * 28 * 28], [4, 1, 28, 28])?;
//! let m = oracle.memberships(&batch)?;
//! assert_eq!((m.n(), m.k()), (4, 10));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod artifact;
pub mod augment;
pub mod cc;
pub mod error;
pub mod nnm;
pub mod norm;
pub mod pretext;
pub mod pretrained;
pub mod resnet;
pub mod runner;
pub mod scan;
pub mod spice;
pub mod victim;

pub use augment::{AugmentConfig, augment_batch};
pub use cc::train::{CHECKPOINT_SUBDIR, channel_stats};
pub use cc::{
    CcConfig, CcLoss, CcModel, CcOutput, CcTrainConfig, CcTrainReport, EpochRecord, cc_loss,
    cluster_loss, instance_loss, train_cc, train_cc_with, trainable_parameters,
};
pub use error::{ModelError, Result};
pub use nnm::{NnmModel, NnmTrainConfig, NnmTrainReport, train_nnm};
pub use pretext::{
    Neighbors, Pretext, PretextReport, PretextTrainConfig, SimClrConfig, SimClrModel, data_digest,
    mine_neighbors, train_pretext,
};
pub use pretrained::{EMBEDDED, EmbeddedVictim, embedded, pretrained_cc_mnist};
pub use resnet::{ResNet, ResNetConfig};
pub use runner::{
    Checkpointer, EpochLog, Evaluation, RunConfig, RunReport, StepLoss, TrainingStep,
};
pub use scan::{
    ScanConfig, ScanModel, ScanTrainConfig, ScanTrainReport, SelfLabelConfig, train_scan,
};
pub use spice::prototype::PrototypeConfig;
pub use spice::reliable::{ReliableConfig, ReliableSet, reliable_samples};
pub use spice::semi::SemiConfig;
pub use spice::{
    SpiceConfig, SpiceModel, SpiceStage, SpiceTrainConfig, SpiceTrainReport, train_spice,
};
pub use victim::{
    ClusterModelExt, EpsilonSpace, TrainingSummary, Victim, VictimDescription, VictimKind,
    VictimModel,
};
