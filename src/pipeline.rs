//! The attack pipeline shared by the `advclust` CLI and the quickstart: name a dataset and a
//! victim, train the attack, evaluate it, sweep epsilon, write the report and the figures.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use advclust_core::{
    ClusterOracle, ImageBatch, Memberships, ModelOracle, NormKind, NormSummary, ParamGuard,
    ThreatModel, answer_all,
};
use advclust_data::Dataset;
use advclust_gan::{
    AttackReport, AttackTrainer, CheckedAttackConfig, CheckpointPolicy, Evaluation, TrainedAttack,
};
use advclust_metrics::{ClusteringScores, ConfusionMatrix, ContingencyTable, clustering_scores};
use advclust_models::Victim;
use advclust_plot::figures::{self, QueryPoint, SweepPoint};
use advclust_remote::{CheckedKServeConfig, KServeOracle, KServeTarget};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::Error;

/// A dataset named on the command line.
///
/// `mnist` is the embedded MNIST test split; the others read real files:
/// `mnist:<dir with the IDX files>`, `fashion-mnist:<dir holding fashion_mnist_images/>`,
/// `cifar10:<dir of class folders of JPEGs>`, `yaleb:<CroppedYale dir>`,
/// `folder:<dir of class folders>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetSpec {
    /// The MNIST test split embedded in advclust-data.
    MnistEmbedded,
    /// MNIST test split from IDX files.
    Mnist(PathBuf),
    /// Fashion-MNIST test split from its PNG folders, in the official order.
    FashionMnist(PathBuf),
    /// CIFAR-10 test split from per-class JPEG folders.
    Cifar10(PathBuf),
    /// Extended Yale B, cropped faces.
    YaleB(PathBuf),
    /// Any folder with one sub-folder per class.
    Folder(PathBuf),
}

impl FromStr for DatasetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (kind, path) = match s.split_once(':') {
            Some((k, p)) => (k, Some(PathBuf::from(p))),
            None => (s, None),
        };
        let need = |p: Option<PathBuf>| {
            p.ok_or_else(|| Error::InvalidArgument(format!("dataset {kind:?} needs :<path>")))
        };
        Ok(match (kind, path) {
            ("mnist", None) | ("mnist-embedded", None) => DatasetSpec::MnistEmbedded,
            ("mnist", p) => DatasetSpec::Mnist(need(p)?),
            ("fashion-mnist", p) => DatasetSpec::FashionMnist(need(p)?),
            ("cifar10", p) => DatasetSpec::Cifar10(need(p)?),
            ("yaleb", p) => DatasetSpec::YaleB(need(p)?),
            ("folder", p) => DatasetSpec::Folder(need(p)?),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown dataset {s:?}: use mnist, mnist:<dir>, fashion-mnist:<dir>, \
                     cifar10:<dir>, yaleb:<dir> or folder:<dir>"
                )));
            }
        })
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, path) = match self {
            DatasetSpec::MnistEmbedded => return f.write_str("mnist"),
            DatasetSpec::Mnist(p) => ("mnist", p),
            DatasetSpec::FashionMnist(p) => ("fashion-mnist", p),
            DatasetSpec::Cifar10(p) => ("cifar10", p),
            DatasetSpec::YaleB(p) => ("yaleb", p),
            DatasetSpec::Folder(p) => ("folder", p),
        };
        write!(f, "{kind}:{}", path.display())
    }
}

impl DatasetSpec {
    /// Loads the dataset; with `limit`, keeps the first `limit` images of a shuffle by `seed`.
    pub fn load(&self, limit: Option<usize>, seed: u64) -> Result<Dataset, Error> {
        use advclust_data as d;
        let data = match self {
            DatasetSpec::MnistEmbedded => d::mnist_test_embedded()?,
            DatasetSpec::Mnist(p) => d::load_mnist(p, d::Split::Test)?,
            DatasetSpec::FashionMnist(p) => d::load_fashion_mnist_png_test(p)?,
            DatasetSpec::Cifar10(p) => d::load_cifar10_folder(p)?,
            DatasetSpec::YaleB(p) => d::load_yaleb(p)?,
            DatasetSpec::Folder(p) => d::load_image_folder(p, d::ColorMode::Auto)?,
        };
        Ok(match limit {
            Some(n) if n < data.len() => data.shuffled(seed).take(n),
            _ => data,
        })
    }
}

