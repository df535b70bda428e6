//! Seeded CC training on a host image set: augment, contrast, step, evaluate, checkpoint.

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, ParamGuard, ValueBox};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::cc::loss::cc_loss;
use crate::cc::{CcConfig, CcModel};
use crate::error::{ModelError, Result};
use crate::runner::{
    EpochLog, Evaluation, RunConfig, StepLoss, TrainingStep, run_training, two_views,
};
use crate::victim::{ClusterModelExt, TrainingSummary};

/// Name of the sub-directory of the run's [`RunConfig::checkpoint_dir`] that holds the latest
/// checkpoint (model, optimizer state, progress): the runner's stage name.
pub const CHECKPOINT_SUBDIR: &str = "cc";

/// Everything a CC training run needs besides the data.
///
/// Build it with [`CcTrainConfig::new`] and adjust the public fields; `train_cc` validates it
/// through [`ParamGuard`] before doing any work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CcTrainConfig {
    /// The model to train. Its `mean` / `std` are replaced by the training set's per-channel
    /// statistics when `normalize_from_data` is set.
    pub model: CcConfig,
    /// Name of the training set (for the report and the saved model's summary).
    pub dataset: String,
    /// Temperature of the instance-level NT-Xent (0.5 in CC).
    pub instance_temperature: f64,
    /// Temperature of the cluster-level NT-Xent (1.0 in CC).
    pub cluster_temperature: f64,
    /// Weight of the entropy term `log K - H` (1.0 in CC).
    pub entropy_weight: f64,
    /// The augmentations producing the two views.
    pub augment: AugmentConfig,
    /// Replace the model's `mean` / `std` by the training set's per-channel statistics.
    pub normalize_from_data: bool,
    /// Epochs, batch (images per step, each seen through two augmentations), Adam settings,
    /// seed (weights, shuffles, augmentations, `device.seed`), evaluation, checkpoints
    /// (`<dir>/cc/`).
    pub run: RunConfig,
}

impl CcTrainConfig {
    /// Defaults of the CC paper where they apply: 100 epochs, batch 256, Adam lr 3e-4 without
    /// weight decay, temperatures 0.5 / 1.0, entropy weight 1, augmentations for the number of
    /// channels, normalisation from the data, evaluation every epoch, no checkpoints.
    pub fn new(model: CcConfig) -> Self {
        let augment = AugmentConfig::for_channels(model.input_shape[0]);
        let mut run = RunConfig::new(100, 256, 3e-4);
        run.eval_every = 1;
        run.checkpoint_every = 10;
        CcTrainConfig {
            model,
            dataset: "unnamed".to_string(),
            instance_temperature: 0.5,
            cluster_temperature: 1.0,
            entropy_weight: 1.0,
            augment,
            normalize_from_data: true,
            run,
        }
    }

    fn validate(&self) -> Result<()> {
        self.model.check_ref()?;
        self.augment.validate()?;
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ModelError::invalid(
                    name,
                    format!("must be finite and positive, got {v}"),
                ))
            }
        };
        positive("instance_temperature", self.instance_temperature)?;
        positive("cluster_temperature", self.cluster_temperature)?;
        if self.instance_temperature < 0.05 || self.cluster_temperature < 0.05 {
            return Err(ModelError::invalid(
                "temperature",
                "temperatures below 0.05 overflow the exponentials",
            ));
        }
        if !(self.entropy_weight.is_finite() && self.entropy_weight >= 0.0) {
            return Err(ModelError::invalid(
                "entropy_weight",
                "must be finite and >= 0",
            ));
        }
        self.run.validate()
    }
}

crate::error::validated_by_itself!(CcTrainConfig);

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Steps taken.
    pub steps: usize,
    /// Mean total loss over the epoch's steps.
    pub loss: f64,
    /// Mean instance-level loss.
    pub instance_loss: f64,
    /// Mean cluster-level contrastive loss.
    pub cluster_loss: f64,
    /// Mean entropy penalty `2 log K - H(p_a) - H(p_b)`.
    pub entropy_penalty: f64,
    /// Seconds of the training steps (augmentation included, evaluation excluded).
    pub train_seconds: f64,
    /// NMI / ARI / ACC on the training set, if evaluated.
    pub scores: Option<ClusteringScores>,
    /// Images per predicted cluster, if evaluated.
    pub cluster_sizes: Option<Vec<usize>>,
}

