//! Transferability of the attack across victims (paper Fig. 4): for every ordered pair
//! (source, target) of victims on one dataset, the generator trained against the source
//! perturbs the evaluation set and the target clusters it.
//!
//! Every generator is trained in backprop mode at one L-inf eps in `[0, 1]` pixels (the same
//! for all victims, so no victim's normalised units favour it), stopping at convergence as the
//! Table 1 attacks do, and saved under `<out>/generators/<victim>/`; a later run with the same
//! output directory reuses it instead of training again (refusing one trained at another eps
//! or norm). The diagonal is each victim's own white-box attack; the off-diagonal cells measure
//! how far a generator carries to a model it never saw.

use std::path::Path;
use std::time::Instant;

use advclust_core::{ModelOracle, NormKind, ParamGuard};
use advclust_gan::{AdvLoss, AttackConfig, GradientSource, Stopping, TrainedAttack};
use advclust_metrics::{ClusteringScores, clustering_scores};
use advclust_models::{Victim, VictimKind};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::pipeline::{self, DatasetSpec, VictimSpec};
use advclust_core::DifferentiableClusterModel;

/// Reads one score (NMI, ARI or ACC) out of a [`ClusteringScores`].
type ScoreField = fn(&ClusteringScores) -> f64;

/// How the generators of the matrix are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSettings {
    /// L-inf eps in `[0, 1]` pixels, the same for every source.
    pub epsilon: f32,
    /// Images each generator is trained on (a seeded subset of the evaluation set).
    pub train_limit: usize,
    /// Images evaluated (a seeded subset of the dataset); `None`: the whole set.
    #[serde(default)]
    pub eval_limit: Option<usize>,
    /// Training batch.
    pub batch_size: usize,
    /// Maximum epochs (training stops earlier at convergence).
    pub max_epochs: usize,
    /// Relative tolerance of the convergence test on the generator loss.
    pub tolerance: f64,
    /// Epochs the loss must stay within the tolerance.
    pub patience: usize,
    /// Seed of every attack.
    pub seed: u64,
    /// What every generator maximises.
    pub loss: AdvLoss,
}

impl Default for TransferSettings {
    /// The Table 1 settings at eps 0.1: 2,048 training images, batch 256, convergence within
    /// 1 % for 3 epochs (at most 40), seed 0, the paper's output distance.
    fn default() -> Self {
        TransferSettings {
            epsilon: 0.1,
            train_limit: 2048,
            eval_limit: None,
            batch_size: 256,
            max_epochs: 40,
            tolerance: 0.01,
            patience: 3,
            seed: 0,
            loss: AdvLoss::OutputDistance,
        }
    }
}

/// The source x target matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferMatrix {
    /// The dataset (evaluation set) as named.
    pub dataset: String,
    /// Images evaluated.
    pub images: usize,
    /// The settings.
    pub settings: TransferSettings,
    /// The victims as named, in matrix order (rows = sources, columns = targets).
    pub victims: Vec<String>,
    /// Their kinds.
    pub kinds: Vec<VictimKind>,
    /// Each target's clean scores.
    pub clean: Vec<ClusteringScores>,
    /// `adversarial[s][t]`: target `t`'s scores on the images perturbed by source `s`'s
    /// generator.
    pub adversarial: Vec<Vec<ClusteringScores>>,
    /// Whether each source's generator was trained by this run (false: reused from the run
    /// directory).
    pub trained: Vec<bool>,
    /// Each source's generator training time, seconds (0 when reused).
    pub training_seconds: Vec<f64>,
    /// Each source's victim calls in training (as recorded in its report).
    pub training_calls: Vec<u64>,
}

impl TransferMatrix {
    /// `1 - adversarial NMI / clean NMI` of cell `(s, t)`.
    pub fn relative_nmi_drop(&self, s: usize, t: usize) -> f64 {
        let clean = self.clean[t].nmi;
        if clean > 0.0 {
            1.0 - self.adversarial[s][t].nmi / clean
        } else {
            0.0
        }
    }

    /// Short labels for the victims: their kind names when those are unique, else the names.
    pub fn labels(&self) -> Vec<String> {
        let mut kinds: Vec<VictimKind> = self.kinds.clone();
        kinds.sort();
        kinds.dedup();
        if kinds.len() == self.kinds.len() {
            self.kinds.iter().map(|k| k.name().to_string()).collect()
        } else {
            self.victims.clone()
        }
    }

