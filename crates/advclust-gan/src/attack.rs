//! A trained attack: perturbing new images, saving, loading, evaluating.

use std::path::{Path, PathBuf};
use std::time::Instant;

use advclust_core::{
    Budgeted, ClusterOracle, CoreError, ImageBatch, Memberships, NormSummary, QueryBudget,
    ThreatModel, answer_all,
};
use advclust_metrics::{Label, clustering_scores};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::{AttackSettings, CheckedAttackConfig};
use crate::error::{AttackError, Result};
use crate::nets::{Generator, check_image_shape};
use crate::report::{AttackReport, Evaluation};
use crate::train::progress_bar;

/// File name of the generator weights (burnpack) inside a saved attack's directory.
pub const GENERATOR_FILE: &str = "generator.bpk";
/// File name of the configuration and report (JSON) inside a saved attack's directory.
pub const ATTACK_FILE: &str = "attack.json";
/// Largest [`ATTACK_FILE`] read (a saved attack's JSON is tens of kB; this bounds a hostile
/// file).
pub const MAX_ATTACK_FILE_BYTES: u64 = 16 << 20;
/// Largest [`GENERATOR_FILE`] read (the generator's weights are a few MB).
pub const MAX_GENERATOR_FILE_BYTES: u64 = 256 << 20;
/// Version of the saved-attack format.
const FORMAT_VERSION: u32 = 1;

/// The burnpack bytes of `module`'s parameters and buffers.
pub(crate) fn module_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    Ok(module
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| AttackError::Record(e.to_string()))?
        .to_vec())
}

/// `module` with the parameters of burnpack `bytes` (of the same architecture) loaded.
pub(crate) fn load_module_bytes<M: Module>(module: M, bytes: Vec<u8>, origin: &str) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| AttackError::Record(format!("{origin}: {e}")))?;
    module
        .try_load_record(record)
        .map_err(|e| AttackError::Record(format!("{origin}: {e}")))
}

/// The JSON side of a saved attack.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedAttack {
    format_version: u32,
    image_shape: [usize; 3],
    threat_model: ThreatModel,
    config: AttackSettings,
    report: AttackReport,
}

/// A copy of the generator taken during training at a requested call count
/// ([`AttackSettings::snapshot_calls`]). Kept in memory only: a saved attack holds the final
/// generator.
#[derive(Debug, Clone)]
pub struct GeneratorSnapshot {
    /// The call count asked for.
    pub requested_calls: u64,
    /// Training queries made when the copy was taken (at most `requested_calls` calls: what a
    /// run with that budget reports, since it stops before a step that would not fit).
    pub queries: advclust_core::QueryCounts,
    /// Training steps done then.
    pub steps: u64,
    generator: Generator,
}

impl GeneratorSnapshot {
    /// The generator copy.
    pub(crate) fn generator(&self) -> &Generator {
        &self.generator
    }

    /// A copy of `generator` (any device; moved to the plain version of `device`, evaluation
    /// mode).
    pub(crate) fn new(
        requested_calls: u64,
        queries: advclust_core::QueryCounts,
        steps: u64,
        generator: &Generator,
        device: &Device,
    ) -> Self {
        GeneratorSnapshot {
            requested_calls,
            queries,
            steps,
            generator: generator
                .clone()
                .valid()
                .to_device(&device.clone().without_autodiff()),
        }
    }
}

/// A trained generator with its configuration and report. It perturbs new images of the same
/// shape with no further queries.
#[derive(Debug, Clone)]
pub struct TrainedAttack {
    generator: Generator,
    snapshots: Vec<GeneratorSnapshot>,
    config: CheckedAttackConfig,
    report: AttackReport,
    image_shape: [usize; 3],
    threat: ThreatModel,
    device: Device,
}

impl TrainedAttack {
    /// Assembles an attack; `generator` is moved to the plain (non-autodiff) version of `device`
    /// in evaluation mode (BatchNorm running statistics).
    pub(crate) fn new(
        generator: Generator,
        config: CheckedAttackConfig,
        report: AttackReport,
        image_shape: [usize; 3],
        threat: ThreatModel,
        device: &Device,
    ) -> Self {
        let device = device.clone().without_autodiff();
        TrainedAttack {
            generator: generator.valid().to_device(&device),
            snapshots: Vec::new(),
            config,
            report,
            image_shape,
            threat,
            device,
        }
    }

