//! `advclust`: train a victim clustering model, attack it with the GAN attack (through its
//! gradients or only through queries), evaluate, and sweep epsilon. Every command writes a JSON
//! report, and PNG figures where a person would rather look.

use std::path::{Path, PathBuf};
use std::time::Instant;

use advclust::Error;
use advclust::core::ParamGuard;
use advclust::core::{NormKind, QueryBudget};
use advclust::gan::{
    AdvLoss, AttackConfig, AttackError, AttackSettings, GradientSource, Stopping, TrainedAttack,
};
use advclust::pipeline::{self, DatasetSpec, VictimSpec};
use advclust::remote::KServeOracle;
use advclust::run_dir::RunDir;
use clap::{Args, Parser, Subcommand, ValueEnum};

mod baselines;
mod defend;
mod remote;
mod table;
mod train;
mod transfer;

#[derive(Parser, Debug)]
#[command(
    name = "advclust",
    version,
    about = "Adversarial attacks on deep clustering models"
)]
struct Cli {
    /// Backend: flex, tch, tch-cpu, tch-cuda[:N], wgpu, wgpu-cpu (default: best compiled in).
    #[arg(long, global = true)]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a victim (cc, scan, nnm, spice, mice, ruc) or fit one (gmm, soft-kmeans) and save it.
    TrainVictim(train::TrainVictim),
    /// Train the SimCLR pretext (and mine its neighbours) that SCAN starts from.
    TrainPretext(train::TrainPretext),
    /// List the embedded victims with their recorded clean scores.
    Victims,
    /// Paper Tables 1 and 2 on our victims and data: clean -> adversarial scores and calls.
    Table1(table::Table1),
    /// Train the GAN attack against a victim, evaluate it, write report and figures.
    Attack(Attack),
    /// Score a victim on a dataset, clean or through a saved attack.
    Evaluate(Evaluate),
    /// Scores at several epsilons (paper Fig. 3): one trained attack re-bounded, or --retrain.
    Sweep(Sweep),
    /// The GAN against per-image attacks (NES, SPSA, SimBA, Square): NMI vs. images queried.
    Baselines(baselines::Baselines),
    /// Serve a victim over the Open Inference Protocol (KServe v2 REST) until Ctrl-C.
    Serve(remote::Serve),
    /// Defenses on saved attacks: SSD detection (paper Fig. 5a), the PCA view (Fig. 5b).
    Defend(defend::Defend),
    /// Transferability (paper Fig. 4): every source's generator against every target victim.
    Transfer(transfer::Transfer),
}

#[derive(Args, Debug)]
pub(crate) struct DataArgs {
    /// Dataset: mnist (embedded), mnist:<dir>, fashion-mnist:<dir>, cifar10:<dir>, yaleb:<dir>, folder:<dir>.
    #[arg(long, default_value = "mnist")]
    pub(crate) dataset: DatasetSpec,
    /// Use only this many images (a seeded shuffle of the dataset).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Mode {
    /// Backpropagate through the victim (white-box gradients, the reference's mode).
    Backprop,
    /// Query-only: NES gradient estimates from memberships.
    Nes,
    /// Query-only: SPSA gradient estimates from memberships.
    Spsa,
}

/// What the attack maximises.
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub(crate) enum Loss {
    /// The paper's distance between adversarial and clean victim outputs.
    #[default]
    Distance,
    /// Minus the soft mutual information between the clean clusters and the adversarial
    /// memberships (NMI's numerator; untargeted only).
    SoftMi,
    /// The log-membership margin of each image's clean cluster (untargeted only).
    LogMargin,
}