/// The result of a training run (serialisable to JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CcTrainReport {
    /// The configuration used (with the normalisation actually applied).
    pub config: CcTrainConfig,
    /// Images in the training set.
    pub num_images: usize,
    /// Values in the model (parameters and BatchNorm running statistics).
    pub num_values: usize,
    /// Trainable parameters.
    pub num_parameters: usize,
    /// One record per epoch, including epochs restored from a checkpoint.
    pub epochs: Vec<EpochRecord>,
    /// The epoch a resumed run started after, if it resumed.
    pub resumed_after_epoch: Option<usize>,
    /// Steps taken in this run.
    pub steps: usize,
    /// Mean wall time of one step in this run, milliseconds.
    pub mean_step_ms: f64,
    /// Wall time of this run, seconds (steps, evaluation and checkpoints).
    pub wall_seconds: f64,
    /// Wall time of all epochs' steps, including those restored from a checkpoint, seconds.
    pub train_seconds: f64,
    /// Scores of the final model on the training set, when labels were given.
    pub final_scores: Option<ClusteringScores>,
}

/// Trains a CC model on `images` (values in `[0, 1]`), evaluating on `labels` when given.
///
/// Equivalent to [`train_cc_with`] with an observer that does nothing.
pub fn train_cc(
    config: &CcTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(CcModel, CcTrainReport)> {
    train_cc_with(config, images, labels, device, &mut |_| {})
}

struct CcStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    config: &'a CcTrainConfig,
}

impl TrainingStep<CcModel> for CcStep<'_> {
    fn loss(
        &mut self,
        model: &CcModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let b = batch.len();
        let x = two_views(self.images, batch, &self.config.augment, rng, device)?;
        let out = model.forward(x);
        let loss = cc_loss(
            out.instance.clone().narrow(0, 0, b),
            out.instance.narrow(0, b, b),
            out.clusters.clone().narrow(0, 0, b),
            out.clusters.narrow(0, b, b),
            self.config.instance_temperature,
            self.config.cluster_temperature,
            self.config.entropy_weight,
        );
        Ok(StepLoss {
            total: loss.total,
            parts: vec![
                ("instance", loss.instance),
                ("cluster", loss.cluster),
                ("entropy penalty", loss.entropy_penalty),
            ],
        })
    }

    fn evaluate(&mut self, model: &CcModel, device: &Device) -> Result<Option<Evaluation>> {
        self.labels
            .map(|l| Evaluation::of_clusters(model, self.images, Some(l), device))
            .transpose()
    }
}

impl EpochRecord {
    fn from_log(log: &EpochLog) -> Self {
        let part = |name: &str| {
            log.parts
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, v)| *v)
        };
        EpochRecord {
            epoch: log.epoch,
            steps: log.steps,
            loss: log.loss,
            instance_loss: part("instance"),
            cluster_loss: part("cluster"),
            entropy_penalty: part("entropy penalty"),
            train_seconds: log.train_seconds,
            scores: log.evaluation.as_ref().and_then(|e| e.scores),
            cluster_sizes: log
                .evaluation
                .as_ref()
                .and_then(|e| e.cluster_sizes.clone()),
        }
    }
}