    /// The generator (evaluation mode, plain device).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The generator copies taken during training, in the order of their call counts.
    pub fn snapshots(&self) -> &[GeneratorSnapshot] {
        &self.snapshots
    }

    pub(crate) fn with_snapshots(mut self, snapshots: Vec<GeneratorSnapshot>) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// Perturbs `images` with snapshot `index` instead of the final generator (no queries);
    /// `None` for an index out of range.
    pub fn perturb_snapshot(
        &self,
        index: usize,
        images: &ImageBatch,
    ) -> Option<Result<ImageBatch>> {
        let snapshot = self.snapshots.get(index)?;
        Some(self.perturb_using(&snapshot.generator, images, &self.threat))
    }

    /// The configuration it was trained with.
    pub fn config(&self) -> &CheckedAttackConfig {
        &self.config
    }

    /// The training report (and the last evaluation's numbers, once evaluated).
    pub fn report(&self) -> &AttackReport {
        &self.report
    }

    /// `[C, H, W]` of the images it perturbs.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// The threat model applied to every perturbation.
    pub fn threat_model(&self) -> ThreatModel {
        self.threat
    }

    /// Adversarial versions of `images`: `x_adv = clamp(x + bound(G(x)), box)`. Makes no
    /// queries. The images must have the training shape and value box.
    pub fn perturb(&self, images: &ImageBatch) -> Result<ImageBatch> {
        self.perturb_with(images, &self.threat)
    }

    /// Perturbs `images` with the generator, bounded by another threat model `threat` (e.g.
    /// an evaluation radius different from the training one, as in the paper's epsilon
    /// sweep). Makes no queries.
    pub fn perturb_with(&self, images: &ImageBatch, threat: &ThreatModel) -> Result<ImageBatch> {
        self.perturb_using(&self.generator, images, threat)
    }

    fn perturb_using(
        &self,
        generator: &Generator,
        images: &ImageBatch,
        threat: &ThreatModel,
    ) -> Result<ImageBatch> {
        images.expect_image_shape(self.image_shape)?;
        let (a, b) = (threat.value_box(), images.value_box());
        if a != b {
            return Err(CoreError::ValueBoxMismatch {
                a_min: a.min(),
                a_max: a.max(),
                b_min: b.min(),
                b_max: b.max(),
            }
            .into());
        }
        let parts = images
            .chunks(self.config.batch_size)
            .map(|chunk| {
                let x = chunk.to_tensor(&self.device);
                let delta = generator.forward(x.clone());
                let x_adv = threat.apply(x, delta);
                ImageBatch::from_tensor(x_adv, b).map_err(AttackError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageBatch::concat(&parts)?)
    }

    /// Saves to `dir` (created if needed): [`GENERATOR_FILE`] (burnpack weights) and
    /// [`ATTACK_FILE`] (configuration, report, shape and threat model as JSON).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| AttackError::io(dir, e))?;
        let weights = module_bytes(&self.generator)?;
        let weights_path = dir.join(GENERATOR_FILE);
        advclust_core::write_atomic(&weights_path, &weights[..])
            .map_err(|e| AttackError::io(&weights_path, e))?;
        let saved = SavedAttack {
            format_version: FORMAT_VERSION,
            image_shape: self.image_shape,
            threat_model: self.threat,
            config: self.config.settings().clone(),
            report: self.report.clone(),
        };
        let path = dir.join(ATTACK_FILE);
        let json = serde_json::to_string_pretty(&saved)?;
        advclust_core::write_atomic(&path, (json + "\n").as_bytes())
            .map_err(|e| AttackError::io(path, e))
    }

    /// Loads an attack saved by [`TrainedAttack::save`], to run on `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let path: PathBuf = dir.join(ATTACK_FILE);
        let text = advclust_core::read_bounded(&path, MAX_ATTACK_FILE_BYTES)
            .map_err(|e| AttackError::io(&path, e))?;
        let saved: SavedAttack = serde_json::from_slice(&text)?;
        if saved.format_version != FORMAT_VERSION {
            return Err(AttackError::Incompatible(format!(
                "format version {} (this library reads {FORMAT_VERSION})",
                saved.format_version
            )));
        }
        check_image_shape(saved.image_shape)?;
        let config = CheckedAttackConfig::try_from(saved.config)?;
        let expected = config
            .settings()
            .threat_model(saved.threat_model.value_box())?;
        if expected != saved.threat_model {
            return Err(AttackError::Incompatible(format!(
                "{}: the threat model ({:?}, eps {}) disagrees with the configuration's \
                 ({:?}, eps {})",
                path.display(),
                saved.threat_model.norm(),
                saved.threat_model.epsilon(),
                expected.norm(),
                expected.epsilon()
            )));
        }
        let device = device.clone().without_autodiff();
        let weights_path = dir.join(GENERATOR_FILE);
        let weights = advclust_core::read_bounded(&weights_path, MAX_GENERATOR_FILE_BYTES)
            .map_err(|e| AttackError::io(&weights_path, e))?;
        let generator = load_module_bytes(
            Generator::new(saved.image_shape[0], 0, &device),
            weights,
            &weights_path.display().to_string(),
        )?;
        Ok(TrainedAttack {
            snapshots: Vec::new(),
            generator: generator.valid(),
            config,
            report: saved.report,
            image_shape: saved.image_shape,
            threat: saved.threat_model,
            device,
        })
    }

