//! The SPICE run: SPICE-Self on the frozen pretext backbone, head selection by the
//! pseudo-label loss, the reliable images, then (optionally) SPICE-Semi.

use advclust_core::ImageBatch;
use advclust_core::SeededRng;
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::tensor::Device;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::error::{ModelError, Result};
use crate::pretext::Pretext;
use crate::runner::{Evaluation, RunConfig, RunReport, gather_images, run_training};
use crate::scan::MAX_HEADS;
use crate::scan::heads::check_pretext_data;
use crate::spice::prototype::{
    PrototypeConfig, PrototypeStep, frozen_features, labelled_count, select_spice_head,
};
use crate::spice::reliable::{ReliableConfig, ReliableSet, reliable_samples};
use crate::spice::semi::{SemiConfig, SemiStep};
use crate::spice::{SpiceConfig, SpiceHeads, SpiceModel, SpiceStage};
use crate::victim::{TrainingSummary, VictimModel};

/// Everything a SPICE run needs besides the data and the pretext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpiceTrainConfig {
    /// Name of the training set.
    pub dataset: String,
    /// Clusters `k`.
    pub num_clusters: usize,
    /// SPICE-Self heads (10 in SPICE).
    pub num_heads: usize,
    /// SPICE-Self.
    pub prototype: PrototypeConfig,
    /// The reliable images.
    pub reliable: ReliableConfig,
    /// SPICE-Semi, if run.
    pub semi: Option<SemiConfig>,
}

impl SpiceTrainConfig {
    /// SPICE's settings where they fit a CPU: 3 heads, prototypes from half of each cluster's
    /// share, 2 passes per epoch in batches of 128 with Adam 5e-3 for 30 epochs; reliable
    /// images as SPICE's CIFAR configs; SPICE-Semi with p 0.95, lambda 1, 3 unlabelled per
    /// labelled image, batches of 96 unlabelled, Adam 1e-4 for 10 epochs.
    pub fn new(num_clusters: usize, channels: usize) -> Self {
        let strong = AugmentConfig::for_channels(channels);
        let weak = strong.weak();
        let mut semi_run = RunConfig::new(10, 96, 1e-4);
        semi_run.weight_decay = 5e-4;
        SpiceTrainConfig {
            dataset: "unnamed".into(),
            num_clusters,
            num_heads: 3,
            prototype: PrototypeConfig {
                center_ratio: 0.5,
                repeats: 2,
                weak: weak.clone(),
                strong: strong.clone(),
                run: RunConfig::new(30, 128, 5e-3),
            },
            reliable: ReliableConfig::new(),
            semi: Some(SemiConfig {
                p_cutoff: 0.95,
                lambda_u: 1.0,
                uratio: 3,
                weak,
                strong,
                run: semi_run,
            }),
        }
    }

    /// Uses `strong` as the strong augmentation of both stages (and its weak form as weak).
    pub fn with_augment(mut self, strong: AugmentConfig) -> Self {
        let weak = strong.weak();
        self.prototype.strong = strong.clone();
        self.prototype.weak = weak.clone();
        if let Some(s) = self.semi.as_mut() {
            s.strong = strong;
            s.weak = weak;
        }
        self
    }

    fn validate(&self, n: usize) -> Result<()> {
        crate::norm::check_num_clusters(self.num_clusters)?;
        if self.num_clusters > n {
            return Err(ModelError::invalid(
                "num_clusters",
                format!("k = {} clusters for {n} images", self.num_clusters),
            ));
        }
        if !(1..=MAX_HEADS).contains(&self.num_heads) {
            return Err(ModelError::invalid(
                "num_heads",
                format!("must be in 1..={MAX_HEADS}"),
            ));
        }
        self.prototype.validate()?;
        self.reliable.validate(n)?;
        if let Some(s) = &self.semi {
            s.validate()?;
        }
        Ok(())
    }
}

/// What the reliable-image step found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliableSummary {
    /// Images kept (after balancing).
    pub count: usize,
    /// Reliable images per cluster before balancing.
    pub per_cluster: Vec<usize>,
    /// ACC of the kept images' labels against the ground truth, when labels were given.
    pub accuracy: Option<f64>,
}

/// The result of a SPICE run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpiceTrainReport {
    /// The configuration used.
    pub config: SpiceTrainConfig,
    /// SPICE-Self.
    pub self_run: RunReport,
    /// Pseudo-label loss of each head after SPICE-Self.
    pub head_losses: Vec<f64>,
    /// The head selected (lowest loss).
    pub selected_head: usize,
    /// Scores of SPICE-Self's selected head, when labels were given.
    pub self_scores: Option<ClusteringScores>,
    /// The reliable images, when SPICE-Semi ran.
    pub reliable: Option<ReliableSummary>,
    /// SPICE-Semi, if run.
    pub semi_run: Option<RunReport>,
    /// Scores of the final model, when labels were given.
    pub final_scores: Option<ClusteringScores>,
    /// Images per predicted cluster of the final model.
    pub final_cluster_sizes: Vec<usize>,
}