impl From<Loss> for AdvLoss {
    fn from(l: Loss) -> Self {
        match l {
            Loss::Distance => AdvLoss::OutputDistance,
            Loss::SoftMi => AdvLoss::SoftMutualInformation,
            Loss::LogMargin => AdvLoss::LogMargin,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Norm {
    /// L-infinity clip (the reference).
    Linf,
    /// L2 ball.
    L2,
}

impl From<Norm> for NormKind {
    fn from(n: Norm) -> Self {
        match n {
            Norm::Linf => NormKind::Linf,
            Norm::L2 => NormKind::L2,
        }
    }
}

/// The library's attack defaults: the CLI's defaults are the same values.
fn defaults() -> AttackSettings {
    AttackSettings::default()
}

/// How the attack is trained (shared by `attack` and `sweep --retrain`).
#[derive(Args, Debug)]
struct TrainingArgs {
    /// Train the generator on this many images (default: all); evaluation uses all.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Gradient source.
    #[arg(long, value_enum, default_value_t = Mode::Backprop)]
    mode: Mode,
    /// What the attack maximises.
    #[arg(long, value_enum, default_value_t = Loss::Distance)]
    loss: Loss,
    /// Directions per image for NES / SPSA (each costs two images); 1 needs the fewest calls
    /// (docs/results/baselines.md).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// NES sigma / SPSA delta.
    #[arg(long, default_value_t = 0.01)]
    sigma: f32,
    /// NES / SPSA: draw directions on a grid this many times coarser, constant over tiles
    /// (a data prior; 1: one value per pixel).
    #[arg(long, default_value_t = defaults().direction_tile)]
    tile: usize,
    /// NES / SPSA: weight of each image's previous estimate in the current one (a time prior).
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// NES / SPSA: send the perturbed copies in calls of at most this many images, so that
    /// calls are counted on batches of the same size as backprop's (0: one call per step).
    #[arg(long, default_value_t = defaults().max_images_per_call.unwrap_or(0))]
    max_images_per_call: usize,
    /// Epochs (the maximum when --converge is set).
    #[arg(long, default_value_t = defaults().stopping.max_epochs())]
    epochs: usize,
    /// Stop when the generator loss plateaus (relative tolerance) for --patience epochs.
    #[arg(long)]
    converge: Option<f64>,
    /// Patience of --converge, in epochs.
    #[arg(long, default_value_t = 3)]
    patience: usize,
    /// Training batch size.
    #[arg(long, default_value_t = defaults().batch_size)]
    batch_size: usize,
    /// Weight of L_adv.
    #[arg(long, default_value_t = defaults().lambda_adv)]
    lambda_adv: f32,
    /// Weight of L_pert.
    #[arg(long, default_value_t = defaults().lambda_pert)]
    lambda_pert: f32,
    /// Targeted attack towards this cluster.
    #[arg(long)]
    target: Option<usize>,
    /// Hard limit on training batch calls to the victim.
    #[arg(long)]
    budget_calls: Option<u64>,
    /// Hard limit on training images sent to the victim.
    #[arg(long)]
    budget_images: Option<u64>,
}

#[derive(Args, Debug)]
struct Attack {
    #[command(flatten)]
    data: DataArgs,
    /// Victim: an embedded one (`advclust victims` lists them), a directory written by
    /// train-victim (its model/ folder), of any kind, or a model behind an Open Inference
    /// Protocol server, `kserve+http://host:port/models/<name>` (query-only sources).
    #[arg(long, default_value = "pretrained-cc-mnist")]
    victim: VictimSpec,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    /// Threat-model radius.
    #[arg(long, default_value_t = defaults().epsilon)]
    eps: f32,
    /// Threat-model norm.
    #[arg(long, value_enum, default_value_t = Norm::Linf)]
    norm: Norm,
    #[command(flatten)]
    training: TrainingArgs,
    /// Output directory: attack/ (generator), report.json, grid.png, confusion.png, queries.png.
    #[arg(long, default_value = "runs/attack")]
    out: PathBuf,
    /// Replace a run already in --out (otherwise such a directory is refused before any work).
    #[arg(long)]
    force: bool,
    /// Checkpoint training every this many steps into `.<out name>.checkpoint/` beside --out
    /// (removed once the run is in --out).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// Continue a run that was stopped (killed, or ended on an error) from its checkpoint,
    /// with the same command; the result equals an uninterrupted run's.
    #[arg(long)]
    resume: bool,
}

#[derive(Args, Debug)]
struct Evaluate {
    #[command(flatten)]
    data: DataArgs,
    /// Victim: an embedded one (`advclust victims`), a saved victim directory, or a served
    /// model, `kserve+http://host:port/models/<name>`.
    #[arg(long, default_value = "pretrained-cc-mnist")]
    victim: VictimSpec,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    /// A saved attack directory (from `attack`): evaluate through it.
    #[arg(long)]
    attack: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "runs/evaluate")]
    out: PathBuf,
    /// Replace a run already in --out (otherwise such a directory is refused before any work).
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct Sweep {
    #[command(flatten)]
    data: DataArgs,
    /// Victim: an embedded one (`advclust victims`), a saved victim directory, or (with
    /// --attack) a served model, `kserve+http://host:port/models/<name>`.
    #[arg(long, default_value = "pretrained-cc-mnist")]
    victim: VictimSpec,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    /// A saved attack directory (from `attack`): its generator is bounded at each radius
    /// (as the reference notebooks evaluate). Without it, give --retrain.
    #[arg(long, required_unless_present = "retrain", conflicts_with = "retrain")]
    attack: Option<PathBuf>,
    /// Train a fresh attack at each radius with the training options below.
    #[arg(long)]
    retrain: bool,
    /// Radii.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.001,0.003,0.005,0.007,0.01,0.015,0.02,0.025,0.03,0.04,0.05,0.1,0.15,0.2,0.25,0.3"
    )]
    eps: Vec<f32>,
    /// Norm of the radii.
    #[arg(long, value_enum, default_value_t = Norm::Linf)]
    norm: Norm,
    #[command(flatten)]
    training: TrainingArgs,
    /// Output directory: sweep.json, sweep.png (and eps-<radius>/ runs with --retrain).
    #[arg(long, default_value = "runs/sweep")]
    out: PathBuf,
    /// Replace a run already in --out (otherwise such a directory is refused before any work).
    #[arg(long)]
    force: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        let message = e.to_string();
        eprintln!("error: {message}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                eprintln!("  caused by: {text}");
            }
            source = s.source();
        }
        if let Error::Attack(AttackError::Interrupted {
            saved_to: Some(dir),
            ..
        }) = &e
        {
            eprintln!(
                "the generator trained so far is saved in {} (evaluate it with `advclust evaluate --attack {}`)",
                dir.display(),
                dir.display()
            );
        }
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let device = advclust::device(cli.backend.as_deref())?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.command {
        Command::TrainVictim(a) => train::train_victim(a, &device, command_line),
        Command::TrainPretext(a) => train::train_pretext(a, &device, command_line),
        Command::Victims => train::list_victims(),
        Command::Table1(a) => table::table1(a, &device, command_line),
        Command::Attack(a) => attack(a, &device, command_line),
        Command::Evaluate(a) => evaluate(a, &device, command_line),
        Command::Sweep(a) => sweep(a, &device, command_line),
        Command::Baselines(a) => baselines::baselines(a, &device, command_line),
        Command::Serve(a) => remote::serve(a, &device),
        Command::Defend(a) => defend::defend(a, &device, command_line),
        Command::Transfer(a) => transfer::transfer(a, &device, command_line),
    }
}

