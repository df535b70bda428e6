//! `advclust defend`: the defenses of the paper's Section 6.2 on saved attacks: SSD detection
//! with the authors' injection protocol (Fig. 5a) and the PCA view (Fig. 5b).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use advclust::Error;
use advclust::burn::tensor::Device;
use advclust::core::ImageBatch;
use advclust::defend::{
    DefenseEntry, DetectorAccess, SsdExperiment, SsdVictimResult, adaptive_markdown, adaptive_ssd,
    fit_test_split, ssd_against_attack, ssd_markdown,
};
use advclust::defense::{FeatureExtractor, PcaSolver, PretextFeatures, VictimFeatures, pca_view};
use advclust::gan::TrainedAttack;
use advclust::models::AugmentConfig;
use advclust::models::{Pretext, Victim};
use advclust::pipeline::{self, DatasetSpec, VictimSpec};
use advclust::plot::figures::{BarGroup, grouped_bars, pca_scatter};
use advclust::retrain::{RetrainSettings, adversarial_retraining, retrain_markdown};
use advclust::run_dir::RunDir;
use clap::{Args, Subcommand, ValueEnum};

use crate::DataArgs;

#[derive(Args, Debug)]
pub(crate) struct Defend {
    #[command(subcommand)]
    which: DefendCommand,
}

#[derive(Subcommand, Debug)]
enum DefendCommand {
    /// SSD outlier detection of adversarial images (paper Fig. 5a): detectors fitted on the
    /// features of a seeded clean half, the injection protocol on the other half.
    Ssd(SsdArgs),
    /// Clean and adversarial images on the same three principal components (paper Fig. 5b).
    Pca(PcaArgs),
    /// An adaptive attack that knows SSD: a fresh generator with the saved attack's settings
    /// plus a penalty on SSD's score above its threshold, against the saved attack.
    Adaptive(AdaptiveArgs),
    /// Adversarial retraining (paper footnote 12): rounds of fine-tuning the victim on clean +
    /// generator-perturbed images, each followed by a fresh attack.
    Retrain(RetrainArgs),
}

/// Which features SSD scores.
#[derive(Debug, Clone, PartialEq)]
enum FeatureSpec {
    /// Each entry's own victim backbone.
    Victim,
    /// The backbone of a SimCLR pretext (a `train-pretext` output's `pretext/` folder).
    Pretext(PathBuf),
}

impl FromStr for FeatureSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.split_once(':') {
            None if s == "victim" => Ok(FeatureSpec::Victim),
            Some(("pretext", dir)) if !dir.is_empty() => Ok(FeatureSpec::Pretext(dir.into())),
            _ => Err(Error::InvalidArgument(format!(
                "features {s:?}: use victim or pretext:<dir>"
            ))),
        }
    }
}

#[derive(Args, Debug)]
struct SsdArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Attacked victims, `<victim>=<saved attack dir>` (repeat for several).
    #[arg(long = "entry", required = true)]
    entries: Vec<DefenseEntry>,
    /// Features: `victim` (each entry's own backbone) or `pretext:<dir>` (SSD's choice, a
    /// SimCLR backbone).
    #[arg(long, default_value = "victim")]
    features: FeatureSpec,
    /// Cluster counts of the detectors (repeat; 1 is the paper's).
    #[arg(long = "clusters", default_values_t = [1usize, 10])]
    clusters: Vec<usize>,
    /// Trials of each injection protocol.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Output directory: report.json, ssd.md, detection.png.
    #[arg(long, default_value = "runs/ssd")]
    out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct AdaptiveArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Attacked victims, `<victim>=<saved attack dir>` (repeat; local victims; the adaptive
    /// generator is trained as the saved attack was: backprop or query-only).
    #[arg(long = "entry", required = true)]
    entries: Vec<DefenseEntry>,
    /// Features of the detector: `victim` or `pretext:<dir>`.
    #[arg(long, default_value = "victim")]
    features: FeatureSpec,
    /// Clusters of the detector.
    #[arg(long, default_value_t = 1)]
    clusters: usize,
    /// Weight of the SSD penalty in the generator loss.
    #[arg(long, default_value_t = 1.0)]
    weight: f32,
    /// How the attacker reaches the detector: `white-box` (its score backpropagated) or
    /// `query-only` (scores only, the penalty's gradient estimated from the queries of a
    /// query-only saved attack).
    #[arg(long, value_enum, default_value_t = Access::WhiteBox)]
    detector: Access,
    /// Trials of the injection protocol.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Output directory: report.json, adaptive.md, adaptive-<i>/ (the adaptive generators).
    #[arg(long, default_value = "runs/adaptive")]
    out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    force: bool,
}

