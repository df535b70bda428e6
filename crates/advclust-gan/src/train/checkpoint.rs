//! Checkpoints of an attack being trained, and resuming from them.
//!
//! A checkpoint holds everything the epoch loop needs to continue exactly as an uninterrupted
//! run would: both networks, both Adam states, the learning-rate factor, the epoch's order and
//! position, the shuffle and estimator RNG states, the running sums of the epoch, the plateau
//! detector, the query ledger's counts, the cached clean memberships and time prior of a
//! query-only run, the report so far (curves included) and the generator snapshots taken. It
//! is written as one directory with [`advclust_core::files::replace_dir`], so a kill at any
//! moment leaves the previous checkpoint or the new one. A run resumed from it gives the same
//! report (wall times aside) and generator as one that was never stopped.

use std::path::{Path, PathBuf};

use advclust_core::RngState;
use advclust_core::files::{complete_dir, replace_dir};
use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::trainer::{EpochAcc, Plateau, Snapshots};
use super::*;
use crate::attack::{load_module_bytes, module_bytes};

/// Where an attack run writes its checkpoints, how often, and whether it continues from one.
///
/// ```
/// use advclust_gan::CheckpointPolicy;
/// let policy = CheckpointPolicy::new("runs/x.checkpoint").every_steps(5).resume(true);
/// assert_eq!(policy.every_steps, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// The checkpoint directory (replaced as a whole at every checkpoint; left in place when
    /// training ends, holding the finished state, for the caller to remove once the run's
    /// results are safe).
    pub dir: PathBuf,
    /// A checkpoint after every this many training steps (at least 1), and one when training
    /// ends.
    pub every_steps: u64,
    /// Continue from the checkpoint in `dir`: [`AttackError::NothingToResume`] when there is
    /// none, [`AttackError::Incompatible`] when it was written by another run.
    pub resume: bool,
}

impl CheckpointPolicy {
    /// Checkpoints in `dir` every 10 steps, starting afresh.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointPolicy {
            dir: dir.into(),
            every_steps: 10,
            resume: false,
        }
    }

    /// A checkpoint every `steps` steps (0 is taken as 1).
    pub fn every_steps(mut self, steps: u64) -> Self {
        self.every_steps = steps.max(1);
        self
    }

    /// Whether to continue from the checkpoint in the directory.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// True when the directory holds a complete checkpoint to resume from.
    pub fn has_checkpoint(&self) -> bool {
        complete_dir(&self.dir, &REQUIRED).is_some()
    }
}

const FORMAT: &str = "advclust-attack-checkpoint";
const VERSION: u32 = 1;
const STATE_FILE: &str = "state.json";
const GENERATOR_FILE: &str = "generator.bpk";
const DISCRIMINATOR_FILE: &str = "discriminator.bpk";
const OPT_G_FILE: &str = "optimizer-generator.bpk";
const OPT_D_FILE: &str = "optimizer-discriminator.bpk";
const ORACLE_FILE: &str = "oracle.bin";
const REQUIRED: [&str; 6] = [
    STATE_FILE,
    GENERATOR_FILE,
    DISCRIMINATOR_FILE,
    OPT_G_FILE,
    OPT_D_FILE,
    ORACLE_FILE,
];
/// Largest checkpoint file read (networks, optimiser states, a query-only run's caches).
const MAX_FILE_BYTES: u64 = 1 << 31;

fn snapshot_file(i: usize) -> String {
    format!("snapshot-{i}.bpk")
}

/// Where the epoch loop is: the state it carries between steps.
pub(crate) struct Progress {
    /// Current epoch (1-based).
    pub(super) epoch: usize,
    /// Whether the epoch's schedule and shuffle were applied.
    pub(super) begun: bool,
    /// Index of the next step within the epoch.
    pub(super) next: usize,
    /// The epoch's image order.
    pub(super) order: Vec<usize>,
    pub(super) shuffle_rng: SeededRng,
    pub(super) acc: EpochAcc,
    pub(super) plateau: Plateau,
    /// Latest adversarial cluster of every training image.
    pub(super) adv_clusters: Vec<usize>,
    /// Training is over (`report.stopped` says why).
    pub(super) finished: bool,
}