fn attack_config(
    t: &TrainingArgs,
    norm: Norm,
    eps: f32,
    seed: u64,
    out: Option<PathBuf>,
) -> Result<advclust::gan::CheckedAttackConfig, Error> {
    let gradient_source = match t.mode {
        Mode::Backprop => GradientSource::Backprop,
        Mode::Nes => GradientSource::Nes {
            samples: t.samples,
            sigma: t.sigma,
        },
        Mode::Spsa => GradientSource::Spsa {
            samples: t.samples,
            delta: t.sigma,
        },
    };
    let stopping = match t.converge {
        Some(tolerance) => Stopping::Convergence {
            max_epochs: t.epochs,
            min_epochs: 1,
            tolerance,
            patience: t.patience,
        },
        None => Stopping::Epochs { epochs: t.epochs },
    };
    Ok(AttackConfig::new()
        .with_norm(norm.into())
        .with_epsilon(eps)
        .with_lambda_adv(t.lambda_adv)
        .with_lambda_pert(t.lambda_pert)
        .with_gradient_source(gradient_source)
        .with_loss(t.loss.into())
        .with_stopping(stopping)
        .with_batch_size(t.batch_size)
        .with_seed(seed)
        .with_target(t.target)
        .with_max_images_per_call((t.max_images_per_call > 0).then_some(t.max_images_per_call))
        .with_direction_tile(t.tile)
        .with_estimate_momentum(t.momentum)
        .with_budget(QueryBudget {
            max_batch_calls: t.budget_calls,
            max_images: t.budget_images,
        })
        .with_output_dir(out)
        .check()?)
}