/// How the adaptive attacker reaches the detector (`DetectorAccess`).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Access {
    /// Its score backpropagated.
    WhiteBox,
    /// Its scores only.
    QueryOnly,
}

#[derive(Args, Debug)]
struct RetrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The victim (any kind: an embedded one or a saved directory).
    #[arg(long, default_value = "pretrained-cc-mnist")]
    victim: VictimSpec,
    /// The saved attack against it: round 0's generator, and the configuration of every
    /// fresh generator (trained on as many images as it was, a seeded subset).
    #[arg(long)]
    attack: PathBuf,
    /// Rounds of fine-tuning.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Fine-tuning epochs per round (over clean + adversarial images).
    #[arg(long, default_value_t = 5)]
    finetune_epochs: usize,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Fine-tuning learning rate (Adam; CC trained at 1e-3, SCAN at 1e-4).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Neighbours per image during fine-tuning: SCAN's and NNM's mined neighbours, SPICE's
    /// reliable-set neighbourhood.
    #[arg(long, default_value_t = 20)]
    neighbors: usize,
    /// Output directory: report.json, retrain.md, victim/ (the last fine-tuned victim).
    #[arg(long, default_value = "runs/retrain")]
    out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    force: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Solver {
    /// Randomised range finder, 4 power iterations.
    Randomized,
    /// Thin SVD of the whole matrix.
    Exact,
}

#[derive(Args, Debug)]
struct PcaArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The saved attack whose adversarial images are shown.
    #[arg(long)]
    attack: PathBuf,
    /// How the principal components are found.
    #[arg(long, value_enum, default_value_t = Solver::Randomized)]
    solver: Solver,
    /// Output directory: report.json, pca.png.
    #[arg(long, default_value = "runs/pca")]
    out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    force: bool,
}

pub(crate) fn defend(a: Defend, device: &Device, command: String) -> Result<(), Error> {
    let message = match &a.which {
        DefendCommand::Ssd(s) => RunDir::run(&s.out, s.force, |out| ssd(s, out, device, &command))?,
        DefendCommand::Pca(p) => RunDir::run(&p.out, p.force, |out| pca(p, out, device, &command))?,
        DefendCommand::Retrain(r) => {
            RunDir::run(&r.out, r.force, |out| retrain(r, out, device, &command))?
        }
        DefendCommand::Adaptive(d) => {
            RunDir::run(&d.out, d.force, |out| adaptive(d, out, device, &command))?
        }
    };
    println!("{message}");
    Ok(())
}

/// Writes `report.json` and the Markdown table `table` into `out`, prints the table, and
/// returns the "report ...; table ..." part of the closing line.
fn write_report(
    out: &Path,
    json: &serde_json::Value,
    table: &str,
    md: &str,
) -> Result<String, Error> {
    pipeline::write_json(&out.join("report.json"), json)?;
    pipeline::write_text(&out.join(table), md)?;
    print!("{md}");
    Ok(format!(
        "report {}; table {}",
        out.join("report.json").display(),
        out.join(table).display()
    ))
}

/// The split of `data` into a fit half and a test half (images, and the test labels).
fn split(data: &DataArgs) -> Result<(ImageBatch, ImageBatch, Vec<usize>), Error> {
    let dataset = data.dataset.load(data.limit, data.seed)?;
    let images = dataset.to_image_batch()?;
    let (fit_idx, test_idx) = fit_test_split(images.len(), data.seed)?;
    let labels = test_idx.iter().map(|&i| dataset.labels()[i]).collect();
    Ok((images.select(&fit_idx)?, images.select(&test_idx)?, labels))
}

/// The detector's features for every entry: one pretext, or each entry's victim.
enum Extractors {
    Pretext(Box<Pretext>),
    Victim,
}

impl Extractors {
    fn new(spec: &FeatureSpec, device: &Device) -> Result<Self, Error> {
        Ok(match spec {
            FeatureSpec::Pretext(dir) => Extractors::Pretext(Box::new(Pretext::load(dir, device)?)),
            FeatureSpec::Victim => Extractors::Victim,
        })
    }