/// A victim named on the command line: an embedded one (`pretrained-<kind>-<dataset>`, see
/// `advclust victims`) or a directory written by `advclust train-victim` (any kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VictimSpec {
    /// An embedded victim, by name (e.g. `pretrained-cc-mnist`).
    Embedded(String),
    /// A saved victim directory.
    Saved(PathBuf),
    /// A model behind an Open Inference Protocol server (`kserve+http://...`): query-only.
    Remote(KServeTarget),
}

impl VictimSpec {
    /// The embedded CC model trained on MNIST-test (the quickstart's victim).
    pub fn pretrained_cc_mnist() -> Self {
        VictimSpec::Embedded("pretrained-cc-mnist".into())
    }

    /// Loads the victim onto `device`: an embedded or saved one (a served model has no local
    /// copy to load; use [`VictimSpec::oracle`]).
    pub fn load(&self, device: &Device) -> Result<Victim, Error> {
        Ok(match self {
            VictimSpec::Embedded(name) => advclust_models::embedded(name)?.load(device)?,
            VictimSpec::Saved(dir) => Victim::load(dir, device)?,
            VictimSpec::Remote(target) => {
                return Err(Error::InvalidArgument(format!(
                    "{target} is served by a model server: only query-only attacks (nes, spsa) \
                     and evaluation reach it"
                )));
            }
        })
    }

    /// True for a victim behind a model server.
    pub fn is_remote(&self) -> bool {
        matches!(self, VictimSpec::Remote(_))
    }

    /// The victim as a black-box oracle: a local model answering in process, or a connection
    /// to its server (checked ready, metadata read) with the `remote` client settings.
    pub fn oracle(
        &self,
        device: &Device,
        remote: &CheckedKServeConfig,
    ) -> Result<Box<dyn ClusterOracle>, Error> {
        Ok(match self {
            VictimSpec::Remote(target) => {
                Box::new(KServeOracle::connect(target.clone(), remote.clone())?)
            }
            local => Box::new(ModelOracle::new(&local.load(device)?, device)),
        })
    }
}

impl FromStr for VictimSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "pretrained" => VictimSpec::pretrained_cc_mnist(),
            remote if remote.starts_with(advclust_remote::SCHEME_PREFIX) => {
                VictimSpec::Remote(remote.parse()?)
            }
            name if name.starts_with("pretrained-") => {
                advclust_models::embedded(name)?;
                VictimSpec::Embedded(name.to_string())
            }
            path => VictimSpec::Saved(PathBuf::from(path)),
        })
    }
}

impl fmt::Display for VictimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VictimSpec::Embedded(name) => f.write_str(name),
            VictimSpec::Remote(target) => write!(f, "{target}"),
            VictimSpec::Saved(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Clean and adversarial cluster assignments of one evaluation, with their scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredClusters {
    /// Scores against ground truth.
    pub scores: ClusteringScores,
    /// Cluster of each image.
    pub clusters: Vec<usize>,
}

/// Everything one attack run produced.
#[derive(Debug)]
pub struct AttackOutcome {
    /// The trained generator with its config and report (already evaluated).
    pub attack: TrainedAttack,
    /// Clean vs adversarial evaluation on the evaluation images.
    pub evaluation: Evaluation,
    /// The evaluation images.
    pub clean: ImageBatch,
    /// Their adversarial versions.
    pub adversarial: ImageBatch,
}

/// Trains the attack of `config` against `victim` on `train`, then evaluates it on `eval`.
///
/// With [`advclust_gan::GradientSource::Backprop`] the gradient flows through the victim; with
/// NES or SPSA the victim is only queried (through a [`ModelOracle`], exactly as
/// [`attack_oracle`] would). Either way every victim call of training and of evaluation is
/// counted in the report, and the per-epoch curves carry the scores of the training images'
/// adversarial clusters against `train`'s labels. With `checkpoints`, training checkpoints
/// (and resumes) as [`AttackTrainer::with_checkpoints`] says.
pub fn attack_victim(
    config: &CheckedAttackConfig,
    victim: &Victim,
    train: &Dataset,
    eval: &Dataset,
    device: &Device,
    checkpoints: Option<CheckpointPolicy>,
) -> Result<AttackOutcome, Error> {
    let mut oracle = ModelOracle::new(victim, device);
    if config.gradient_source.is_query_only() {
        return attack_oracle(config, &mut oracle, train, eval, device, checkpoints);
    }
    let train_images = train.to_image_batch()?;
    let attack = trainer(config, train, device, checkpoints).fit_model(victim, &train_images)?;
    evaluate_outcome(attack, &mut oracle, eval)
}

/// Trains a query-only attack (NES or SPSA) against any oracle, e.g. a model behind a server
/// or a user's own [`ClusterOracle`], on `train`, then evaluates it on `eval` through the same
/// oracle (evaluation calls are counted apart from training calls). With `checkpoints`,
/// training checkpoints (and resumes) as [`AttackTrainer::with_checkpoints`] says.
pub fn attack_oracle(
    config: &CheckedAttackConfig,
    oracle: &mut dyn ClusterOracle,
    train: &Dataset,
    eval: &Dataset,
    device: &Device,
    checkpoints: Option<CheckpointPolicy>,
) -> Result<AttackOutcome, Error> {
    let train_images = train.to_image_batch()?;
    let attack = trainer(config, train, device, checkpoints).fit_oracle(oracle, &train_images)?;
    evaluate_outcome(attack, oracle, eval)
}

/// The trainer of `config` with `train`'s labels (for the curves) and the checkpoint policy.
fn trainer<'a>(
    config: &'a CheckedAttackConfig,
    train: &'a Dataset,
    device: &Device,
    checkpoints: Option<CheckpointPolicy>,
) -> AttackTrainer<'a> {
    let trainer = AttackTrainer::new(config, device).with_labels(train.labels());
    match checkpoints {
        Some(policy) => trainer.with_checkpoints(policy),
        None => trainer,
    }
}