/// The evaluation set and the (seeded) training subset of `data`.
pub(crate) fn train_and_eval(
    data: &DataArgs,
    train_limit: Option<usize>,
) -> Result<(advclust::data::Dataset, advclust::data::Dataset), Error> {
    let eval = data.dataset.load(data.limit, data.seed)?;
    let train = match train_limit {
        Some(n) if n < eval.len() => eval.shuffled(data.seed).take(n),
        _ => eval.clone(),
    };
    Ok((train, eval))
}

fn attack(
    a: Attack,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    let checkpoint = RunDir::checkpoint_dir(&a.out);
    if a.resume && !advclust::gan::CheckpointPolicy::new(&checkpoint).has_checkpoint() {
        return Err(Error::NothingToResume(checkpoint));
    }
    let policy = advclust::gan::CheckpointPolicy::new(&checkpoint)
        .every_steps(a.checkpoint_every)
        .resume(a.resume);
    let message = RunDir::run(&a.out, a.force, |out| {
        attack_into(&a, out, device, command, policy)
    })?;
    // The run is in --out: its checkpoint is not needed any more.
    advclust::core::files::remove_dir_copies(&checkpoint).map_err(|e| Error::Io {
        path: checkpoint.clone(),
        source: e,
    })?;
    print!("{message}");
    Ok(())
}

/// The attack run of `a`, written into `out`; returns the summary to print.
fn attack_into(
    a: &Attack,
    out: &Path,
    device: &advclust::burn::tensor::Device,
    command: String,
    checkpoints: advclust::gan::CheckpointPolicy,
) -> Result<String, Error> {
    let started = Instant::now();
    let config = attack_config(
        &a.training,
        a.norm,
        a.eps,
        a.data.seed,
        Some(out.join("attack")),
    )?;
    let (train, eval) = train_and_eval(&a.data, a.training.train_limit)?;
    eprintln!(
        "attacking {} on {} ({} training / {} evaluation images), {:?}, eps {} ({:?})",
        a.victim,
        a.data.dataset,
        train.len(),
        eval.len(),
        config.gradient_source,
        a.eps,
        config.norm
    );
    let mut metadata = serde_json::Map::new();
    let outcome = match &a.victim {
        VictimSpec::Remote(target) => {
            if !config.gradient_source.is_query_only() {
                return Err(Error::InvalidArgument(format!(
                    "{target} is a served model: attack it with --mode nes or spsa"
                )));
            }
            let mut oracle = KServeOracle::connect(target.clone(), a.remote.config(a.data.seed)?)?;
            oracle.expect_images(train.to_image_batch()?.image_shape())?;
            let outcome = pipeline::attack_oracle(
                &config,
                &mut oracle,
                &train,
                &eval,
                device,
                Some(checkpoints),
            )?;
            metadata.insert("transport".into(), pipeline::to_json(&oracle.stats())?);
            outcome
        }
        local => pipeline::attack_victim(
            &config,
            &local.load(device)?,
            &train,
            &eval,
            device,
            Some(checkpoints),
        )?,
    };
    metadata.insert("command".into(), command.into());
    metadata.insert("dataset".into(), a.data.dataset.to_string().into());
    metadata.insert("victim".into(), a.victim.to_string().into());
    metadata.insert(
        "process_seconds".into(),
        serde_json::json!(started.elapsed().as_secs_f64()),
    );
    let written = pipeline::save_attack_run(out, &outcome, &eval, metadata)?;
    Ok(pipeline::attack_summary(
        &outcome,
        &written,
        started.elapsed().as_secs_f64(),
    ))
}

fn evaluate(
    a: Evaluate,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    if let Some(dir) = &a.attack
        && inside(dir, &a.out)
    {
        return Err(Error::InvalidArgument(format!(
            "--attack {} is inside --out {}: the evaluation would replace it",
            dir.display(),
            a.out.display()
        )));
    }
    let message = RunDir::run(&a.out, a.force, |out| {
        evaluate_into(&a, out, device, command)
    })?;
    println!("{message}");
    Ok(())
}

