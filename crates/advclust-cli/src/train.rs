//! The training commands: `train-victim` (any victim kind), `train-pretext` (the SimCLR
//! pretext SCAN starts from) and `victims` (the embedded victims and their scores).

use std::path::PathBuf;

use advclust::Error;
use advclust::core::argmax_rows;
use advclust::models::{
    AugmentConfig, CcConfig, CcTrainConfig, ClusterModelExt, EMBEDDED, MiceTrainConfig,
    MixtureConfig, MixtureKind, NnmTrainConfig, Pretext, PretextTrainConfig, ResNetConfig,
    RucTrainConfig, RunConfig, ScanTrainConfig, SimClrConfig, SpiceTrainConfig, VictimModel,
};
use advclust::pipeline::{self, DatasetSpec};
use clap::{Args, ValueEnum};

use crate::DataArgs;

/// The backbone options shared by `train-victim --model cc` and `train-pretext`.
#[derive(Args, Debug)]
pub(crate) struct BackboneArgs {
    /// Backbone stage widths.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64")]
    widths: Vec<usize>,
    /// Residual blocks per stage.
    #[arg(long, default_value_t = 1)]
    blocks: usize,
    /// Stride of the backbone stem.
    #[arg(long, default_value_t = 2)]
    stem_stride: usize,
}

/// The run options shared by every training command (defaults depend on the model).
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Training epochs of the first stage (default: cc 20, scan 20 + self-label epochs, nnm 30,
    /// spice 30 + SPICE-Semi epochs, mice 30, ruc 10, pretext 40).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step of the first stage (default: cc 256, scan 128, nnm 200, spice 128, mice 256, ruc 128,
    /// pretext 256).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate of the first stage (default: cc 1e-3, scan 1e-4, nnm 1e-4, spice
    /// 5e-3, mice 1e-3, ruc 1e-3, pretext 1e-3); later stages (self-labelling, SPICE-Semi) keep their own.
    #[arg(long)]
    lr: Option<f64>,
    /// Augmentation preset (default: digits for MNIST, else by the number of channels).
    #[arg(long, value_enum)]
    augment: Option<Augment>,
    /// Smallest crop area of the random resized crop (overrides the preset).
    #[arg(long)]
    crop_min: Option<f32>,
    /// Score the model every this many epochs (0: only at the end).
    #[arg(long, default_value_t = 5)]
    eval_every: usize,
    /// Write a checkpoint every this many epochs (and after the last).
    #[arg(long, default_value_t = 5)]
    checkpoint_every: usize,
    /// Stop each epoch after this many steps (for timing runs).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Augment {
    /// Crops, small rotations and shear, stroke dilation/erosion, brightness/contrast.
    Digits,
    /// Crops, flips, brightness/contrast.
    Grayscale,
    /// SimCLR-style crops, flips, colour jitter, random grayscale.
    Color,
}