    /// The matrix as markdown: target NMI, ARI and ACC tables (rows = sources) with each
    /// target's clean scores in the first row.
    pub fn markdown(&self) -> String {
        let labels = self.labels();
        let mut s = String::new();
        let metrics: [(&str, ScoreField); 3] =
            [("NMI", |c| c.nmi), ("ARI", |c| c.ari), ("ACC", |c| c.acc)];
        for (name, get) in metrics {
            s += &format!("\nTarget {name} (rows: source of the generator; columns: target)\n\n");
            s += &format!("| source \\ target | {} |\n", labels.join(" | "));
            s += &format!("|---|{}\n", "---|".repeat(labels.len()));
            let row = |cells: Vec<f64>| {
                cells
                    .iter()
                    .map(|v| format!("{v:.4}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            s += &format!(
                "| clean | {} |\n",
                row(self.clean.iter().map(get).collect())
            );
            for (i, l) in labels.iter().enumerate() {
                s += &format!(
                    "| {l} | {} |\n",
                    row(self.adversarial[i].iter().map(get).collect())
                );
            }
        }
        s
    }
}

/// A generator for `victim` in `dir` (`dir/attack`), reused when it exists, else trained and
/// saved there. Returns it with whether it was trained and the training seconds.
fn source_generator(
    name: &str,
    victim: &Victim,
    dataset: &DatasetSpec,
    eval: &advclust_data::Dataset,
    settings: &TransferSettings,
    dir: &Path,
    device: &Device,
) -> Result<(TrainedAttack, bool, f64), Error> {
    let saved = dir.join("attack");
    if saved.exists() {
        // A generator is reused only for the victim it was trained against (its run report
        // names it), so a directory copied or linked into the wrong row is refused.
        let report = pipeline::read_json(&dir.join("report.json"), 64 << 20)?;
        let trained_for = report.get("victim").and_then(|v| v.as_str());
        if trained_for != Some(name) {
            return Err(Error::InvalidArgument(format!(
                "{}: a generator trained against {}, not {name} (use another --out)",
                saved.display(),
                trained_for.unwrap_or("an unnamed victim")
            )));
        }
        let attack = TrainedAttack::load(&saved, device)?;
        let threat = attack.threat_model();
        if threat.norm() != NormKind::Linf || threat.epsilon() != settings.epsilon {
            return Err(Error::InvalidArgument(format!(
                "{}: a generator for {name} at {:?} eps {}, not L-inf eps {} (use another --out)",
                saved.display(),
                threat.norm(),
                threat.epsilon(),
                settings.epsilon
            )));
        }
        return Ok((attack, false, 0.0));
    }
    let started = Instant::now();
    let train = if settings.train_limit < eval.len() {
        eval.shuffled(settings.seed).take(settings.train_limit)
    } else {
        eval.clone()
    };
    let config = AttackConfig::new()
        .with_norm(NormKind::Linf)
        .with_epsilon(settings.epsilon)
        .with_gradient_source(GradientSource::Backprop)
        .with_loss(settings.loss)
        .with_stopping(Stopping::Convergence {
            max_epochs: settings.max_epochs,
            min_epochs: 1,
            tolerance: settings.tolerance,
            patience: settings.patience,
        })
        .with_batch_size(settings.batch_size)
        .with_seed(settings.seed)
        .with_max_images_per_call(Some(settings.batch_size))
        .check()?;
    let outcome = pipeline::attack_victim(&config, victim, &train, eval, device, None)?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("victim".into(), name.into());
    metadata.insert("dataset".into(), dataset.to_string().into());
    pipeline::save_attack_run(dir, &outcome, eval, metadata)?;
    Ok((outcome.attack, true, started.elapsed().as_secs_f64()))
}

/// Builds the transfer matrix of `victims` on `dataset` (see the module docs); generators live
/// in `<out>/generators/<index>-<kind>/`. `on_cell(source, target, scores)` sees every cell.
///
/// Errors: fewer than two victims, a victim whose input shape differs from the dataset's or a
/// generator whose image shape does not fit a target (naming both), a saved generator at
/// another eps or trained against another victim, any training or I/O error.
pub fn run_transfer(
    victims: &[VictimSpec],
    dataset: &DatasetSpec,
    settings: &TransferSettings,
    out: &Path,
    device: &Device,
    on_cell: &mut dyn FnMut(&str, &str, &ClusteringScores),
) -> Result<TransferMatrix, Error> {
    if victims.len() < 2 {
        return Err(Error::InvalidArgument(
            "a transfer matrix needs at least two victims".into(),
        ));
    }
    let eval = dataset.load(settings.eval_limit, settings.seed)?;
    let clean_images = eval.to_image_batch()?;
    let names: Vec<String> = victims.iter().map(|v| v.to_string()).collect();
    let loaded: Vec<Victim> = victims
        .iter()
        .map(|v| v.load(device))
        .collect::<Result<_, _>>()?;
    let [_, c, h, w] = clean_images.dims();
    for (name, v) in names.iter().zip(&loaded) {
        if v.input_shape() != [c, h, w] {
            return Err(Error::ShapeMismatch {
                what: format!("dataset {dataset}"),
                shape: [c, h, w],
                target: name.clone(),
                target_shape: v.input_shape(),
            });
        }
    }
    let clusters_of = |victim: &Victim, images: &advclust_core::ImageBatch| {
        let mut oracle = ModelOracle::new(victim, device);
        let clusters = pipeline::query_clusters(&mut oracle, images, 256)?;
        Ok::<_, Error>(clustering_scores(eval.labels(), &clusters)?)
    };
    let clean = loaded
        .iter()
        .map(|v| clusters_of(v, &clean_images))
        .collect::<Result<Vec<_>, _>>()?;
    let mut matrix = TransferMatrix {
        dataset: dataset.to_string(),
        images: eval.len(),
        settings: settings.clone(),
        victims: names.clone(),
        kinds: loaded.iter().map(|v| v.kind()).collect(),
        clean,
        adversarial: Vec::new(),
        trained: Vec::new(),
        training_seconds: Vec::new(),
        training_calls: Vec::new(),
    };
    for (s, source) in loaded.iter().enumerate() {
        let dir = out
            .join("generators")
            .join(format!("{s}-{}", source.kind().name()));
        let (attack, trained, seconds) =
            source_generator(&names[s], source, dataset, &eval, settings, &dir, device)?;
        for (t, target) in loaded.iter().enumerate() {
            if attack.image_shape() != target.input_shape() {
                return Err(Error::ShapeMismatch {
                    what: format!("the generator of {} ({})", names[s], dir.display()),
                    shape: attack.image_shape(),
                    target: names[t].clone(),
                    target_shape: target.input_shape(),
                });
            }
        }
        let adversarial = attack.perturb(&clean_images)?;
        let mut row = Vec::with_capacity(loaded.len());
        for (t, target) in loaded.iter().enumerate() {
            let scores = clusters_of(target, &adversarial)?;
            on_cell(&names[s], &names[t], &scores);
            row.push(scores);
        }
        matrix.adversarial.push(row);
        matrix.trained.push(trained);
        matrix.training_seconds.push(seconds);
        matrix
            .training_calls
            .push(attack.report().training_queries.batch_calls);
    }
    Ok(matrix)
}

/// Writes the matrix as a PNG heatmap of the target's post-attack NMI (paper Fig. 4's look:
/// values in the cells; each target's clean NMI in its column label).
pub fn heatmap(matrix: &TransferMatrix, path: &Path) -> Result<(), Error> {
    let labels = matrix.labels();
    let cols: Vec<String> = labels
        .iter()
        .zip(&matrix.clean)
        .map(|(l, c)| format!("{l} ({:.2})", c.nmi))
        .collect();
    let values: Vec<f64> = matrix
        .adversarial
        .iter()
        .flat_map(|row| row.iter().map(|s| s.nmi))
        .collect();
    let title = format!(
        "Transfer on {}: target NMI after the attack",
        matrix.dataset
    );
    let subtitle = format!(
        "L-inf eps {} (pixels), {} images; column label: target (clean NMI)",
        matrix.settings.epsilon, matrix.images
    );
    advclust_plot::figures::value_heatmap(
        path,
        &advclust_plot::figures::ValueHeatmap {
            title: &title,
            subtitle: &subtitle,
            row_axis: "source (generator trained against)",
            col_axis: "target (clean NMI)",
            row_labels: &labels,
            col_labels: &cols,
            values: &values,
        },
    )?;
    Ok(())
}