impl Progress {
    pub(super) fn new(n: usize, seed: u64) -> Self {
        Progress {
            epoch: 1,
            begun: false,
            next: 0,
            order: (0..n).collect(),
            shuffle_rng: SeededRng::seed_from_u64(derive_seed(seed, STREAM_SHUFFLE)),
            acc: EpochAcc::default(),
            plateau: Plateau::default(),
            adv_clusters: vec![0; n],
            finished: false,
        }
    }
}

/// What a query provider carries between steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ProviderState {
    pub(super) counts: QueryCounts,
    /// Which training images' clean memberships are cached (query-only runs).
    pub(super) known: Vec<bool>,
    /// The estimator's RNG (query-only runs).
    pub(super) rng: Option<RngState>,
    /// Cached clean memberships, `n * k` (in the binary file).
    #[serde(skip)]
    pub(super) clean: Vec<f32>,
    /// The time prior, `n * d` or empty (in the binary file).
    #[serde(skip)]
    pub(super) prior: Vec<f32>,
    /// Queries sent to a query-only penalty.
    #[serde(default)]
    pub(super) penalty_counts: Option<QueryCounts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotMeta {
    requested_calls: u64,
    queries: QueryCounts,
    steps: u64,
}

#[derive(Serialize, Deserialize)]
struct State {
    format: String,
    version: u32,
    fingerprint: serde_json::Value,
    epoch: usize,
    begun: bool,
    next: usize,
    order: Vec<usize>,
    shuffle_rng: RngState,
    acc: EpochAcc,
    plateau: Plateau,
    adv_clusters: Vec<usize>,
    finished: bool,
    lr_factor: f64,
    report: AttackReport,
    snapshots_pending: Vec<u64>,
    snapshots_taken: Vec<SnapshotMeta>,
    provider: ProviderState,
}