/// What `train-victim --model` trains (the two mixtures are both of victim kind `mixture`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    /// Contrastive Clustering.
    Cc,
    /// SCAN on a pretext, with self-labelling.
    Scan,
    /// NNM on a pretext.
    Nnm,
    /// SPICE on a pretext.
    Spice,
    /// MiCE (mixture of contrastive experts) on a pretext.
    Mice,
    /// RUC on a trained SCAN (--base) and its pretext.
    Ruc,
    /// Diagonal Gaussian mixture on PCA scores (fitted by EM, no pretext).
    Gmm,
    /// Soft k-means on PCA scores (softmax of negative squared distances).
    SoftKmeans,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Cc => "cc",
            Model::Scan => "scan",
            Model::Nnm => "nnm",
            Model::Spice => "spice",
            Model::Mice => "mice",
            Model::Ruc => "ruc",
            Model::Gmm => "gmm",
            Model::SoftKmeans => "soft-kmeans",
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Args, Debug)]
pub(crate) struct TrainVictim {
    #[command(flatten)]
    data: DataArgs,
    /// The victim: cc, scan, nnm, spice, mice or ruc (all but cc need --pretext; ruc
    /// also --base), or a classical soft
    /// clustering fitted on the host, gmm or soft-kmeans.
    #[arg(long, value_enum, default_value_t = Model::Cc)]
    model: Model,
    /// Number of clusters (default: number of classes).
    #[arg(long)]
    k: Option<usize>,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    run: RunArgs,
    /// scan, nnm: the pretext directory written by `train-pretext` on the same data.
    #[arg(long, required_if_eq_any([("model", "scan"), ("model", "nnm"), ("model", "spice"), ("model", "mice"), ("model", "ruc")]))]
    pretext: Option<PathBuf>,
    /// scan, nnm, spice: cluster heads trained side by side, the lowest-loss one kept
    /// (default: scan 1, nnm 3, spice 3).
    #[arg(long)]
    heads: Option<usize>,
    /// scan, nnm: weight of the entropy term.
    #[arg(long, default_value_t = 5.0)]
    entropy_weight: f64,
    /// scan: self-labelling epochs after the SCAN stage (0: none).
    #[arg(long, default_value_t = 10)]
    selflabel_epochs: usize,
    /// scan: confidence threshold of self-labelling.
    #[arg(long, default_value_t = 0.99)]
    selflabel_threshold: f64,
    /// spice: SPICE-Semi (FixMatch) epochs after SPICE-Self (0: ship SPICE-Self).
    #[arg(long, default_value_t = 10)]
    semi_epochs: usize,
    /// spice: fraction of an image's 100 embedding neighbours that must share its prediction
    /// for it to be reliable.
    #[arg(long, default_value_t = 0.99)]
    reliable_ratio: f64,
    /// spice: softmax a reliable image's prediction must exceed.
    #[arg(long, default_value_t = 0.99)]
    reliable_score: f64,
    /// mice: size of every expert and gating embedding (at least k).
    #[arg(long, default_value_t = 32)]
    embedding_dim: usize,
    /// mice: entries of the negatives queue (more than a batch).
    #[arg(long, default_value_t = 2048)]
    queue_size: usize,
    /// ruc: the SCAN victim RUC starts from (embedded name or saved directory).
    #[arg(long, required_if_eq("model", "ruc"))]
    base: Option<advclust::pipeline::VictimSpec>,
    /// ruc: base-model confidence an image needs to be clean.
    #[arg(long, default_value_t = 0.9)]
    clean_threshold: f64,
    /// ruc: clean images every base cluster gets at least (its most confident ones; 0: none,
    /// as RUC).
    #[arg(long, default_value_t = 100)]
    min_clean_per_cluster: usize,
    /// ruc: pretext neighbours (the image included) that vote on its label.
    #[arg(long, default_value_t = 50)]
    vote_neighbors: usize,
    /// mice: momentum of the teacher's moving average.
    #[arg(long, default_value_t = 0.99)]
    momentum: f64,
    /// gmm, soft-kmeans: PCA components the mixture works on.
    #[arg(long, default_value_t = 50)]
    components: usize,
    /// Output directory (model in <out>/model, report in <out>/report.json).
    #[arg(long, default_value = "runs/victim")]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct TrainPretext {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    run: RunArgs,
    /// NT-Xent temperature.
    #[arg(long, default_value_t = 0.1)]
    temperature: f64,
    /// Neighbours mined per image.
    #[arg(long, default_value_t = 20)]
    neighbors: usize,
    /// Output directory (pretext in <out>/pretext, report in <out>/report.json).
    #[arg(long, default_value = "runs/pretext")]
    out: PathBuf,
}

impl RunArgs {
    fn run_config(
        &self,
        defaults: (usize, usize, f64),
        seed: u64,
        out: &std::path::Path,
    ) -> RunConfig {
        let mut run = RunConfig::new(
            self.epochs.unwrap_or(defaults.0),
            self.batch_size.unwrap_or(defaults.1),
            self.lr.unwrap_or(defaults.2),
        );
        run.seed = seed;
        run.eval_every = self.eval_every;
        run.checkpoint_every = self.checkpoint_every;
        run.max_steps_per_epoch = self.max_steps;
        run.checkpoint_dir = Some(out.to_path_buf());
        run.resume = self.resume;
        run
    }