    /// Plain (scoring) and frozen (differentiable) extractors for `victim`.
    fn for_victim(
        &self,
        victim: &Victim,
        device: &Device,
    ) -> (Box<dyn FeatureExtractor>, Box<dyn FeatureExtractor>) {
        match self {
            Extractors::Pretext(p) => (
                Box::new(PretextFeatures::new(&p.model, device)),
                Box::new(PretextFeatures::frozen(&p.model, device)),
            ),
            Extractors::Victim => (
                Box::new(VictimFeatures::new(victim, device)),
                Box::new(VictimFeatures::frozen(victim, device)),
            ),
        }
    }
}

fn adaptive(a: &AdaptiveArgs, out: &Path, device: &Device, command: &str) -> Result<String, Error> {
    let (fit, test, labels) = split(&a.data)?;
    let experiment = SsdExperiment {
        clusters: vec![a.clusters],
        trials: a.trials,
        seed: a.data.seed,
    };
    let extractors = Extractors::new(&a.features, device)?;
    let mut results = Vec::new();
    for (i, entry) in a.entries.iter().enumerate() {
        let victim = entry.victim.load(device)?;
        let attack = TrainedAttack::load(&entry.attack, device)?;
        let (plain, frozen) = extractors.for_victim(&victim, device);
        let access = match a.detector {
            Access::QueryOnly => DetectorAccess::QueryOnly,
            Access::WhiteBox => DetectorAccess::WhiteBox(frozen),
        };
        let (mut r, generator) = adaptive_ssd(
            &victim,
            plain.as_ref(),
            access,
            (&fit, &test, &labels),
            &attack,
            a.clusters,
            a.weight,
            &experiment,
            device,
        )?;
        r.entry = entry.to_string();
        generator.save(out.join(format!("adaptive-{i}")))?;
        for (name, u) in [("ignores SSD", &r.plain), ("adaptive", &r.adaptive)] {
            println!(
                "{entry} {name}: NMI {:.4} -> {:.4} ({:.1} % drop), detected {:.2} % (clean flagged {:.2} %)",
                u.clean.nmi,
                u.adversarial.nmi,
                100.0 * u.relative_nmi_drop,
                100.0 * u.batch.detection_rate.mean,
                100.0 * u.batch.clean_flag_rate.mean
            );
        }
        results.push(r);
    }
    let md = adaptive_markdown(&results);
    let json = serde_json::json!({
        "command": command,
        "dataset": a.data.dataset.to_string(),
        "fit_images": fit.len(),
        "test_images": test.len(),
        "results": pipeline::to_json(&results)?,
    });
    write_report(out, &json, "adaptive.md", &md)
}

fn retrain(a: &RetrainArgs, out: &Path, device: &Device, command: &str) -> Result<String, Error> {
    let attack = TrainedAttack::load(&a.attack, device)?;
    let (train, data) = crate::train_and_eval(&a.data, Some(attack.report().train_images))?;
    let images = data.to_image_batch()?;
    let settings = RetrainSettings {
        rounds: a.rounds,
        finetune_epochs: a.finetune_epochs,
        batch_size: a.batch_size,
        learning_rate: a.lr,
        seed: a.data.seed,
        dataset: a.data.dataset.to_string(),
        augment: match a.data.dataset {
            DatasetSpec::MnistEmbedded | DatasetSpec::Mnist(_) => AugmentConfig::digits(),
            _ => AugmentConfig::for_channels(images.image_shape()[0]),
        },
        neighbors: a.neighbors,
    };
    let (rounds, victim) = adversarial_retraining(
        a.victim.load(device)?,
        attack,
        (&images, data.labels()),
        &train.to_image_batch()?,
        &settings,
        device,
        &mut |r| {
            println!(
                "round {}: clean NMI {:.4}, under the previous generator {}, under a fresh one {:.4} ({:.1} % drop)",
                r.round,
                r.clean.nmi,
                r.previous_generator
                    .map_or("-".into(), |s| format!("{:.4}", s.nmi)),
                r.fresh_generator.nmi,
                100.0 * r.relative_nmi_drop
            )
        },
    )?;
    victim.save(out.join("victim"))?;
    let md = retrain_markdown(&rounds);
    let json = serde_json::json!({
        "command": command,
        "dataset": a.data.dataset.to_string(),
        "victim": a.victim.to_string(),
        "attack": a.attack.display().to_string(),
        "settings": pipeline::to_json(&settings)?,
        "rounds": pipeline::to_json(&rounds)?,
    });
    let written = write_report(out, &json, "retrain.md", &md)?;
    Ok(format!(
        "{written}; victim {}",
        out.join("victim").display()
    ))
}

