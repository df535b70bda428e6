//! One training runner for every victim and pretext: a per-model [`TrainingStep`] (a batch of
//! indices in, a loss out), an observer called after every epoch, an atomic [`Checkpointer`],
//! and the stopping rules (epoch count, a diverged loss).
//!
//! The runner owns the loop: per epoch a `SeededRng` derived from the seed and the epoch number
//! shuffles the indices and is handed to the step for its augmentations, so a run resumed from
//! a checkpoint sees exactly the batches an uninterrupted run would. Incomplete last batches
//! are dropped. Checkpoints are written to a temporary directory and renamed into place, so a
//! kill at any moment leaves the previous checkpoint or the new one, never a mix.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use advclust_core::SeededRng;
use advclust_core::tensor_to_vec;
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::artifact::{self, load_weights, read_file_limited, weights_bytes};
use crate::error::{ModelError, Result};

/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate at every step.
    #[default]
    Constant,
    /// Cosine annealing from the rate at the first step to 0 after the last (per step, no
    /// restarts), as PyTorch's `CosineAnnealingLR` over the whole run.
    Cosine,
}

/// The run settings shared by every training stage (the model's own hyperparameters live in
/// its step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Items (images) per step.
    pub batch_size: usize,
    /// Adam learning rate (the peak of the schedule).
    pub learning_rate: f64,
    /// How the learning rate moves over the run (constant unless a victim's recipe says).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Adam weight decay (L2, as PyTorch's `Adam(weight_decay=...)`); 0 for none.
    pub weight_decay: f64,
    /// Adam epsilon (1e-8 as in PyTorch; burn's default is 1e-5).
    pub adam_epsilon: f32,
    /// Seed of every random choice (shuffles, augmentations, `device.seed`).
    pub seed: u64,
    /// Evaluate every this many epochs (and after the last); 0 never.
    pub eval_every: usize,
    /// Stop each epoch after this many steps (timing runs); `None` for full epochs.
    pub max_steps_per_epoch: Option<usize>,
    /// Checkpoint directory; `None` for no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Write a checkpoint every this many epochs (and after the last).
    pub checkpoint_every: usize,
    /// Continue from the checkpoint in `checkpoint_dir` if there is one.
    pub resume: bool,
    /// Draw a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Print one line per epoch to stderr.
    pub log_epochs: bool,
}

impl RunConfig {
    /// `epochs` passes in batches of `batch_size` with Adam at `learning_rate`, no weight
    /// decay, seed 0, evaluation every 5 epochs, no checkpoints, a progress bar and epoch lines.
    pub fn new(epochs: usize, batch_size: usize, learning_rate: f64) -> Self {
        RunConfig {
            epochs,
            batch_size,
            learning_rate,
            lr_schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            adam_epsilon: 1e-8,
            seed: 0,
            eval_every: 5,
            max_steps_per_epoch: None,
            checkpoint_dir: None,
            checkpoint_every: 5,
            resume: false,
            progress: true,
            log_epochs: true,
        }
    }