/// FNV-1a over 64-bit words, as a hex string.
fn digest(words: impl Iterator<Item = u64>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What a checkpoint must have been written by: the same settings (seed included; where the
/// result is saved and whether a progress bar shows do not count), training images, labels
/// and victim cluster count.
pub(super) fn fingerprint(
    settings: &AttackSettings,
    train: &ImageBatch,
    labels: Option<&[usize]>,
    k: usize,
) -> Result<serde_json::Value> {
    let mut settings = settings.clone();
    settings.output_dir = None;
    settings.progress = false;
    Ok(serde_json::json!({
        "settings": serde_json::to_value(&settings)?,
        "train_dims": train.dims(),
        "train_digest": digest(train.data().iter().map(|v| u64::from(v.to_bits()))),
        "labels_digest": labels.map(|l| digest(l.iter().map(|&v| v as u64))),
        "clusters": k,
    }))
}

fn corrupt(dir: &Path, message: impl std::fmt::Display) -> AttackError {
    AttackError::Incompatible(format!("checkpoint {}: {message}", dir.display()))
}

/// `[clean_len, prior_len]` as u64 LE, then the f32 LE values.
fn encode_floats(clean: &[f32], prior: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * (clean.len() + prior.len()));
    out.extend((clean.len() as u64).to_le_bytes());
    out.extend((prior.len() as u64).to_le_bytes());
    for v in clean.iter().chain(prior) {
        out.extend(v.to_le_bytes());
    }
    out
}

fn decode_floats(bytes: &[u8], dir: &Path) -> Result<(Vec<f32>, Vec<f32>)> {
    let len = |at: usize| -> Option<usize> {
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        usize::try_from(u64::from_le_bytes(b)).ok()
    };
    let (a, b) = len(0)
        .zip(len(8))
        .ok_or_else(|| corrupt(dir, "oracle.bin is truncated"))?;
    let expected = a
        .checked_add(b)
        .and_then(|t| t.checked_mul(4))
        .and_then(|t| t.checked_add(16));
    if expected != Some(bytes.len()) {
        return Err(corrupt(dir, "oracle.bin has the wrong length"));
    }
    let values: Vec<f32> = bytes[16..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (clean, prior) = values.split_at(a);
    Ok((clean.to_vec(), prior.to_vec()))
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    advclust_core::read_bounded(&path, MAX_FILE_BYTES).map_err(|e| AttackError::io(&path, e))
}

/// Everything a checkpoint saves or restores, borrowed from the running trainer.
pub(super) struct Training<'a> {
    pub(super) gan: &'a mut AttackGan,
    pub(super) provider: &'a mut dyn AdvProvider,
    pub(super) report: &'a mut AttackReport,
    pub(super) snapshots: &'a mut Snapshots,
    pub(super) progress: &'a mut Progress,
}

impl Training<'_> {
    /// Writes the checkpoint into `dir` (replacing the previous one as a whole).
    pub(super) fn save(&self, dir: &Path, fingerprint: &serde_json::Value) -> Result<()> {
        let mut provider = self.provider.state();
        let floats = encode_floats(&provider.clean, &provider.prior);
        provider.clean = Vec::new();
        provider.prior = Vec::new();
        let p = &self.progress;
        let state = State {
            format: FORMAT.into(),
            version: VERSION,
            fingerprint: fingerprint.clone(),
            epoch: p.epoch,
            begun: p.begun,
            next: p.next,
            order: p.order.clone(),
            shuffle_rng: RngState::of(&p.shuffle_rng),
            acc: p.acc.clone(),
            plateau: p.plateau.clone(),
            adv_clusters: p.adv_clusters.clone(),
            finished: p.finished,
            lr_factor: self.gan.lr_factor,
            report: self.report.clone(),
            snapshots_pending: self.snapshots.pending.clone(),
            snapshots_taken: self
                .snapshots
                .taken
                .iter()
                .map(|s| SnapshotMeta {
                    requested_calls: s.requested_calls,
                    queries: s.queries,
                    steps: s.steps,
                })
                .collect(),
            provider,
        };
        let state = serde_json::to_vec(&state)?;
        // Through `valid()`: a training-mode module's BatchNorm running statistics are synced
        // there (its own record can hold stale ones).
        let generator = module_bytes(&self.gan.generator().valid())?;
        let discriminator = module_bytes(&self.gan.discriminator().valid())?;
        let record = |o: &ModuleOptimizer| -> Result<Vec<u8>> {
            Ok(o.to_record()
                .into_bytes()
                .map_err(|e| AttackError::Record(format!("optimizer state: {e}")))?
                .to_vec())
        };
        let (opt_g, opt_d) = (record(&self.gan.opt_g)?, record(&self.gan.opt_d)?);
        let snapshots = self
            .snapshots
            .taken
            .iter()
            .map(|s| module_bytes(s.generator()))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = (0..snapshots.len()).map(snapshot_file).collect();
        let mut files: Vec<(&str, &[u8])> = vec![
            (STATE_FILE, &state),
            (GENERATOR_FILE, &generator),
            (DISCRIMINATOR_FILE, &discriminator),
            (OPT_G_FILE, &opt_g),
            (OPT_D_FILE, &opt_d),
            (ORACLE_FILE, &floats),
        ];
        files.extend(
            names
                .iter()
                .map(String::as_str)
                .zip(snapshots.iter().map(Vec::as_slice)),
        );
        replace_dir(dir, &files).map_err(|e| AttackError::io(dir, e))
    }

    /// Restores the newest complete checkpoint in `dir`, which must carry `fingerprint`.
    pub(super) fn restore(
        &mut self,
        dir: &Path,
        fingerprint: &serde_json::Value,
        device: &Device,
    ) -> Result<()> {
        let dir = complete_dir(dir, &REQUIRED).ok_or_else(|| AttackError::NothingToResume {
            dir: dir.to_path_buf(),
        })?;
        let state: State = serde_json::from_slice(&read(&dir, STATE_FILE)?)
            .map_err(|e| corrupt(&dir, format!("state.json: {e}")))?;
        if state.format != FORMAT || state.version != VERSION {
            return Err(corrupt(
                &dir,
                format!(
                    "format {:?} version {} (expected {FORMAT:?} version {VERSION})",
                    state.format, state.version
                ),
            ));
        }
        if &state.fingerprint != fingerprint {
            return Err(corrupt(
                &dir,
                "it was written by another run (other settings, seed, training images, labels \
                 or victim); resume with the same command, or start afresh",
            ));
        }
        let n = self.progress.order.len();
        let k = self.provider.num_clusters();
        let mut seen = vec![false; n];
        let permutation = state.order.len() == n
            && state
                .order
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true));
        let steps_per_epoch = n.div_ceil(self.gan.settings.batch_size.min(n).max(1));
        if !permutation
            || state.adv_clusters.len() != n
            || state.adv_clusters.iter().any(|&c| c >= k)
            || state.epoch == 0
            || state.next > steps_per_epoch
            || !(state.lr_factor.is_finite() && state.lr_factor > 0.0)
        {
            return Err(corrupt(&dir, "inconsistent progress state"));
        }
        let (clean, prior) = decode_floats(&read(&dir, ORACLE_FILE)?, &dir)?;
        let mut provider = state.provider;
        provider.clean = clean;
        provider.prior = prior;
        self.provider
            .restore(provider)
            .map_err(|message| corrupt(&dir, message))?;

        let gan = &mut *self.gan;
        let origin = |f: &str| dir.join(f).display().to_string();
        let generator = gan.generator.take().expect("generator present");
        gan.generator = Some(load_module_bytes(
            generator,
            read(&dir, GENERATOR_FILE)?,
            &origin(GENERATOR_FILE),
        )?);
        let discriminator = gan.discriminator.take().expect("discriminator present");
        gan.discriminator = Some(load_module_bytes(
            discriminator,
            read(&dir, DISCRIMINATOR_FILE)?,
            &origin(DISCRIMINATOR_FILE),
        )?);
        let optimizer = |name: &str| -> Result<OptimizerRecord> {
            OptimizerRecord::from_bytes(Bytes::from_bytes_vec(read(&dir, name)?))
                .map_err(|e| corrupt(&dir, format!("{name}: {e}")))
        };
        gan.opt_g = gan.adam.init().load_record(optimizer(OPT_G_FILE)?);
        gan.opt_d = gan.adam.init().load_record(optimizer(OPT_D_FILE)?);
        gan.lr_factor = state.lr_factor;

        let mut taken = Vec::with_capacity(state.snapshots_taken.len());
        for (i, meta) in state.snapshots_taken.iter().enumerate() {
            let name = snapshot_file(i);
            let generator = load_module_bytes(
                Generator::new(gan.image_shape[0], 0, &device.clone().without_autodiff()),
                read(&dir, &name)?,
                &origin(&name),
            )?;
            taken.push(GeneratorSnapshot::new(
                meta.requested_calls,
                meta.queries,
                meta.steps,
                &generator,
                device,
            ));
        }
        self.snapshots.pending = state.snapshots_pending;
        self.snapshots.taken = taken;
        *self.report = state.report;
        *self.progress = Progress {
            epoch: state.epoch,
            begun: state.begun,
            next: state.next,
            order: state.order,
            shuffle_rng: state.shuffle_rng.restore(),
            acc: state.acc,
            plateau: state.plateau,
            adv_clusters: state.adv_clusters,
            finished: state.finished,
        };
        Ok(())
    }
}