/// Trains SPICE on `images` (values in `[0, 1]`) from `pretext` (trained on the same images):
/// SPICE-Self on its frozen backbone, then SPICE-Semi when configured. `labels` (optional) only
/// score it: heads are chosen by their pseudo-label loss (SPICE's `checkpoint_select`), never
/// by accuracy.
///
/// Errors: a pretext for other images ([`ModelError::PretextMismatch`]), k < 2 or k > n, a
/// cluster with no reliable image, a diverged loss (the last checkpoint is kept).
pub fn train_spice(
    config: &SpiceTrainConfig,
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(SpiceModel, SpiceTrainReport)> {
    let n = images.len();
    config.validate(n)?;
    check_pretext_data(pretext, images, labels)?;
    let k = config.num_clusters;
    let pc = pretext.model.config();
    let d = pc.backbone.feature_dim();
    let self_config = SpiceConfig {
        input_shape: pc.input_shape,
        num_clusters: k,
        backbone: pc.backbone.clone(),
        hidden: d,
        num_heads: config.num_heads,
        selected_head: 0,
        stage: SpiceStage::SelfTrained,
        mean: pc.mean.clone(),
        std: pc.std.clone(),
    };
    self_config.parameter_count()?;
    let inner = device.clone().inner();
    let backbone = pretext.model.backbone().valid().to_device(&inner);
    let [_, c, h, w] = images.dims();
    let mut features = Vec::with_capacity(n * d);
    for start in (0..n).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(n)).collect();
        features.extend(frozen_features(
            &backbone,
            &pc.mean,
            &pc.std,
            gather_images(images.data(), c * h * w, &idx),
            [idx.len(), c, h, w],
            &inner,
        )?);
    }
    let mut embeddings = features.clone();
    crate::norm::l2_normalize_host_rows(&mut embeddings, d);

    // SPICE-Self: the heads alone are trained.
    let proto = &config.prototype;
    let self_device = proto.run.training_device(device);
    let mut rng = SeededRng::seed_from_u64(proto.run.seed);
    let heads = SpiceHeads::new(d, d, k, config.num_heads, &mut rng, &self_device);
    let mut step = PrototypeStep {
        images,
        labels,
        backbone: &backbone,
        mean: &pc.mean,
        std: &pc.std,
        features: &features,
        embeddings: &embeddings,
        config: proto,
        k,
        selections: Vec::new(),
    };
    // What determines the weights (not the run's bookkeeping: epochs, resume, logging).
    let fingerprint = serde_json::json!({
        "model": self_config, "center_ratio": proto.center_ratio, "repeats": proto.repeats,
        "weak": proto.weak, "strong": proto.strong, "batch_size": proto.run.batch_size,
        "learning_rate": proto.run.learning_rate, "backbone": pretext.training,
    });
    let items = proto.repeats * labelled_count(n, k);
    let (heads, self_run) = run_training(
        "spice-self",
        heads,
        items,
        &proto.run,
        fingerprint,
        &mut step,
        &self_device,
        &mut |_| {},
    )?;
    let heads = heads.valid().to_device(&inner);
    let (head_losses, best, self_memberships) = select_spice_head(
        &heads,
        &features,
        &embeddings,
        n,
        k,
        proto.center_ratio,
        device,
    )?;
    let self_scores = Evaluation::of_memberships(&self_memberships, k, labels)?.scores;
    let mut model = SpiceModel::from_parts(
        backbone,
        heads,
        SpiceConfig {
            selected_head: best,
            ..self_config.clone()
        },
    );
    let mut train_seconds = self_run.train_seconds;
    let mut epochs = proto.run.epochs;
    let mut reliable_summary = None;
    let mut semi_run = None;
    if let Some(semi) = &config.semi {
        let reliable = reliable_samples(
            &self_memberships,
            &embeddings,
            n,
            k,
            &config.reliable,
            semi.run.seed,
            device,
        )?;
        reliable_summary = Some(summarize(&reliable, labels)?);
        let self_losses: Vec<f64> = self_run.epochs.iter().map(|e| e.loss).collect();
        let (m, run) = train_semi(
            model,
            semi,
            &reliable,
            (images, labels),
            serde_json::json!(self_losses),
            device,
        )?;
        model = m;
        train_seconds += run.train_seconds;
        epochs += semi.run.epochs;
        semi_run = Some(run);
    }
    let final_eval = Evaluation::of_clusters(&model, images, labels, device)?;
    let mut summary = TrainingSummary::of_run(
        &config.dataset,
        n,
        &proto.run,
        train_seconds,
        final_eval.scores,
    );
    summary.epochs = epochs;
    let model = model.with_training(Some(summary));
    let report = SpiceTrainReport {
        config: config.clone(),
        self_run,
        head_losses,
        selected_head: best,
        self_scores,
        reliable: reliable_summary,
        semi_run,
        final_scores: final_eval.scores,
        final_cluster_sizes: final_eval.cluster_sizes.unwrap_or_default(),
    };
    Ok((model, report))
}