    /// The learning rate of step `step` (0-based) of epoch `epoch` (1-based), of
    /// `steps_per_epoch` steps each: a pure function of the position, so a resumed run
    /// follows the schedule of an uninterrupted one (epoch 0 reads as the first).
    pub fn learning_rate_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::Cosine => {
                let total = self.epochs.saturating_mul(steps_per_epoch).max(1) as f64;
                let done = epoch
                    .saturating_sub(1)
                    .saturating_mul(steps_per_epoch)
                    .saturating_add(step) as f64;
                0.5 * self.learning_rate * (1.0 + (std::f64::consts::PI * done / total).cos())
            }
        }
    }

    /// Checks every field (called by [`run_training`] before any work).
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ModelError::invalid(
                "learning_rate",
                format!("must be finite and positive, got {}", self.learning_rate),
            ));
        }
        if !(self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0) {
            return Err(ModelError::invalid(
                "adam_epsilon",
                "must be finite and positive",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ModelError::invalid(
                "weight_decay",
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

    /// The autodiff device of a run, seeded with the run's seed.
    pub fn training_device(&self, device: &Device) -> Device {
        let device = if device.is_autodiff() {
            device.clone()
        } else {
            device.clone().autodiff()
        };
        device.seed(self.seed);
        device
    }
}

/// The loss of one step: the scalar minimised and named parts for the log (all `[1]`).
#[derive(Debug, Clone)]
pub struct StepLoss {
    /// What is minimised (on the autodiff graph).
    pub total: Tensor<1>,
    /// Named parts, reported as epoch means.
    pub parts: Vec<(&'static str, Tensor<1>)>,
}

/// What an evaluation found (labels only ever reach the scores).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// NMI / ARI / ACC, when labels were given.
    pub scores: Option<ClusteringScores>,
    /// Images per predicted cluster.
    pub cluster_sizes: Option<Vec<usize>>,
    /// Other named measurements (e.g. neighbour agreement).
    pub metrics: Vec<(String, f64)>,
}

impl Evaluation {
    /// The predicted clusters' sizes and, given labels, their scores (one pass over `images`).
    pub fn of_clusters<M: crate::victim::ClusterModelExt>(
        model: &M,
        images: &advclust_core::ImageBatch,
        labels: Option<&[usize]>,
        device: &Device,
    ) -> Result<Self> {
        let m = model.memberships_host(images, 500, device)?;
        Self::of_memberships(&m, model.num_clusters(), labels)
    }

    /// The same from memberships already computed (row-major `[N, k]`).
    pub fn of_memberships(memberships: &[f32], k: usize, labels: Option<&[usize]>) -> Result<Self> {
        let pred = advclust_core::argmax_rows(memberships, k);
        let mut sizes = vec![0usize; k];
        pred.iter().for_each(|&p| sizes[p] += 1);
        let scores = match labels {
            Some(l) if l.len() != pred.len() => {
                return Err(ModelError::LabelCount {
                    images: pred.len(),
                    labels: l.len(),
                });
            }
            Some(l) => Some(advclust_metrics::clustering_scores(l, &pred)?),
            None => None,
        };
        Ok(Evaluation {
            scores,
            cluster_sizes: Some(sizes),
            metrics: Vec::new(),
        })
    }
}

/// One model's training step: the runner calls [`TrainingStep::loss`] once per batch.
pub trait TrainingStep<M> {
    /// The loss of the items `batch` (indices into the training set); draw every random choice
    /// from `rng`.
    fn loss(
        &mut self,
        model: &M,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss>;

    /// Evaluates the model (called every `eval_every` epochs); `None` when there is nothing to
    /// measure.
    fn evaluate(&mut self, _model: &M, _device: &Device) -> Result<Option<Evaluation>> {
        Ok(None)
    }

    /// Called before every epoch's steps with the model as it stands, the first epoch of a
    /// resumed run included (so state derived from the model, e.g. a neighbour table, is
    /// rebuilt exactly as an uninterrupted run built it).
    fn begin_epoch(&mut self, _model: &M, _epoch: usize, _device: &Device) -> Result<()> {
        Ok(())
    }

    /// Called after every optimiser step with the updated model; returns the model the next
    /// step uses. State the optimiser does not own (a momentum teacher, a queue of keys) lives
    /// in the model, so that checkpoints hold it and a resumed run equals an uninterrupted one.
    fn after_step(&mut self, model: M, _device: &Device) -> Result<M> {
        Ok(model)
    }

    /// Called after every epoch's steps, before its evaluation and checkpoint (e.g. an M-step
    /// that re-estimates prototypes from the whole set).
    fn end_epoch(&mut self, model: M, _epoch: usize, _device: &Device) -> Result<M> {
        Ok(model)
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Steps taken.
    pub steps: usize,
    /// Mean total loss over the steps.
    pub loss: f64,
    /// Mean of each named loss part.
    pub parts: Vec<(String, f64)>,
    /// Seconds of the steps (evaluation excluded).
    pub train_seconds: f64,
    /// The evaluation, if one ran.
    pub evaluation: Option<Evaluation>,
}

/// The result of one training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The stage's name (`simclr`, `scan`, `selflabel`, ...).
    pub stage: String,
    /// The run settings.
    pub config: RunConfig,
    /// Items in the training set.
    pub num_items: usize,
    /// One log per epoch, including epochs restored from a checkpoint.
    pub epochs: Vec<EpochLog>,
    /// The epoch a resumed run started after, if it resumed.
    pub resumed_after_epoch: Option<usize>,
    /// Steps taken in this run.
    pub steps: usize,
    /// Mean wall time of one step in this run, milliseconds.
    pub mean_step_ms: f64,
    /// Wall time of this run, seconds.
    pub wall_seconds: f64,
    /// Seconds of all epochs' steps, restored ones included.
    pub train_seconds: f64,
}

impl RunReport {
    /// The last evaluation's scores, if any.
    pub fn final_scores(&self) -> Option<ClusteringScores> {
        self.epochs
            .iter()
            .rev()
            .find_map(|e| e.evaluation.as_ref().and_then(|v| v.scores))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    stage: String,
    epoch: usize,
    seed: u64,
    fingerprint: serde_json::Value,
    history: Vec<EpochLog>,
}

const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";

/// Writes and reads a stage's checkpoint (weights, optimizer state, progress) atomically.
///
/// The checkpoint lives in `<dir>/<stage>/`. A new one is written into a temporary sibling
/// directory, the old one is renamed aside, the new one renamed into place, and only then is
/// the old one removed; a reader that finds no complete checkpoint falls back to the one set
/// aside.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
}

impl Checkpointer {
    /// A checkpointer for stage `stage` under `root`.
    pub fn new(root: &Path, stage: &str) -> Self {
        Checkpointer {
            dir: root.join(stage),
        }
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn save<M: Module>(
        &self,
        model: &M,
        optim: &ModuleOptimizer,
        state: &CheckpointState,
    ) -> Result<()> {
        let optimizer = optim
            .to_record()
            .into_bytes()
            .map_err(|e| ModelError::Save(format!("optimizer state: {e}")))?;
        let state =
            serde_json::to_vec_pretty(state).map_err(|e| ModelError::Save(e.to_string()))?;
        advclust_core::files::replace_dir(
            &self.dir,
            &[
                (MODEL_FILE, &weights_bytes(model)?),
                (OPTIMIZER_FILE, &optimizer),
                (STATE_FILE, &state),
            ],
        )
        .map_err(|e| ModelError::io(&self.dir, e))
    }

    /// The directory holding the newest complete checkpoint, if any.
    fn complete(&self) -> Option<PathBuf> {
        advclust_core::files::complete_dir(&self.dir, &[MODEL_FILE, OPTIMIZER_FILE, STATE_FILE])
    }

    fn load<M: Module>(
        &self,
        model: M,
        dir: &Path,
    ) -> Result<(M, OptimizerRecord, CheckpointState)> {
        let state: CheckpointState = artifact::read_json(&dir.join(STATE_FILE))?;
        let path = dir.join(MODEL_FILE);
        let bytes = read_file_limited(&path, artifact::MAX_WEIGHTS_BYTES)?;
        let model = load_weights(model, bytes, &path.display().to_string())?;
        let path = dir.join(OPTIMIZER_FILE);
        let bytes = read_file_limited(&path, artifact::MAX_WEIGHTS_BYTES)?;
        let optim = OptimizerRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| ModelError::CorruptCheckpoint {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok((model, optim, state))
    }
}

/// Trains `model` (built on `config.training_device(..)`) for one stage.
///
/// `fingerprint` identifies the stage's hyperparameters: resuming from a checkpoint written
/// with another fingerprint, stage or seed is an error, not a silent mix. `observer` is called
/// after every epoch. A NaN or infinite loss stops the run with [`ModelError::Diverged`],
/// leaving the last checkpoint as it was.
#[allow(clippy::too_many_arguments)]
pub fn run_training<M: Module>(
    stage: &str,
    mut model: M,
    num_items: usize,
    config: &RunConfig,
    fingerprint: serde_json::Value,
    step: &mut dyn TrainingStep<M>,
    device: &Device,
    observer: &mut dyn FnMut(&EpochLog),
) -> Result<(M, RunReport)> {
    let start = Instant::now();
    config.validate()?;
    if num_items < config.batch_size {
        return Err(ModelError::TooFewImages {
            available: num_items,
            batch_size: config.batch_size,
        });
    }
    let mut optim = AdamConfig::new()
        .with_epsilon(config.adam_epsilon)
        .with_weight_decay(
            (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32)),
        )
        .init();
    let checkpointer = config
        .checkpoint_dir
        .as_ref()
        .map(|d| Checkpointer::new(d, stage));
    let mut history: Vec<EpochLog> = Vec::new();
    let mut resumed_after_epoch = None;
    if config.resume
        && let Some(ck) = &checkpointer
    {
        // `--resume` with nothing to resume is an error, not a silent fresh start.
        let dir = ck.complete().ok_or_else(|| ModelError::MissingCheckpoint {
            path: ck.dir().to_path_buf(),
        })?;
        let (m, o, state) = ck.load(model.clone(), &dir)?;
        if state.stage != stage || state.seed != config.seed || state.fingerprint != fingerprint {
            return Err(ModelError::ArchitectureMismatch {
                origin: dir.display().to_string(),
                message: format!(
                    "the checkpoint was written by another run (stage {:?}, seed {}, other settings)",
                    state.stage, state.seed
                ),
            });
        }
        model = m;
        optim = optim.load_record(o);
        resumed_after_epoch = Some(state.epoch);
        history = state.history;
    }
    let first_epoch = resumed_after_epoch.map_or(1, |e| e + 1);
    let batch = config.batch_size;
    let steps_per_epoch = (num_items / batch).min(config.max_steps_per_epoch.unwrap_or(usize::MAX));
    let remaining = (config.epochs + 1).saturating_sub(first_epoch);
    let bar = progress_bar(config, (remaining * steps_per_epoch) as u64);
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
        log(format!("{stage}: resumed from checkpoint after epoch {e}"));
    }
    let mut steps_run = 0usize;
    let mut step_seconds = 0.0f64;
    for epoch in first_epoch..=config.epochs {
        step.begin_epoch(&model, epoch, device)?;
        let epoch_start = Instant::now();
        let mut rng = epoch_rng(config.seed, epoch as u64);
        let mut order: Vec<usize> = (0..num_items).collect();
        order.shuffle(&mut rng);
        let mut total = 0.0f64;
        let mut part_names: Vec<&'static str> = Vec::new();
        let mut part_sums: Vec<f64> = Vec::new();
        for s in 0..steps_per_epoch {
            let idx = &order[s * batch..(s + 1) * batch];
            let loss = step.loss(&model, idx, &mut rng, device)?;
            let mut scalars = vec![loss.total.clone().detach()];
            scalars.extend(loss.parts.iter().map(|(_, t)| t.clone().detach()));
            let values = tensor_to_vec(Tensor::cat(scalars, 0).into_data())?;
            if !values[0].is_finite() {
                return Err(ModelError::Diverged {
                    epoch,
                    step: s,
                    loss: values[0],
                });
            }
            total += values[0] as f64;
            if part_names.is_empty() {
                part_names = loss.parts.iter().map(|(n, _)| *n).collect();
                part_sums = vec![0.0; part_names.len()];
            }
            for (sum, v) in part_sums.iter_mut().zip(&values[1..]) {
                *sum += *v as f64;
            }
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            let lr = config.learning_rate_at(epoch, s, steps_per_epoch);
            model = optim.step(lr, model, grads);
            model = step.after_step(model, device)?;
            steps_run += 1;
            bar.inc(1);
            bar.set_message(format!("{stage} epoch {epoch} loss {:.4}", values[0]));
        }
        model = step.end_epoch(model, epoch, device)?;
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        step_seconds += train_seconds;
        let steps = steps_per_epoch.max(1) as f64;
        let evaluate =
            config.eval_every > 0 && (epoch % config.eval_every == 0 || epoch == config.epochs);
        let evaluation = if evaluate {
            step.evaluate(&model, device)?
        } else {
            None
        };
        let record = EpochLog {
            epoch,
            steps: steps_per_epoch,
            loss: total / steps,
            parts: part_names
                .iter()
                .zip(&part_sums)
                .map(|(n, s)| (n.to_string(), s / steps))
                .collect(),
            train_seconds,
            evaluation,
        };
        log(epoch_line(stage, &record, config.epochs));
        history.push(record);
        observer(history.last().expect("just pushed"));
        if let Some(ck) = &checkpointer
            && (epoch % config.checkpoint_every == 0 || epoch == config.epochs)
        {
            let state = CheckpointState {
                stage: stage.to_string(),
                epoch,
                seed: config.seed,
                fingerprint: fingerprint.clone(),
                history: history.clone(),
            };
            ck.save(&model, &optim, &state)?;
        }
    }
    bar.finish_and_clear();
    let train_seconds = history.iter().map(|r| r.train_seconds).sum();
    let report = RunReport {
        stage: stage.to_string(),
        config: config.clone(),
        num_items,
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
    };
    Ok((model, report))
}

fn progress_bar(config: &RunConfig, total: u64) -> ProgressBar {
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

fn epoch_line(stage: &str, r: &EpochLog, epochs: usize) -> String {
    let mut line = format!("{stage} epoch {:>3}/{epochs}  loss {:.4}", r.epoch, r.loss);
    if !r.parts.is_empty() {
        let parts: Vec<String> = r.parts.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
        line += &format!(" ({})", parts.join(", "));
    }
    line += &format!("  {:.1} s", r.train_seconds);
    if let Some(e) = &r.evaluation {
        if let Some(s) = e.scores {
            line += &format!("  NMI {:.4} ARI {:.4} ACC {:.4}", s.nmi, s.ari, s.acc);
        }
        for (n, v) in &e.metrics {
            line += &format!("  {n} {v:.4}");
        }
        if let Some(sizes) = &e.cluster_sizes {
            line += &format!("  sizes {sizes:?}");
        }
    }
    line
}

/// The `SeededRng` of epoch `epoch` of a run seeded with `seed` (SplitMix64 of both).
pub fn epoch_rng(seed: u64, epoch: u64) -> SeededRng {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    SeededRng::seed_from_u64(z ^ (z >> 31))
}

/// Gathers the images `idx` of a host batch into one contiguous `Vec` (NCHW).
pub fn gather_images(data: &[f32], image_len: usize, idx: &[usize]) -> Vec<f32> {
    let mut host = Vec::with_capacity(idx.len() * image_len);
    for &i in idx {
        host.extend_from_slice(&data[i * image_len..(i + 1) * image_len]);
    }
    host
}

/// Two augmented views of the images `idx` of `images`, stacked as one `[2B, C, H, W]` tensor on
/// `device` (view 1 of every image, then view 2; each drawn from `rng` in that order).
pub fn two_views(
    images: &advclust_core::ImageBatch,
    idx: &[usize],
    augment: &crate::augment::AugmentConfig,
    rng: &mut SeededRng,
    device: &Device,
) -> Result<Tensor<4>> {
    let [_, c, h, w] = images.dims();
    let b = idx.len();
    let host = gather_images(images.data(), c * h * w, idx);
    let dims = [b, c, h, w];
    let mut views = crate::augment::augment_batch(&host, dims, augment, rng)?;
    views.extend(crate::augment::augment_batch(&host, dims, augment, rng)?);
    Ok(Tensor::from_data(
        burn::tensor::TensorData::new(views, [2 * b, c, h, w]),
        device,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cosine_schedule_falls_from_the_rate_to_zero_over_the_run() {
        let mut run = RunConfig::new(4, 8, 1e-3);
        assert_eq!(run.learning_rate_at(3, 5, 10), 1e-3);
        run.lr_schedule = LrSchedule::Cosine;
        let rates: Vec<f64> = (1..=4)
            .flat_map(|e| (0..10).map(move |s| (e, s)))
            .map(|(e, s)| run.learning_rate_at(e, s, 10))
            .collect();
        assert_eq!(rates[0], 1e-3);
        assert!((rates[20] - 5e-4).abs() < 1e-12, "{}", rates[20]);
        assert!(rates.windows(2).all(|w| w[1] < w[0]));
        assert!(rates[39] > 0.0 && rates[39] < 1e-5);
        // A saved run of before the schedule existed reads as a constant rate.
        let mut old = serde_json::to_value(RunConfig::new(4, 8, 1e-3)).unwrap();
        old.as_object_mut().unwrap().remove("lr_schedule");
        let old: RunConfig = serde_json::from_value(old).unwrap();
        assert_eq!(old.lr_schedule, LrSchedule::Constant);
    }
}