fn evaluate_outcome(
    mut attack: TrainedAttack,
    oracle: &mut dyn ClusterOracle,
    eval: &Dataset,
) -> Result<AttackOutcome, Error> {
    let clean = eval.to_image_batch()?;
    let adversarial = attack.perturb(&clean)?;
    let evaluation = attack.evaluate_perturbed(oracle, &clean, &adversarial, eval.labels())?;
    Ok(AttackOutcome {
        attack,
        evaluation,
        clean,
        adversarial,
    })
}

/// Saves everything an attack run produced into `dir`: the generator (`attack/`), the report
/// (`report.json`, with the fields of `metadata` merged in, e.g. the command line) and the
/// figures (`grid.png`, `confusion.png`, and `queries.png` when the training curves carry
/// scores). Returns the paths of the report and the figures.
pub fn save_attack_run(
    dir: &Path,
    outcome: &AttackOutcome,
    eval: &Dataset,
    metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<PathBuf>, Error> {
    // Saved again even when training already saved it there (`output_dir`): the report now
    // holds the evaluation too.
    outcome.attack.save(dir.join("attack"))?;
    let report = outcome.attack.report();
    let mut json = to_json(report)?;
    if let Some(fields) = json.as_object_mut() {
        fields.extend(metadata);
    }
    let report_path = dir.join("report.json");
    write_json(&report_path, &json)?;
    let mut written = vec![report_path];
    written.extend(write_attack_figures(
        dir,
        (&outcome.clean, &outcome.adversarial),
        &outcome.evaluation,
        eval.labels(),
        eval.class_names(),
    )?);
    let points = query_points(report);
    if !points.is_empty() {
        let path = dir.join("queries.png");
        let title = format!(
            "{}: training-set scores vs. victim calls",
            report.gradient_source.name()
        );
        figures::query_curve(&path, &title, &points, Some(outcome.evaluation.clean.nmi))?;
        written.push(path);
    }
    Ok(written)
}

/// The training curve of `report` as (cumulative batch calls, scores) points, for epochs that
/// recorded scores.
pub fn query_points(report: &AttackReport) -> Vec<QueryPoint> {
    report
        .curves
        .iter()
        .filter_map(|e| {
            e.scores.map(|s| QueryPoint {
                batch_calls: e.queries.batch_calls,
                nmi: s.nmi,
                ari: Some(s.ari),
                acc: Some(s.acc),
            })
        })
        .collect()
}

/// Cluster ids of every image, queried in chunks of `batch` images.
pub fn query_clusters(
    oracle: &mut dyn ClusterOracle,
    images: &ImageBatch,
    batch: usize,
) -> Result<Vec<usize>, Error> {
    let calls: Vec<ImageBatch> = images.chunks(batch).collect();
    let parts = answer_all(oracle, &calls)?;
    Ok(Memberships::concat(&parts)?.labels())
}

/// Scores the victim behind `oracle` on `images` against `labels`.
pub fn evaluate_clean(
    oracle: &mut dyn ClusterOracle,
    images: &ImageBatch,
    labels: &[usize],
) -> Result<ScoredClusters, Error> {
    let clusters = query_clusters(oracle, images, 256)?;
    Ok(ScoredClusters {
        scores: clustering_scores(labels, &clusters)?,
        clusters,
    })
}

/// Evaluates one trained generator at several evaluation radii (paper Fig. 3): for each
/// epsilon the generator's output is bounded by `ThreatModel(norm, epsilon)`, the victim is
/// queried, and the scores are reported against the mean per-sample L2 norm of the perturbation.
pub fn sweep_epsilon(
    attack: &TrainedAttack,
    oracle: &mut dyn ClusterOracle,
    images: &ImageBatch,
    labels: &[usize],
    norm: NormKind,
    epsilons: &[f32],
) -> Result<Vec<SweepPoint>, Error> {
    epsilons
        .iter()
        .map(|&eps| {
            let threat = ThreatModel::params(norm, eps)
                .value_box(images.value_box())
                .check()?;
            let adversarial = attack.perturb_with(images, &threat)?;
            let norms = NormSummary::from_norms(&ThreatModel::norms(images, &adversarial)?);
            let scored = evaluate_clean(oracle, &adversarial, labels)?;
            Ok(sweep_point(eps, norms.mean_l2, &scored.scores))
        })
        .collect()
}

/// Trains a fresh attack at each radius (the configuration `config_for` returns for it) on
/// `train`, and evaluates each on `eval` (paper Fig. 3 with one generator per radius). Radius
/// 0 is the clean evaluation, with no training.
pub fn sweep_retrained(
    mut config_for: impl FnMut(f32) -> Result<CheckedAttackConfig, Error>,
    victim: &Victim,
    train: &Dataset,
    eval: &Dataset,
    epsilons: &[f32],
    device: &Device,
) -> Result<Vec<SweepPoint>, Error> {
    let mut clean: Option<ClusteringScores> = None;
    let mut points = Vec::with_capacity(epsilons.len());
    for &eps in epsilons {
        if eps == 0.0 {
            let scores = match clean {
                Some(s) => s,
                None => {
                    let mut oracle = ModelOracle::new(victim, device);
                    let images = eval.to_image_batch()?;
                    evaluate_clean(&mut oracle, &images, eval.labels())?.scores
                }
            };
            clean = Some(scores);
            points.push(sweep_point(0.0, 0.0, &scores));
            continue;
        }
        let config = config_for(eps)?;
        let outcome = attack_victim(&config, victim, train, eval, device, None)?;
        let e = &outcome.evaluation;
        clean = Some(e.clean);
        points.push(sweep_point(eps, e.norms.mean_l2, &e.adversarial));
    }
    Ok(points)
}

fn sweep_point(epsilon: f32, mean_l2: f32, s: &ClusteringScores) -> SweepPoint {
    SweepPoint {
        epsilon,
        mean_l2,
        nmi: s.nmi,
        ari: s.ari,
        acc: s.acc,
    }
}

/// The confusion matrix of `clusters` against `labels`, for the figures.
pub fn confusion(
    labels: &[usize],
    clusters: &[usize],
) -> Result<ConfusionMatrix<usize, usize>, Error> {
    Ok(ConfusionMatrix::from_table(&ContingencyTable::new(
        labels, clusters,
    )?)?)
}

/// Images shown in the grid figure, evenly spaced over the evaluation set (so that a dataset
/// stored class by class still shows every class).
pub const GRID_SAMPLES: usize = 16;

/// Writes `grid.png` (Fig. 1: clean vs adversarial images with their clusters,
/// [`GRID_SAMPLES`] of them evenly spaced over the set) and `confusion.png` (Fig. 2: the clean
/// and adversarial confusion matrices) into `dir` for the images `clean` and `adversarial` and
/// their `evaluation`; returns the paths written.
pub fn write_attack_figures(
    dir: &Path,
    (clean, adversarial): (&ImageBatch, &ImageBatch),
    evaluation: &Evaluation,
    labels: &[usize],
    class_names: &[String],
) -> Result<Vec<PathBuf>, Error> {
    create_dir(dir)?;
    let e = evaluation;
    let n = clean.len();
    let shown = n.min(GRID_SAMPLES);
    let indices: Vec<usize> = (0..shown).map(|i| i * n / shown).collect();
    let pick = |values: &[usize]| -> Vec<usize> {
        indices
            .iter()
            .filter_map(|&i| values.get(i).copied())
            .collect()
    };
    let grid = dir.join("grid.png");
    figures::image_grid(
        &grid,
        &clean.select(&indices)?,
        &adversarial.select(&indices)?,
        &pick(&e.clean_clusters),
        &pick(&e.adversarial_clusters),
        Some(&pick(labels)),
        Some(class_names),
        8,
    )?;
    let matrices = dir.join("confusion.png");
    figures::confusion_pair(
        &matrices,
        &confusion(labels, &e.clean_clusters)?,
        &confusion(labels, &e.adversarial_clusters)?,
        &format!("clean (NMI {:.3})", e.clean.nmi),
        &format!("adversarial (NMI {:.3})", e.adversarial.nmi),
    )?;
    Ok(vec![grid, matrices])
}

/// `value` as a JSON value (for adding fields before [`write_json`]).
pub fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Json(e.to_string()))
}