/// Trains a CC model, calling `on_epoch` after every epoch.
///
/// Runs on the shared [`crate::runner`] on `device` with autodiff (added if `device` lacks it).
/// Every random choice comes from `config.run.seed`: the initial weights, and per epoch a `SeededRng`
/// derived from the seed and the epoch number for the shuffle and the augmentations (so a
/// resumed run sees the same batches). Incomplete last batches are dropped.
pub fn train_cc_with(
    config: &CcTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(CcModel, CcTrainReport)> {
    train_cc_from(None, config, images, labels, device, on_epoch)
}

/// Fine-tunes `model` with CC's own loss on `images` (labels, when given, only score it): the
/// training of [`train_cc_with`] started from `model`'s weights and architecture (the
/// config's `model` and `normalize_from_data` are ignored; its run, augmentation and loss
/// settings apply). Adversarial retraining uses it on a mix of clean and perturbed images.
pub fn finetune_cc(
    model: &CcModel,
    config: &CcTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(CcModel, CcTrainReport)> {
    train_cc_from(Some(model), config, images, labels, device, on_epoch)
}

fn train_cc_from(
    init: Option<&CcModel>,
    config: &CcTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(CcModel, CcTrainReport)> {
    let mut config = config.check_ref()?.clone();
    if let Some(m) = init {
        config.model = m.config().clone();
        config.normalize_from_data = false;
    }
    if images.value_box() != ValueBox::UNIT {
        return Err(ModelError::invalid(
            "images",
            "CC trains on images in [0, 1]",
        ));
    }
    let [n, c, h, w] = images.dims();
    if [c, h, w] != config.model.input_shape {
        return Err(ModelError::InputShape {
            expected: config.model.input_shape,
            actual: [c, h, w],
        });
    }
    if let Some(l) = labels
        && l.len() != n
    {
        return Err(ModelError::LabelCount {
            images: n,
            labels: l.len(),
        });
    }
    if config.normalize_from_data {
        let (mean, std) = channel_stats(images);
        config.model.mean = mean;
        config.model.std = std;
        config.model.check_ref()?;
    }
    let run = config.run.clone();
    let device = run.training_device(device);
    let model = match init {
        // `valid()` first: a model fresh from a training run holds non-leaf tensors.
        Some(m) => m.valid().to_device(&device).unfreeze().train(),
        None => CcModel::new(&config.model, config.run.seed, &device)?,
    };
    let mut fingerprint = serde_json::json!({
        "model": config.model,
        "augment": config.augment,
        "temperatures": [config.instance_temperature, config.cluster_temperature],
        "entropy_weight": config.entropy_weight,
    });
    if init.is_some() {
        // A fine-tuning run resumes only its own checkpoints, never a from-scratch run's.
        fingerprint["finetuned"] = serde_json::Value::Bool(true);
    }
    let mut step = CcStep {
        images,
        labels,
        config: &config,
    };
    let (model, report) = run_training(
        CHECKPOINT_SUBDIR,
        model,
        n,
        &run,
        fingerprint,
        &mut step,
        &device,
        &mut |log| on_epoch(&EpochRecord::from_log(log)),
    )?;
    let history: Vec<EpochRecord> = report.epochs.iter().map(EpochRecord::from_log).collect();
    let final_scores = match (report.final_scores(), labels) {
        (Some(s), _) => Some(s),
        (None, Some(l)) if config.run.eval_every > 0 => Some(model.evaluate(images, l, &device)?),
        _ => None,
    };
    let summary = TrainingSummary::of_run(
        &config.dataset,
        n,
        &config.run,
        report.train_seconds,
        final_scores,
    );
    let model = model.with_training_summary(summary);
    let report = CcTrainReport {
        num_images: n,
        num_values: model.num_params(),
        num_parameters: trainable_parameters(&config.model),
        epochs: history,
        resumed_after_epoch: report.resumed_after_epoch,
        steps: report.steps,
        mean_step_ms: report.mean_step_ms,
        wall_seconds: report.wall_seconds,
        train_seconds: report.train_seconds,
        final_scores,
        config,
    };
    Ok((model, report))
}

/// Number of trainable parameters of a CC model (BatchNorm running statistics excluded, as
/// PyTorch counts them).
pub fn trainable_parameters(config: &CcConfig) -> usize {
    let b = &config.backbone;
    let conv = |i: usize, o: usize, k: usize| i * o * k * k;
    let bn = |c: usize| 2 * c;
    let mut total = conv(b.in_channels, b.stem_width, 3) + bn(b.stem_width);
    let mut in_ch = b.stem_width;
    for (s, (&width, &blocks)) in b.widths.iter().zip(&b.blocks).enumerate() {
        for k in 0..blocks {
            let stride = if s > 0 && k == 0 { 2 } else { 1 };
            total += conv(in_ch, width, 3) + bn(width) + conv(width, width, 3) + bn(width);
            if stride != 1 || in_ch != width {
                total += conv(in_ch, width, 1) + bn(width);
            }
            in_ch = width;
        }
    }
    let lin = |i: usize, o: usize| i * o + o;
    let f = b.feature_dim();
    let hh = config.head_hidden;
    total + lin(f, hh) + lin(hh, config.instance_dim) + lin(f, hh) + lin(hh, config.num_clusters)
}

/// Per-channel mean and standard deviation of a batch.
pub fn channel_stats(images: &ImageBatch) -> (Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = images.dims();
    let hw = h * w;
    let mut sum = vec![0.0f64; c];
    let mut sq = vec![0.0f64; c];
    for (i, v) in images.data().iter().enumerate() {
        let ch = (i / hw) % c;
        sum[ch] += *v as f64;
        sq[ch] += (*v as f64) * (*v as f64);
    }
    let count = (n * hw) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
    let std: Vec<f32> = sq
        .iter()
        .zip(&sum)
        .map(|(q, s)| {
            let m = s / count;
            ((q / count - m * m).max(0.0).sqrt() as f32).max(1e-3)
        })
        .collect();
    (mean, std)
}