    /// Scores the victim on clean and adversarial `images` against ground-truth `labels`
    /// (NMI, ARI, ACC), querying `oracle` in batches of the training batch size. These queries
    /// are counted separately from training's (no budget applies) and added to the report,
    /// whose evaluation fields are overwritten with this evaluation's numbers.
    pub fn evaluate<T: Label>(
        &mut self,
        oracle: &mut dyn ClusterOracle,
        images: &ImageBatch,
        labels: &[T],
    ) -> Result<Evaluation> {
        let adversarial = self.perturb(images)?;
        self.evaluate_perturbed(oracle, images, &adversarial, labels)
    }

    /// [`Self::evaluate`] for `adversarial` = [`Self::perturb`]`(images)` computed already (so
    /// a caller that also keeps the adversarial images runs the generator once).
    pub fn evaluate_perturbed<T: Label>(
        &mut self,
        oracle: &mut dyn ClusterOracle,
        images: &ImageBatch,
        adversarial: &ImageBatch,
        labels: &[T],
    ) -> Result<Evaluation> {
        let started = Instant::now();
        if labels.len() != images.len() {
            return Err(CoreError::SampleCountMismatch {
                expected: images.len(),
                actual: labels.len(),
            }
            .into());
        }
        images.expect_same_layout(adversarial)?;
        let mut budgeted = Budgeted::new(oracle, QueryBudget::UNLIMITED);
        let bs = self.config.batch_size;
        let chunks = images.len().div_ceil(bs) as u64;
        let bar = progress_bar(2 * chunks, self.config.progress, "evaluate");
        let mut query_all = |batch: &ImageBatch| -> Result<Vec<usize>> {
            let calls: Vec<ImageBatch> = batch.chunks(bs).collect();
            let parts = answer_all(&mut budgeted, &calls)?;
            bar.inc(calls.len() as u64);
            Ok(Memberships::concat(&parts)?.labels())
        };
        let clean_clusters = query_all(images)?;
        let adversarial_clusters = query_all(adversarial)?;
        bar.finish_and_clear();
        let queries = budgeted.counts();
        let clean = clustering_scores(labels, &clean_clusters)?;
        let adv_scores = clustering_scores(labels, &adversarial_clusters)?;
        let changed = clean_clusters
            .iter()
            .zip(&adversarial_clusters)
            .filter(|(a, b)| a != b)
            .count() as f64
            / images.len() as f64;
        let norms = NormSummary::from_norms(&ThreatModel::norms(images, adversarial)?);
        let r = &mut self.report;
        r.clean_scores = Some(clean);
        r.adversarial_scores = Some(adv_scores);
        r.changed_fraction = Some(changed);
        r.delta_norms = Some(norms);
        r.evaluated_images = images.len();
        r.evaluation_queries.batch_calls += queries.batch_calls;
        r.evaluation_queries.images += queries.images;
        r.evaluation_wall_time_s += started.elapsed().as_secs_f64();
        Ok(Evaluation {
            clean,
            adversarial: adv_scores,
            changed_fraction: changed,
            norms,
            queries,
            clean_clusters,
            adversarial_clusters,
        })
    }
}
