//! # advclust-models
//!
//! Victim deep clustering models for advclust, written as burn modules that run (and train) on
//! the CPU: **CC** (Contrastive Clustering: instance- and cluster-level contrast of two
//! augmented views), and, on a shared SimCLR pretext whose mined nearest neighbours they
//! reuse, **SCAN** (neighbour consistency, then self-labelling), **NNM** (mined, in-batch and
//! global neighbours with a cluster-level contrast) and **SPICE** (prototype pseudo-labels on a
//! frozen backbone, then FixMatch on the reliable images), and two classical soft clusterings
//! on PCA scores fitted on the host (**GMM** and **soft k-means**, [`mixture`]). Every model
//! takes images in `[0, 1]` (normalisation is inside), implements
//! [`advclust_core::DifferentiableClusterModel`] (memberships keep the gradient to the input;
//! `attack_output` is the reference attack's phi), and so becomes a black-box oracle through
//! [`advclust_core::ModelOracle`]. [`Victim`] is the one type over all of them: saved as
//! burnpack weights plus a JSON description that records the [`VictimKind`], loaded from any
//! directory by dispatching on it. The deep victims train on one runner ([`runner`]: seeded,
//! checkpointed, resumable, typed divergence errors); models trained on the MNIST test split
//! are embedded ([`EMBEDDED`]).
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
pub mod kmeans;
pub mod mice;
pub mod mixture;
pub mod nnm;
pub mod norm;
pub use norm::{Architecture, MAX_BLOCKS, MAX_CLUSTERS, MAX_IMAGE_SIDE, MAX_PARAMETERS, MAX_WIDTH};
pub mod pretext;
pub mod pretrained;
pub mod resnet;
pub mod ruc;
pub mod runner;
pub mod scan;
pub mod spice;
pub mod victim;

pub use augment::{AugmentConfig, augment_batch};
pub use cc::train::{CHECKPOINT_SUBDIR, channel_stats};
pub use cc::{
    CcConfig, CcLoss, CcModel, CcOutput, CcTrainConfig, CcTrainReport, EpochRecord, cc_loss,
    cluster_loss, finetune_cc, instance_loss, train_cc, train_cc_with, trainable_parameters,
};
pub use error::{ModelError, Result};
pub use mice::{
    MiceConfig, MiceModel, MiceTrainConfig, MiceTrainReport, finetune_mice,
    max_mahalanobis_centres, train_mice,
};
pub use mixture::{
    MixtureConfig, MixtureFitReport, MixtureKind, MixtureModel, MixtureParts, fit_mixture,
    fit_mixture_flat,
};
pub use nnm::{NnmModel, NnmTrainConfig, NnmTrainReport, finetune_nnm, train_nnm};
pub use pretext::{
    Neighbors, Pretext, PretextReport, PretextTrainConfig, SimClrConfig, SimClrModel, data_digest,
    mine_neighbors, train_pretext,
};
pub use pretrained::{EMBEDDED, EmbeddedVictim, embedded, pretrained_cc_mnist};
pub use resnet::{ResNet, ResNetConfig};
pub use ruc::{
    CleanSplit, RucConfig, RucModel, RucTrainConfig, RucTrainReport, clean_split, finetune_ruc,
    train_ruc,
};
pub use runner::{
    Checkpointer, EpochLog, Evaluation, LrSchedule, RunConfig, RunReport, StepLoss, TrainingStep,
};
pub use scan::{
    ScanConfig, ScanModel, ScanTrainConfig, ScanTrainReport, SelfLabelConfig, finetune_scan,
    train_scan,
};
pub use spice::prototype::PrototypeConfig;
pub use spice::reliable::{ReliableConfig, ReliableSet, reliable_samples};
pub use spice::semi::SemiConfig;
pub use spice::{
    SpiceConfig, SpiceModel, SpiceStage, SpiceTrainConfig, SpiceTrainReport, finetune_spice,
    train_spice,
};
pub use victim::{
    ClusterModelExt, EpsilonSpace, TrainingSummary, Victim, VictimDescription, VictimKind,
    VictimModel,
};
