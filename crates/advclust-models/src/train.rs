//! Seeded CC training on a host image set: augment, contrast, step, evaluate, checkpoint.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use advclust_core::{ImageBatch, ParamGuard, ValueBox, argmax_rows, tensor_to_vec};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::cc::{CcConfig, CcModel, TrainingSummary};
use crate::error::{ModelError, Result};
use crate::loss::cc_loss;

/// Name of the sub-directory of [`CcTrainConfig::checkpoint_dir`] that holds the latest
/// checkpoint (model, optimizer state, progress).
pub const CHECKPOINT_SUBDIR: &str = "checkpoint";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";

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
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step (each seen through two augmentations, so `2 * batch_size` per forward).
    pub batch_size: usize,
    /// Adam learning rate (constant).
    pub learning_rate: f64,
    /// Adam weight decay (0 for none, as in CC).
    pub weight_decay: f64,
    /// Adam epsilon (1e-8 as in PyTorch; burn's default is 1e-5).
    pub adam_epsilon: f32,
    /// Temperature of the instance-level NT-Xent (0.5 in CC).
    pub instance_temperature: f64,
    /// Temperature of the cluster-level NT-Xent (1.0 in CC).
    pub cluster_temperature: f64,
    /// Weight of the entropy term `log K - H` (1.0 in CC).
    pub entropy_weight: f64,
    /// The augmentations producing the two views.
    pub augment: AugmentConfig,
    /// Seed of everything random: weights, shuffles, augmentations, `device.seed`.
    pub seed: u64,
    /// Replace the model's `mean` / `std` by the training set's per-channel statistics.
    pub normalize_from_data: bool,
    /// Evaluate NMI / ARI / ACC on the training set every this many epochs (and after the
    /// last); 0 never. Needs labels.
    pub eval_every: usize,
    /// Stop each epoch after this many steps (for timing runs); `None` for full epochs.
    pub max_steps_per_epoch: Option<usize>,
    /// Directory for checkpoints (`<dir>/checkpoint/`); `None` for no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Write a checkpoint every this many epochs (and after the last).
    pub checkpoint_every: usize,
    /// Continue from the checkpoint in `checkpoint_dir` if there is one.
    pub resume: bool,
    /// Draw a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Print one line per epoch (loss, and scores when evaluated) to stderr.
    pub log_epochs: bool,
}