    /// A later stage's run (self-labelling, SPICE-Semi): the stage's own batch size and
    /// optimiser, `epochs`, and this command's seed, logging and checkpoint settings.
    fn later_stage(
        &self,
        stage: &RunConfig,
        epochs: usize,
        seed: u64,
        out: &std::path::Path,
    ) -> RunConfig {
        let mut run = self.run_config((epochs, stage.batch_size, stage.learning_rate), seed, out);
        run.epochs = epochs;
        run.batch_size = stage.batch_size;
        run.learning_rate = stage.learning_rate;
        run.weight_decay = stage.weight_decay;
        run
    }

    fn augment(&self, dataset: &DatasetSpec, channels: usize) -> AugmentConfig {
        let mut augment = match self.augment {
            Some(Augment::Digits) => AugmentConfig::digits(),
            Some(Augment::Grayscale) => AugmentConfig::grayscale(),
            Some(Augment::Color) => AugmentConfig::color(),
            None if matches!(dataset, DatasetSpec::MnistEmbedded | DatasetSpec::Mnist(_)) => {
                AugmentConfig::digits()
            }
            None => AugmentConfig::for_channels(channels),
        };
        if let Some(m) = self.crop_min {
            augment.crop_scale[0] = m;
        }
        augment
    }
}

impl BackboneArgs {
    fn config(&self, channels: usize) -> ResNetConfig {
        ResNetConfig::new(channels, &self.widths, self.blocks).with_stem_stride(self.stem_stride)
    }
}

/// Prints `what: NMI .. ARI .. ACC ..` when there are scores.
fn print_scores(what: &str, scores: Option<advclust::metrics::ClusteringScores>) {
    if let Some(s) = scores {
        println!("{what}: NMI {:.4} ARI {:.4} ACC {:.4}", s.nmi, s.ari, s.acc);
    }
}