fn ssd(a: &SsdArgs, out: &Path, device: &Device, command: &str) -> Result<String, Error> {
    let (fit, test, _) = split(&a.data)?;
    let experiment = SsdExperiment {
        clusters: a.clusters.clone(),
        trials: a.trials,
        seed: a.data.seed,
    };
    let extractors = Extractors::new(&a.features, device)?;
    let mut results: Vec<SsdVictimResult> = Vec::new();
    for entry in &a.entries {
        let attack = TrainedAttack::load(&entry.attack, device)?;
        let extractor: Box<dyn FeatureExtractor> = match &extractors {
            Extractors::Pretext(p) => Box::new(PretextFeatures::new(&p.model, device)),
            Extractors::Victim => {
                Box::new(VictimFeatures::new(&entry.victim.load(device)?, device))
            }
        };
        let extractor = extractor.as_ref();
        let r = ssd_against_attack(
            extractor,
            &fit,
            &test,
            &attack,
            &entry.to_string(),
            &experiment,
        )?;
        for k in &r.results {
            println!(
                "{entry} k={}: detected {:.2} % (batch), {:.2} % (per sample), clean flagged {:.2} %, AUROC {:.4}",
                k.clusters,
                100.0 * k.batch.detection_rate.mean,
                100.0 * k.sample.detection_rate.mean,
                100.0 * k.batch.clean_flag_rate.mean,
                k.batch.metrics.auroc
            );
        }
        results.push(r);
    }
    let md = ssd_markdown(&results);
    let series: Vec<String> = a.clusters.iter().map(|k| format!("k = {k}")).collect();
    let groups: Vec<BarGroup> = results
        .iter()
        .map(|r| BarGroup {
            name: r.entry.split('=').next().unwrap_or(&r.entry).to_string(),
            values: r
                .results
                .iter()
                .map(|k| k.batch.detection_rate.mean)
                .collect(),
        })
        .collect();
    let figure = out.join("detection.png");
    grouped_bars(
        &figure,
        &format!(
            "SSD: adversarial images detected ({}, {} trials)",
            a.data.dataset, a.trials
        ),
        "detected",
        &series,
        &groups,
        true,
        Some(("5 % of clean images flagged", 0.05)),
    )?;
    let json = serde_json::json!({
        "command": command,
        "dataset": a.data.dataset.to_string(),
        "images": fit.len() + test.len(),
        "fit_images": fit.len(),
        "test_images": test.len(),
        "experiment": pipeline::to_json(&experiment)?,
        "results": pipeline::to_json(&results)?,
    });
    let written = write_report(out, &json, "ssd.md", &md)?;
    Ok(format!("{written}; figure {}", figure.display()))
}

fn pca(a: &PcaArgs, out: &Path, device: &Device, command: &str) -> Result<String, Error> {
    let data = a.data.dataset.load(a.data.limit, a.data.seed)?;
    let images = data.to_image_batch()?;
    let attack = TrainedAttack::load(&a.attack, device)?;
    let adversarial = attack.perturb(&images)?;
    let solver = match a.solver {
        Solver::Randomized => PcaSolver::default(),
        Solver::Exact => PcaSolver::Exact,
    };
    let view = pca_view(&images, &adversarial, solver, a.data.seed)?;
    let points =
        |z: &[f64]| -> Vec<[f64; 3]> { z.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect() };
    let figure = out.join("pca.png");
    let r = &view.report;
    pca_scatter(
        &figure,
        &format!(
            "{}: clean vs adversarial on the clean PCs (shift {:.3} of a random clean pair)",
            a.data.dataset, r.relative_shift
        ),
        &points(&view.clean),
        &points(&view.adversarial),
    )?;
    let json = serde_json::json!({
        "command": command,
        "dataset": a.data.dataset.to_string(),
        "attack": a.attack.display().to_string(),
        "report": pipeline::to_json(r)?,
    });
    pipeline::write_json(&out.join("report.json"), &json)?;
    Ok(format!(
        "{} images x {} values, PCA fit {:.2} s, explained variance {:?}; clean -> adversarial {:.4}, random clean pair {:.4} (ratio {:.4}); report {}; figure {}",
        r.images,
        r.dim,
        r.fit_seconds,
        r.explained_variance_ratio,
        r.mean_clean_to_adversarial,
        r.mean_random_clean_pair,
        r.relative_shift,
        out.join("report.json").display(),
        figure.display()
    ))
}