fn summarize(reliable: &ReliableSet, labels: Option<&[usize]>) -> Result<ReliableSummary> {
    let accuracy = match labels {
        Some(l) => {
            let truth: Vec<usize> = reliable.indices.iter().map(|&i| l[i]).collect();
            Some(advclust_metrics::clustering_scores(&truth, &reliable.labels)?.acc)
        }
        None => None,
    };
    Ok(ReliableSummary {
        count: reliable.indices.len(),
        per_cluster: reliable.per_cluster.clone(),
        accuracy,
    })
}

/// Fine-tunes a trained SPICE model (either stage) by SPICE-Semi: its backbone and selected head,
/// the whole network trained by FixMatch on `images` with the `reliable` images' labels.
/// Adversarial retraining uses it on clean + perturbed images, the reliable clean images chosen
/// from the model's own memberships (SPICE's rule) and each perturbed copy labelled with its
/// clean twin's cluster; ground truth is never used.
pub fn finetune_spice(
    model: &SpiceModel,
    semi: &SemiConfig,
    reliable: &ReliableSet,
    images: &ImageBatch,
    device: &Device,
) -> Result<SpiceModel> {
    semi.validate()?;
    let n = images.len();
    let k = model.config().num_clusters;
    if reliable.indices.is_empty()
        || reliable.indices.len() != reliable.labels.len()
        || reliable.indices.iter().any(|&i| i >= n)
        || reliable.labels.iter().any(|&c| c >= k)
    {
        return Err(ModelError::invalid(
            "reliable",
            format!("need images, indices below {n} and labels below {k}, one label per index"),
        ));
    }
    let inner = device.clone().inner();
    let start = crate::artifact::load_weights(
        SpiceModel::new(model.config(), 0, &inner)?,
        crate::artifact::weights_bytes(model)?,
        "spice",
    )?;
    let (tuned, _) = train_semi(
        start,
        semi,
        reliable,
        (images, None),
        serde_json::json!("finetuned"),
        device,
    )?;
    Ok(tuned)
}

/// SPICE-Semi from a SPICE model: its backbone and selected head, the whole network trained by
/// FixMatch on the reliable images. `origin` identifies the starting weights in the checkpoint
/// fingerprint (SPICE-Self's losses).
fn train_semi(
    self_model: SpiceModel,
    semi: &SemiConfig,
    reliable: &ReliableSet,
    (images, labels): (&ImageBatch, Option<&[usize]>),
    origin: serde_json::Value,
    device: &Device,
) -> Result<(SpiceModel, RunReport)> {
    let best = self_model.config().selected_head;
    let semi_config = SpiceConfig {
        num_heads: 1,
        selected_head: 0,
        stage: SpiceStage::Semi,
        ..self_model.config().clone()
    };
    let SpiceModel {
        backbone, heads, ..
    } = self_model;
    let start = SpiceModel::from_parts(backbone, heads.only(best), semi_config.clone());
    let semi_device = semi.run.training_device(device);
    // A fresh copy of the weights on the stage's device.
    let model = crate::artifact::load_weights(
        SpiceModel::new(&semi_config, 0, &semi_device)?,
        crate::artifact::weights_bytes(&start)?,
        "spice-self",
    )?;
    let fingerprint = serde_json::json!({
        "model": semi_config, "p_cutoff": semi.p_cutoff, "lambda_u": semi.lambda_u,
        "uratio": semi.uratio, "weak": semi.weak, "strong": semi.strong,
        "batch_size": semi.run.batch_size, "learning_rate": semi.run.learning_rate,
        "start": origin, "reliable": reliable.indices,
    });
    let mut step = SemiStep {
        images,
        labels,
        reliable,
        config: semi,
    };
    let (model, run) = run_training(
        "spice-semi",
        model,
        images.len(),
        &semi.run,
        fingerprint,
        &mut step,
        &semi_device,
        &mut |_| {},
    )?;
    Ok((model.valid(), run))
}