/// Reads the JSON document in `path`, a file of at most `limit` bytes (a larger one is refused
/// before it is read).
///
/// Errors: an unreadable or oversized file ([`Error::Io`]), text that is not JSON
/// ([`Error::Json`], naming the file).
pub fn read_json(path: &Path, limit: u64) -> Result<serde_json::Value, Error> {
    let bytes = advclust_core::read_bounded(path, limit).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json(format!("{}: {e}", path.display())))
}

/// Writes `value` as pretty JSON to `path` (creating the parent directory).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Json(e.to_string()))?;
    write_text(path, &(text + "\n"))
}

/// Writes `text` to `path` (parent directories created) through a temporary file and a rename,
/// so a report is never left half-written.
pub fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    Ok(advclust_models::artifact::write_atomic(
        path,
        text.as_bytes(),
    )?)
}

/// Creates `dir` and its parents (nothing for an empty path).
pub fn create_dir(dir: &Path) -> Result<(), Error> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// `paths` as one line, separated by ", ".
pub fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text a finished attack run prints: the clean-vs-adversarial table of
/// [`format_table`], the wall time and the files `written`.
pub fn attack_summary(outcome: &AttackOutcome, written: &[PathBuf], wall_seconds: f64) -> String {
    let report = outcome.attack.report();
    let files = join_paths(written);
    format!(
        "{}training: {} steps in {} epochs, stopped: {}\n\nwall time {wall_seconds:.1} s; wrote {files}\n",
        format_table(
            &outcome.evaluation,
            report.training_queries.batch_calls,
            report.training_queries.images
        ),
        report.steps,
        report.epochs,
        report.stopped
    )
}