/// The evaluation of `a`, written into `out`; returns the line to print.
fn evaluate_into(
    a: &Evaluate,
    out: &Path,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<String, Error> {
    let data = a.data.dataset.load(a.data.limit, a.data.seed)?;
    let mut oracle = a.victim.oracle(device, &a.remote.config(a.data.seed)?)?;
    let images = data.to_image_batch()?;
    let mut json = serde_json::json!({
        "command": command,
        "dataset": a.data.dataset.to_string(),
        "victim": a.victim.to_string(),
        "images": data.len(),
    });
    let row = |name: &str, s: &advclust::metrics::ClusteringScores| {
        println!(
            "{name:<12} NMI {:.4} ARI {:.4} ACC {:.4}",
            s.nmi, s.ari, s.acc
        )
    };
    let figures = match &a.attack {
        Some(dir) => {
            let mut attack = TrainedAttack::load(dir, device)?;
            let adversarial = attack.perturb(&images)?;
            let e = attack.evaluate_perturbed(&mut oracle, &images, &adversarial, data.labels())?;
            row("clean:", &e.clean);
            row("adversarial:", &e.adversarial);
            json["clean"] = pipeline::to_json(&e.clean)?;
            json["adversarial"] = pipeline::to_json(&e.adversarial)?;
            json["changed_fraction"] = serde_json::json!(e.changed_fraction);
            json["delta_norms"] = pipeline::to_json(&e.norms)?;
            json["queries"] = pipeline::to_json(&e.queries)?;
            json["attack"] = serde_json::Value::String(dir.display().to_string());
            pipeline::write_attack_figures(
                out,
                (&images, &adversarial),
                &e,
                data.labels(),
                data.class_names(),
            )?
        }
        None => {
            let clean = pipeline::evaluate_clean(&mut oracle, &images, data.labels())?;
            row("clean:", &clean.scores);
            json["clean"] = pipeline::to_json(&clean.scores)?;
            let figure = out.join("confusion.png");
            advclust::plot::figures::confusion_matrix(
                &figure,
                &pipeline::confusion(data.labels(), &clean.clusters)?,
                &format!("clean (NMI {:.3})", clean.scores.nmi),
            )?;
            vec![figure]
        }
    };
    pipeline::write_json(&out.join("report.json"), &json)?;
    Ok(format!(
        "report {}; figures {}",
        out.join("report.json").display(),
        pipeline::join_paths(&figures)
    ))
}

fn sweep(a: Sweep, device: &advclust::burn::tensor::Device, command: String) -> Result<(), Error> {
    let message = RunDir::run(&a.out, a.force, |out| sweep_into(&a, out, device, command))?;
    println!("{message}");
    Ok(())
}

/// The sweep of `a`, written into `out`; returns the table and the line to print.
fn sweep_into(
    a: &Sweep,
    out: &Path,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<String, Error> {
    let (train, data) = train_and_eval(&a.data, a.training.train_limit)?;
    let images = data.to_image_batch()?;
    let points = match &a.attack {
        Some(dir) => {
            let attack = TrainedAttack::load(dir, device)?;
            let mut oracle = a.victim.oracle(device, &a.remote.config(a.data.seed)?)?;
            pipeline::sweep_epsilon(
                &attack,
                &mut oracle,
                &images,
                data.labels(),
                a.norm.into(),
                &a.eps,
            )?
        }
        None => pipeline::sweep_retrained(
            |eps| {
                let dir = out.join(format!("eps-{eps}"));
                attack_config(&a.training, a.norm, eps, a.data.seed, Some(dir))
            },
            &a.victim.load(device)?,
            &train,
            &data,
            &a.eps,
            device,
        )?,
    };
    let mut message = String::from("|     eps | mean L2 |    NMI |    ARI |    ACC |\n");
    for p in &points {
        message.push_str(&format!(
            "| {:>7.3} | {:>7.3} | {:>6.4} | {:>6.4} | {:>6.4} |\n",
            p.epsilon, p.mean_l2, p.nmi, p.ari, p.acc
        ));
    }
    let figure = out.join("sweep.png");
    advclust::plot::figures::sweep_curves(&figure, &points)?;
    pipeline::write_json(
        &out.join("sweep.json"),
        &serde_json::json!({
            "command": command,
            "dataset": a.data.dataset.to_string(),
            "victim": a.victim.to_string(),
            "attack": a.attack.as_ref().map(|p| p.display().to_string()),
            "retrained": a.retrain,
            "points": points,
        }),
    )?;
    message.push_str(&format!(
        "report {}; figure {}",
        out.join("sweep.json").display(),
        figure.display()
    ));
    Ok(message)
}

/// True when `path` is `dir` or lies below it (compared after resolving both where they exist).
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    resolve(path).starts_with(resolve(dir))
}
