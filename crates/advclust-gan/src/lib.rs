//! # advclust-gan
//!
//! The GAN attack on deep clustering models of "On the Robustness of Deep Clustering Models:
//! Adversarial Attacks and Defenses", as the authors' code does it. A [`Generator`] maps a
//! clean image `x` to a perturbation `delta`, bounded by the threat model (an L-infinity clip
//! by default, or an L2 projection with the paper's optional hinge) into `x_adv`; a patch
//! [`Discriminator`] trained with a least-squares GAN loss keeps `x_adv` looking like the data,
//! and the generator also maximises `L_adv`, the distance between the victim's outputs on
//! `x_adv` and on `x`, while `L_pert` keeps `delta` small. The gradient of `L_adv` comes either
//! from backpropagation through a frozen differentiable victim (the reference's mode,
//! [`GradientSource::Backprop`]) or, for a truly black-box victim seen only through a
//! [`ClusterOracle`](advclust_core::ClusterOracle), from zeroth-order NES or SPSA estimates built
//! from memberships queries ([`estimate_adv_gradient`]), chained into the generator by
//! backpropagation through the generator alone. Every victim query is counted by an
//! `advclust_core` query ledger and bounded by the configured budget. Training returns a
//! [`TrainedAttack`] that perturbs new images with no further queries, saves and loads, and
//! evaluates NMI/ARI/ACC before and after the attack; its [`AttackReport`] holds the curves,
//! query counts (also at convergence) and perturbation norms.
//!
//! ```
//! use advclust_core::{ClusterOracle, ImageBatch, Memberships, ParamGuard, Result as CoreResult};
//! use advclust_gan::{train_query_only, AttackConfig, GradientSource, Stopping};
//! use burn::tensor::Device;
//!
//! /// A black-box victim: two clusters by mean brightness.
//! struct Brightness;
//! impl ClusterOracle for Brightness {
//!     fn num_clusters(&self) -> usize { 2 }
//!     fn input_shape(&self) -> Option<[usize; 3]> { Some([1, 24, 24]) }
//!     fn memberships(&mut self, batch: &ImageBatch) -> CoreResult<Memberships> {
//!         let rows = (0..batch.len()).flat_map(|i| {
//!             let img = batch.image(i).unwrap();
//!             let p = img.iter().sum::<f32>() / img.len() as f32;
//!             [1.0 - p, p]
//!         });
//!         Memberships::new(rows.collect(), batch.len(), 2)
//!     }
//! }
//!
//! let images: Vec<f32> = (0..8 * 24 * 24).map(|i| (i % 7) as f32 / 7.0).collect();
//! let train = ImageBatch::unit(images, [8, 1, 24, 24]).unwrap();
//! let config = AttackConfig::new()
//!     .with_epsilon(0.1)
//!     .with_batch_size(4)
//!     .with_stopping(Stopping::Epochs { epochs: 1 })
//!     .with_gradient_source(GradientSource::Nes { samples: 4, sigma: 0.01 })
//!     .check()
//!     .unwrap();
//! let attack = train_query_only(&config, &mut Brightness, &train, &Device::flex()).unwrap();
//! // 8 clean memberships once, then 2 * 4 perturbed copies of each image per step.
//! assert_eq!(attack.report().training_queries.images, 8 + 8 * 8);
//! let adversarial = attack.perturb(&train).unwrap(); // no queries
//! assert!(attack.threat_model().contains(&train, &adversarial).unwrap());
//! ```

#![warn(missing_docs)]

mod attack;
mod config;
mod error;
mod estimate;
mod nets;
mod objective;
mod report;
mod train;

pub use attack::{ATTACK_FILE, GENERATOR_FILE, GeneratorSnapshot, TrainedAttack};
pub use config::{
    AdvDistance, AttackConfig, AttackSettings, CheckedAttackConfig, GradientSource, LrMilestone,
    MAX_BATCH_SIZE, MAX_ESTIMATOR_SAMPLES, OptimizerConfig, Stopping,
};
pub use error::{AttackError, Result};
pub use estimate::{AdvObjective, GradientEstimate, QueryEstimator, estimate_adv_gradient};
pub use nets::{
    Discriminator, Generator, MIN_IMAGE_SIDE, ResnetBlock, check_image_shape, trainable_params,
};
pub use objective::{AdvLoss, log_margin_loss, soft_mi_loss, soft_mi_weights};
pub use report::{AttackReport, ConvergenceInfo, EpochStats, Evaluation, StopReason};
pub use train::{
    AttackGan, AttackTrainer, CheckpointPolicy, FrozenVictim, GeneratorPenalty, QueryPenalty,
    StepStats, train_backprop, train_query_only,
};