/// A plain-text clean-vs-adversarial table of an evaluation.
pub fn format_table(e: &Evaluation, training_calls: u64, training_images: u64) -> String {
    let row = |name: &str, s: &ClusteringScores| {
        format!(
            "| {name:<11} | {:>6.4} | {:>6.4} | {:>6.4} |\n",
            s.nmi, s.ari, s.acc
        )
    };
    let drop = if e.clean.nmi > 0.0 {
        100.0 * (e.clean.nmi - e.adversarial.nmi) / e.clean.nmi
    } else {
        0.0
    };
    let mut t = String::new();
    t += "| images      |    NMI |    ARI |    ACC |\n";
    t += "|-------------|--------|--------|--------|\n";
    t += &row("clean", &e.clean);
    t += &row("adversarial", &e.adversarial);
    t += &format!(
        "\nrelative NMI drop {drop:.1} %; {:.1} % of images changed cluster\n",
        100.0 * e.changed_fraction
    );
    t += &format!(
        "perturbation: mean L2 {:.3} (max {:.3}), mean Linf {:.4} (max {:.4})\n",
        e.norms.mean_l2, e.norms.max_l2, e.norms.mean_linf, e.norms.max_linf
    );
    t += &format!(
        "victim queries: training {training_calls} batch calls / {training_images} images; \
         evaluation {} calls / {} images\n",
        e.queries.batch_calls, e.queries.images
    );
    t
}