pub(crate) fn train_victim(
    a: TrainVictim,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    let data = a.data.dataset.load(a.data.limit, a.data.seed)?;
    let [n, c, h, w] = data.dims();
    let k = a.k.unwrap_or(data.num_classes());
    eprintln!(
        "{}: {n} images of {c}x{h}x{w}, k = {k}, victim {}",
        a.data.dataset, a.model
    );
    let images = data.to_image_batch()?;
    let augment = a.run.augment(&a.data.dataset, c);
    let model_dir = a.out.join("model");
    let (report, train_seconds) = match a.model {
        Model::Cc => {
            let run = a.run.run_config((20, 256, 1e-3), a.data.seed, &a.out);
            let model =
                CcConfig::new([c, h, w], k, &a.backbone.widths).with_backbone(a.backbone.config(c));
            let mut config = CcTrainConfig::new(model);
            config.dataset = a.data.dataset.to_string();
            config.run = run;
            config.augment = augment;
            let (model, report) =
                advclust::models::train_cc(&config, &images, Some(data.labels()), device)?;
            save_with_command(model, &command, &model_dir)?;
            print_scores(
                &format!("victim on {}", a.data.dataset),
                report.final_scores,
            );
            (pipeline::to_json(&report)?, report.train_seconds)
        }
        Model::Scan => {
            let pretext = load_pretext(&a, device)?;
            let mut config = ScanTrainConfig::new(k, c);
            config.dataset = a.data.dataset.to_string();
            config.num_heads = a.heads.unwrap_or(config.num_heads);
            config.entropy_weight = a.entropy_weight;
            config.augment = augment.clone();
            config.run = a.run.run_config((20, 128, 1e-4), a.data.seed, &a.out);
            config.run.weight_decay = 1e-4;
            config.selflabel = match (a.selflabel_epochs, config.selflabel.take()) {
                (0, _) | (_, None) => None,
                (epochs, Some(mut sl)) => {
                    sl.threshold = a.selflabel_threshold;
                    sl.augment = augment;
                    sl.run = a.run.later_stage(&sl.run, epochs, a.data.seed, &a.out);
                    Some(sl)
                }
            };
            let (model, report) = advclust::models::train_scan(
                &config,
                &pretext,
                &images,
                Some(data.labels()),
                device,
            )?;
            save_with_command(model, &command, &model_dir)?;
            print_scores("after the SCAN stage", report.scan_scores);
            print_scores(
                &format!("victim on {}", a.data.dataset),
                report.final_scores,
            );
            let seconds = report.scan.train_seconds
                + report.selflabel.as_ref().map_or(0.0, |r| r.train_seconds);
            (pipeline::to_json(&report)?, seconds)
        }
        Model::Nnm => {
            let pretext = load_pretext(&a, device)?;
            let mut config = NnmTrainConfig::new(k, c);
            config.dataset = a.data.dataset.to_string();
            config.num_heads = a.heads.unwrap_or(config.num_heads);
            config.entropy_weight = a.entropy_weight;
            config.augment = augment;
            config.run = a.run.run_config((30, 200, 1e-4), a.data.seed, &a.out);
            config.run.weight_decay = 1e-4;
            let (model, report) = advclust::models::train_nnm(
                &config,
                &pretext,
                &images,
                Some(data.labels()),
                device,
            )?;
            save_with_command(model, &command, &model_dir)?;
            if let Some(agreement) = report.neighbor_agreement {
                println!("backbone-feature neighbour agreement: {agreement:.4}");
            }
            print_scores(
                &format!("victim on {}", a.data.dataset),
                report.final_scores,
            );
            (pipeline::to_json(&report)?, report.run.train_seconds)
        }
        Model::Spice => {
            let pretext = load_pretext(&a, device)?;
            let mut config = SpiceTrainConfig::new(k, c).with_augment(augment);
            config.dataset = a.data.dataset.to_string();
            config.num_heads = a.heads.unwrap_or(config.num_heads);
            config.prototype.run = a.run.run_config((30, 128, 5e-3), a.data.seed, &a.out);
            config.reliable.ratio = a.reliable_ratio;
            config.reliable.score_threshold = a.reliable_score;
            config.semi = match (a.semi_epochs, config.semi.take()) {
                (0, _) | (_, None) => None,
                (epochs, Some(mut semi)) => {
                    semi.run = a.run.later_stage(&semi.run, epochs, a.data.seed, &a.out);
                    Some(semi)
                }
            };
            let (model, report) = advclust::models::train_spice(
                &config,
                &pretext,
                &images,
                Some(data.labels()),
                device,
            )?;
            save_with_command(model, &command, &model_dir)?;
            print_scores(
                &format!("SPICE-Self (head {})", report.selected_head),
                report.self_scores,
            );
            if let Some(r) = &report.reliable {
                println!(
                    "reliable images: {} (per cluster before balancing {:?}), ACC {}",
                    r.count,
                    r.per_cluster,
                    r.accuracy.map_or("-".into(), |a| format!("{a:.4}"))
                );
            }
            print_scores(
                &format!("victim on {}", a.data.dataset),
                report.final_scores,
            );
            let seconds = report.self_run.train_seconds
                + report.semi_run.as_ref().map_or(0.0, |r| r.train_seconds);
            (pipeline::to_json(&report)?, seconds)
        }
        Model::Mice => {
            let pretext = load_pretext(&a, device)?;
            let mut config = MiceTrainConfig::new(k, c);
            config.dataset = a.data.dataset.to_string();
            config.augment = augment;
            config.embedding_dim = a.embedding_dim;
            config.queue_size = a.queue_size;
            config.momentum = a.momentum;
            config.run = a.run.run_config((30, 256, 1e-3), a.data.seed, &a.out);
            let (model, report) = advclust::models::train_mice(
                &config,
                &pretext,
                &images,
                Some(data.labels()),
                device,
            )?;
            save_with_command(model, &command, &model_dir)?;
            print_scores("argmax of the gating prior", report.prior_scores);
            print_scores(
                &format!("victim on {}", a.data.dataset),
                report.final_scores,
            );
            (pipeline::to_json(&report)?, report.run.train_seconds)
        }
        Model::Ruc => {
            let pretext = load_pretext(&a, device)?;
            let base = a.base.as_ref().ok_or_else(|| {
                Error::InvalidArgument("--model ruc needs --base <scan victim>".into())
            })?;
            let advclust::models::Victim::Scan(base) = base.load(device)? else {
                return Err(Error::InvalidArgument(format!(
                    "--base {base}: RUC starts from a SCAN victim"
                )));
            };
            let mut config = RucTrainConfig::new(augment);
            config.dataset = a.data.dataset.to_string();
            config.confidence_threshold = a.clean_threshold;
            config.min_clean_per_cluster = a.min_clean_per_cluster;
            config.vote_neighbors = a.vote_neighbors;
            // RUC's recipe (epochs, batch, rate, weight decay, cosine schedule) under this
            // command's options.
            let recipe = config.run.clone();
            config.run = a.run.run_config(
                (recipe.epochs, recipe.batch_size, recipe.learning_rate),
                a.data.seed,
                &a.out,
            );
            config.run.weight_decay = recipe.weight_decay;
            config.run.lr_schedule = recipe.lr_schedule;
            let (model, report) = advclust::models::train_ruc(
                &config,
                &base,
                &pretext,
                &images,
                Some(data.labels()),
                device,
            )?;
            save_with_command(model, &command, &model_dir)?;
            println!(
                "clean set: {} of {n} images ({} confident, {} agree with their neighbours, {} \
                 by the per-cluster floor), per base cluster {:?}",
                report.clean,
                report.confident,
                report.vote_agreed,
                report.topped_up,
                report.clean_per_cluster
            );
            print_scores("base SCAN", report.base_scores);
            print_scores(
                &format!("victim on {}", a.data.dataset),
                report.final_scores,
            );
            (pipeline::to_json(&report)?, report.run.train_seconds)
        }
        Model::Gmm | Model::SoftKmeans => {
            let kind = match a.model {
                Model::Gmm => MixtureKind::Gmm,
                _ => MixtureKind::SoftKmeans,
            };
            let config = MixtureConfig::new(kind, [c, h, w], k, a.components);
            let (model, report) =
                advclust::models::fit_mixture(&images, &config, a.data.seed, device)?;
            let memberships = model.memberships_host(&images, 256, device)?;
            let predicted = argmax_rows(&memberships, k);
            let scores = advclust::metrics::clustering_scores(data.labels(), &predicted)?;
            let saturated = saturated_fraction(&memberships, k, 0.99);
            let summary = report.training_summary(&a.data.dataset.to_string(), Some(scores));
            save_with_command(model.with_training_summary(summary), &command, &model_dir)?;
            println!(
                "PCA: {} components, {:.4} of the variance ({} iterations, {:.1} s); k-means: {} \
                 iterations, inertia {:.1}{}",
                report.components,
                report.explained_variance_ratio,
                report.pca_iterations,
                report.pca_seconds,
                report.kmeans_iterations,
                report.inertia,
                report.log_likelihood.map_or(String::new(), |ll| format!(
                    "; EM: {} iterations, mean log-likelihood {ll:.4}",
                    report.em_iterations
                )),
            );
            print_scores(&format!("victim on {}", a.data.dataset), Some(scores));
            println!("largest membership > 0.99 (saturated): {saturated:.4} of the images");
            let mut json = pipeline::to_json(&report)?;
            json["scores"] = pipeline::to_json(&scores)?;
            json["saturated_fraction"] = serde_json::Value::from(saturated);
            (json, report.fit_seconds)
        }
    };
    let mut json = report;
    json["command"] = serde_json::Value::String(command);
    pipeline::write_json(&a.out.join("report.json"), &json)?;
    println!(
        "training {train_seconds:.1} s; model in {}",
        model_dir.display()
    );
    Ok(())
}