impl CcTrainConfig {
    /// Defaults of the CC paper where they apply: 100 epochs, batch 256, Adam lr 3e-4 without
    /// weight decay, temperatures 0.5 / 1.0, entropy weight 1, augmentations for the number of
    /// channels, normalisation from the data, evaluation every epoch, no checkpoints.
    pub fn new(model: CcConfig) -> Self {
        let augment = AugmentConfig::for_channels(model.input_shape[0]);
        CcTrainConfig {
            model,
            dataset: "unnamed".to_string(),
            epochs: 100,
            batch_size: 256,
            learning_rate: 3e-4,
            weight_decay: 0.0,
            adam_epsilon: 1e-8,
            instance_temperature: 0.5,
            cluster_temperature: 1.0,
            entropy_weight: 1.0,
            augment,
            seed: 0,
            normalize_from_data: true,
            eval_every: 1,
            max_steps_per_epoch: None,
            checkpoint_dir: None,
            checkpoint_every: 10,
            resume: false,
            progress: true,
            log_epochs: true,
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
        positive("learning_rate", self.learning_rate)?;
        positive("instance_temperature", self.instance_temperature)?;
        positive("cluster_temperature", self.cluster_temperature)?;
        positive("adam_epsilon", self.adam_epsilon as f64)?;
        if self.instance_temperature < 0.05 || self.cluster_temperature < 0.05 {
            return Err(ModelError::invalid(
                "temperature",
                "temperatures below 0.05 overflow the exponentials",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ModelError::invalid(
                "weight_decay",
                "must be finite and >= 0",
            ));
        }
        if !(self.entropy_weight.is_finite() && self.entropy_weight >= 0.0) {
            return Err(ModelError::invalid(
                "entropy_weight",
                "must be finite and >= 0",
            ));
        }
        if self.epochs == 0 {
            return Err(ModelError::invalid("epochs", "must be at least 1"));
        }
        if self.batch_size < 2 {
            return Err(ModelError::invalid(
                "batch_size",
                "need at least 2 images per batch",
            ));
        }
        if self.max_steps_per_epoch == Some(0) {
            return Err(ModelError::invalid(
                "max_steps_per_epoch",
                "must be at least 1",
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(ModelError::invalid(
                "checkpoint_every",
                "must be at least 1",
            ));
        }
        if self.resume && self.checkpoint_dir.is_none() {
            return Err(ModelError::invalid("resume", "needs a checkpoint_dir"));
        }
        Ok(())
    }
}

impl ParamGuard for CcTrainConfig {
    type Checked = CcTrainConfig;
    type Error = ModelError;

    fn check_ref(&self) -> Result<&CcTrainConfig> {
        self.validate()?;
        Ok(self)
    }

    fn check(self) -> Result<CcTrainConfig> {
        self.validate()?;
        Ok(self)
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    epoch: usize,
    seed: u64,
    history: Vec<EpochRecord>,
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

/// Trains a CC model, calling `on_epoch` after every epoch.
///
/// Runs on `device` with autodiff (added if `device` lacks it). Every random choice comes from
/// `config.seed`: the initial weights, and per epoch a `StdRng` derived from the seed and the
/// epoch number for the shuffle and the augmentations (so a resumed run sees the same batches).
/// Incomplete last batches are dropped.
pub fn train_cc_with(
    config: &CcTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(CcModel, CcTrainReport)> {
    let start = Instant::now();
    let mut config = config.check_ref()?.clone();
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
    if n < config.batch_size {
        return Err(ModelError::TooFewImages {
            available: n,
            batch_size: config.batch_size,
        });
    }
    if config.normalize_from_data {
        let (mean, std) = channel_stats(images);
        config.model.mean = mean;
        config.model.std = std;
        config.model.check_ref()?;
    }

    let device = if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    device.seed(config.seed);
    let mut model = CcModel::new(&config.model, config.seed, &device)?;
    let mut optim = AdamConfig::new()
        .with_epsilon(config.adam_epsilon)
        .with_weight_decay(
            (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32)),
        )
        .init();

    let mut history: Vec<EpochRecord> = Vec::new();
    let mut resumed_after_epoch = None;
    let ckpt_dir = config
        .checkpoint_dir
        .as_ref()
        .map(|d| d.join(CHECKPOINT_SUBDIR));
    if config.resume
        && let Some(dir) = &ckpt_dir
        && dir.join(STATE_FILE).exists()
    {
        let (m, o, state) = load_checkpoint(dir, &config, &device)?;
        model = m;
        optim = optim.load_record(o);
        resumed_after_epoch = Some(state.epoch);
        history = state.history;
    }
    let first_epoch = resumed_after_epoch.map_or(1, |e| e + 1);

    let batch = config.batch_size;
    let steps_per_epoch = (n / batch).min(config.max_steps_per_epoch.unwrap_or(usize::MAX));
    let remaining_epochs = (config.epochs + 1).saturating_sub(first_epoch);
    let bar = progress_bar(&config, (remaining_epochs * steps_per_epoch) as u64);
    let log = |line: String| {
        if config.log_epochs {
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    };
    if let Some(e) = resumed_after_epoch {
        log(format!("resumed from checkpoint after epoch {e}"));
    }

    let len = c * h * w;
    let mut steps_run = 0usize;
    let mut step_seconds = 0.0f64;
    for epoch in first_epoch..=config.epochs {
        let epoch_start = Instant::now();
        let mut rng = epoch_rng(config.seed, epoch as u64);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut sums = [0.0f64; 4];
        for step in 0..steps_per_epoch {
            let idx = &order[step * batch..(step + 1) * batch];
            let mut host = Vec::with_capacity(batch * len);
            for &i in idx {
                host.extend_from_slice(&images.data()[i * len..(i + 1) * len]);
            }
            let dims = [batch, c, h, w];
            let mut views = augment_batch(&host, dims, &config.augment, &mut rng)?;
            views.extend(augment_batch(&host, dims, &config.augment, &mut rng)?);
            let x = Tensor::<4>::from_data(TensorData::new(views, [2 * batch, c, h, w]), &device);
            let out = model.forward(x);
            let loss = cc_loss(
                out.instance.clone().narrow(0, 0, batch),
                out.instance.narrow(0, batch, batch),
                out.clusters.clone().narrow(0, 0, batch),
                out.clusters.narrow(0, batch, batch),
                config.instance_temperature,
                config.cluster_temperature,
                config.entropy_weight,
            );
            let parts = Tensor::cat(
                vec![
                    loss.total.clone().detach(),
                    loss.instance.detach(),
                    loss.cluster.detach(),
                    loss.entropy_penalty.detach(),
                ],
                0,
            );
            let parts = tensor_to_vec(parts.into_data())?;
            if !parts[0].is_finite() {
                return Err(ModelError::Diverged {
                    epoch,
                    step,
                    loss: parts[0],
                });
            }
            for (s, p) in sums.iter_mut().zip(&parts) {
                *s += *p as f64;
            }
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
            steps_run += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {epoch} loss {:.4}", parts[0]));
        }
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        step_seconds += train_seconds;
        let steps = steps_per_epoch.max(1) as f64;
        let mut record = EpochRecord {
            epoch,
            steps: steps_per_epoch,
            loss: sums[0] / steps,
            instance_loss: sums[1] / steps,
            cluster_loss: sums[2] / steps,
            entropy_penalty: sums[3] / steps,
            train_seconds,
            scores: None,
            cluster_sizes: None,
        };
        let evaluate =
            config.eval_every > 0 && (epoch % config.eval_every == 0 || epoch == config.epochs);
        if let (true, Some(labels)) = (evaluate, labels) {
            let (scores, sizes) = evaluate_model(&model, images, labels, &device)?;
            record.scores = Some(scores);
            record.cluster_sizes = Some(sizes);
        }
        log(epoch_line(&record, config.epochs));
        history.push(record);
        on_epoch(history.last().expect("just pushed"));
        if let Some(dir) = &ckpt_dir
            && (epoch % config.checkpoint_every == 0 || epoch == config.epochs)
        {
            save_checkpoint(dir, &model, &optim, epoch, &config, &history)?;
        }
    }
    bar.finish_and_clear();

    let final_scores = history.last().and_then(|r| r.scores);
    let final_scores = match (final_scores, labels) {
        (Some(s), _) => Some(s),
        (None, Some(l)) if config.eval_every > 0 => {
            Some(evaluate_model(&model, images, l, &device)?.0)
        }
        _ => None,
    };
    let train_seconds: f64 = history.iter().map(|r| r.train_seconds).sum();
    let summary = TrainingSummary {
        dataset: config.dataset.clone(),
        num_images: n,
        epochs: config.epochs,
        batch_size: config.batch_size,
        seed: config.seed,
        train_seconds,
        scores: final_scores,
        command: None,
    };
    let model = model.with_training_summary(summary);
    let report = CcTrainReport {
        num_images: n,
        num_values: model.num_params(),
        num_parameters: trainable_parameters(&config.model),
        epochs: history,
        resumed_after_epoch,
        steps: steps_run,
        mean_step_ms: if steps_run > 0 {
            1000.0 * step_seconds / steps_run as f64
        } else {
            0.0
        },
        wall_seconds: start.elapsed().as_secs_f64(),
        train_seconds,
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

fn progress_bar(config: &CcTrainConfig, total: u64) -> ProgressBar {
    if config.progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed_precise} < {eta_precise}] {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    }
}

fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let mut line = format!(
        "epoch {:>3}/{epochs}  loss {:.4} (instance {:.4}, cluster {:.4}, entropy penalty {:.4})  {:.1} s",
        r.epoch, r.loss, r.instance_loss, r.cluster_loss, r.entropy_penalty, r.train_seconds
    );
    if let Some(s) = r.scores {
        line += &format!("  NMI {:.4} ARI {:.4} ACC {:.4}", s.nmi, s.ari, s.acc);
    }
    if let Some(sizes) = &r.cluster_sizes {
        line += &format!("  sizes {sizes:?}");
    }
    line
}

fn evaluate_model(
    model: &CcModel,
    images: &ImageBatch,
    labels: &[usize],
    device: &Device,
) -> Result<(ClusteringScores, Vec<usize>)> {
    let k = model.config().num_clusters;
    let m = model.memberships_host(images, 500, device)?;
    let pred = argmax_rows(&m, k);
    let mut sizes = vec![0usize; k];
    pred.iter().for_each(|&p| sizes[p] += 1);
    Ok((advclust_metrics::clustering_scores(labels, &pred)?, sizes))
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

/// The `StdRng` of epoch `epoch` of a run seeded with `seed` (SplitMix64 of both).
fn epoch_rng(seed: u64, epoch: u64) -> StdRng {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

fn save_checkpoint(
    dir: &Path,
    model: &CcModel,
    optim: &ModuleOptimizer,
    epoch: usize,
    config: &CcTrainConfig,
    history: &[EpochRecord],
) -> Result<()> {
    model.save(dir)?;
    let path = dir.join(OPTIMIZER_FILE);
    optim
        .to_record()
        .save(&path)
        .map_err(|e| ModelError::Save(format!("{}: {e}", path.display())))?;
    let state = CheckpointState {
        epoch,
        seed: config.seed,
        history: history.to_vec(),
    };
    let path = dir.join(STATE_FILE);
    let json = serde_json::to_string_pretty(&state).map_err(|e| ModelError::Save(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| ModelError::io(&path, e))
}

fn load_checkpoint(
    dir: &Path,
    config: &CcTrainConfig,
    device: &Device,
) -> Result<(CcModel, OptimizerRecord, CheckpointState)> {
    let path = dir.join(STATE_FILE);
    let bytes = crate::cc::read_file(&path)?;
    let state: CheckpointState =
        serde_json::from_slice(&bytes).map_err(|e| ModelError::BadDescription {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
    let model = CcModel::load(dir, device)?;
    if model.config().num_clusters != config.model.num_clusters {
        return Err(ModelError::ClusterCountMismatch {
            expected: config.model.num_clusters,
            actual: model.config().num_clusters,
        });
    }
    if model.config() != &config.model || state.seed != config.seed {
        return Err(ModelError::ArchitectureMismatch {
            origin: dir.display().to_string(),
            message: "the checkpoint was written by a run with another model configuration or seed"
                .into(),
        });
    }
    let path = dir.join(OPTIMIZER_FILE);
    if !path.exists() {
        return Err(ModelError::MissingCheckpoint { path });
    }
    let optim = OptimizerRecord::load(&path).map_err(|e| ModelError::CorruptCheckpoint {
        origin: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok((model, optim, state))
}