/// Share of the `k`-wide membership rows whose largest value exceeds `threshold`.
fn saturated_fraction(memberships: &[f32], k: usize, threshold: f32) -> f64 {
    let rows = memberships.len() / k.max(1);
    let saturated = memberships
        .chunks_exact(k.max(1))
        .filter(|row| row.iter().copied().fold(f32::NEG_INFINITY, f32::max) > threshold)
        .count();
    saturated as f64 / rows.max(1) as f64
}

/// The pretext `--pretext` names, for the victims that start from one.
fn load_pretext(
    a: &TrainVictim,
    device: &advclust::burn::tensor::Device,
) -> Result<Pretext, Error> {
    let dir = a.pretext.as_ref().ok_or_else(|| {
        Error::InvalidArgument(format!("--model {} needs --pretext <dir>", a.model))
    })?;
    Ok(Pretext::load(dir, device)?)
}

/// Records `command` in the model's training summary and saves it into `dir`.
fn save_with_command<M: VictimModel>(
    model: M,
    command: &str,
    dir: &std::path::Path,
) -> Result<(), Error> {
    let training = model.training().cloned().map(|mut s| {
        s.command = Some(command.to_string());
        s
    });
    Ok(model.with_training(training).save(dir)?)
}

pub(crate) fn train_pretext(
    a: TrainPretext,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    let data = a.data.dataset.load(a.data.limit, a.data.seed)?;
    let [n, c, h, w] = data.dims();
    eprintln!(
        "{}: {n} images of {c}x{h}x{w}, SimCLR pretext",
        a.data.dataset
    );
    let images = data.to_image_batch()?;
    let mut config = PretextTrainConfig::new(SimClrConfig::new([c, h, w], a.backbone.config(c)));
    config.dataset = a.data.dataset.to_string();
    config.temperature = a.temperature;
    config.num_neighbors = a.neighbors;
    config.augment = a.run.augment(&a.data.dataset, c);
    config.run = a.run.run_config((40, 256, 1e-3), a.data.seed, &a.out);
    let (mut pretext, report) =
        advclust::models::train_pretext(&config, &images, Some(data.labels()), device)?;
    if let Some(t) = pretext.training.as_mut() {
        t.command = Some(command.clone());
    }
    let dir = a.out.join("pretext");
    pretext.save(&dir)?;
    let mut json = pipeline::to_json(&report)?;
    json["command"] = serde_json::Value::String(command);
    pipeline::write_json(&a.out.join("report.json"), &json)?;
    if let Some(agreement) = report.neighbor_agreement {
        println!(
            "neighbour agreement ({} neighbours): {:.4}",
            config.num_neighbors, agreement
        );
    }
    println!(
        "training {:.1} s ({:.0} ms/step), mining {:.1} s; pretext in {}",
        report.run.train_seconds,
        report.run.mean_step_ms,
        report.mining_seconds,
        dir.display()
    );
    Ok(())
}

pub(crate) fn list_victims() -> Result<(), Error> {
    println!(
        "{:<24} {:<5} {:<8} {:>7} {:>7} {:>7}  trained",
        "name", "kind", "dataset", "NMI", "ARI", "ACC"
    );
    for e in EMBEDDED {
        let d = e.parsed_description()?;
        let t = d.training.as_ref();
        let s = t.and_then(|t| t.scores);
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!(
            "{:<24} {:<5} {:<8} {:>7} {:>7} {:>7}  {}",
            e.name,
            e.kind,
            e.dataset,
            f(s.map(|s| s.nmi)),
            f(s.map(|s| s.ari)),
            f(s.map(|s| s.acc)),
            t.map_or("-".to_string(), |t| format!(
                "{} epochs, {:.0} s",
                t.epochs, t.train_seconds
            )),
        );
    }
    Ok(())
}
