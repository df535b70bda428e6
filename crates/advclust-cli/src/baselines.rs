//! `advclust baselines`: the GAN attack against per-image score-based attacks, NMI against
//! images queried (docs/results/baselines.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use advclust::Error;
use advclust::baselines::{self, BaselineSettings, BaselinesReport, GanEntry};
use advclust::gan::{AdvLoss, GradientSource};
use advclust::perimage::{PerImageLoss, PerImageMethod};
use advclust::pipeline::{self, VictimSpec};
use advclust::plot::figures;
use clap::Args;

use crate::{DataArgs, train_and_eval};

#[derive(Args, Debug)]
pub(crate) struct Baselines {
    #[command(flatten)]
    data: DataArgs,
    /// Victim (embedded name or a train-victim directory).
    #[arg(long, default_value = "pretrained-cc-mnist")]
    victim: VictimSpec,
    /// L-inf radius of every attack.
    #[arg(long, default_value_t = 0.1)]
    eps: f32,
    /// GAN gradient sources: backprop, nes, spsa, and with a -mi / -margin suffix the soft-MI /
    /// log-margin objective
    /// (empty: none).
    #[arg(long, value_delimiter = ',', default_value = "backprop,nes,spsa")]
    gans: Vec<String>,
    /// Directions per image of the GAN's NES / SPSA estimates.
    #[arg(long, default_value_t = 1)]
    gan_samples: usize,
    /// Tile of the GAN's NES / SPSA directions (1: per pixel).
    #[arg(long, default_value_t = advclust::gan::AttackSettings::default().direction_tile)]
    gan_tile: usize,
    /// Time prior of the GAN's NES / SPSA estimates (weight of each image's previous one).
    #[arg(long, default_value_t = 0.0)]
    gan_momentum: f32,
    /// GAN training epochs.
    #[arg(long, default_value_t = 12)]
    gan_epochs: usize,
    /// Generator training images (a seeded subset of the dataset).
    #[arg(long, default_value_t = 2048)]
    train_limit: usize,
    /// Training calls at which each generator is evaluated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2,4,8,16,24,48,96,192,384"
    )]
    gan_snapshots: Vec<u64>,
    /// Per-image attacks: nes, spsa, simba-pixel, simba-dct, square (empty: none).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nes,spsa,simba-pixel,simba-dct,square"
    )]
    methods: Vec<String>,
    /// Per-image budgets evaluated (queries per image, the clean query included).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2,5,10,20,50,100,200,500,1000"
    )]
    budgets: Vec<u64>,
    /// Steps of the white-box per-image PGD bound (0: not run).
    #[arg(long, default_value_t = 0)]
    pgd_steps: usize,
    /// Per-image objective.
    #[arg(long, default_value = "margin")]
    per_image_loss: String,
    /// Output directory: baselines.json, baselines.md, baselines.png.
    #[arg(long, default_value = "runs/baselines")]
    out: PathBuf,
    /// Only redraw baselines.png (into --out) from this baselines.json; runs nothing.
    #[arg(long)]
    replot: Option<PathBuf>,
}

/// The comparison figure of `report`, written to `dir/baselines.png`.
/// The comparison figure of `report`, or `None` when no attack queried anything (floors and
/// bounds only: nothing to put on a log axis).
fn plot(report: &BaselinesReport, title: &str, dir: &Path) -> Result<Option<PathBuf>, Error> {
    let series = baselines::curve_series(report);
    if series.is_empty() {
        return Ok(None);
    }
    let path = dir.join("baselines.png");
    figures::comparison_curve(
        &path,
        title,
        "images sent to the victim to attack every evaluation image (log scale)",
        "adversarial NMI",
        &series,
        Some(("clean NMI", report.clean.nmi)),
    )?;
    Ok(Some(path))
}

fn title(victim: &str, dataset: &str) -> String {
    format!("{victim} on {dataset}: NMI vs. images queried")
}

fn method(name: &str, side: usize) -> Result<PerImageMethod, Error> {
    Ok(match name {
        "nes" => PerImageMethod::NES,
        "spsa" => PerImageMethod::SPSA,
        "simba-pixel" => PerImageMethod::SIMBA_PIXEL,
        "simba-dct" => PerImageMethod::simba_dct(side),
        "square" => PerImageMethod::SQUARE,
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown per-image attack {other:?}; known: nes, spsa, simba-pixel, simba-dct, square"
            )));
        }
    })
}

fn gan(name: &str, a: &Baselines) -> Result<GanEntry, Error> {
    let (samples, epochs, tile, momentum) =
        (a.gan_samples, a.gan_epochs, a.gan_tile, a.gan_momentum);
    let (base, loss) = if let Some(base) = name.strip_suffix("-mi") {
        (base, AdvLoss::SoftMutualInformation)
    } else if let Some(base) = name.strip_suffix("-margin") {
        (base, AdvLoss::LogMargin)
    } else {
        (name, AdvLoss::OutputDistance)
    };
    let source = match base {
        "backprop" => GradientSource::Backprop,
        "nes" => GradientSource::Nes {
            samples,
            sigma: 0.01,
        },
        "spsa" => GradientSource::Spsa {
            samples,
            delta: 0.01,
        },
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown GAN gradient source {other:?}; known: backprop, nes, spsa (optionally -mi)"
            )));
        }
    };
    Ok(GanEntry {
        source,
        epochs,
        loss,
        tile,
        momentum,
    })
}

pub(crate) fn baselines(
    a: Baselines,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    if let Some(json) = &a.replot {
        let text = std::fs::read_to_string(json).map_err(|source| Error::Io {
            path: json.clone(),
            source,
        })?;
        let report: BaselinesReport = serde_json::from_str(&text)
            .map_err(|e| Error::Json(format!("{}: {e}", json.display())))?;
        pipeline::create_dir(&a.out)?;
        let title = title(&a.victim.to_string(), &a.data.dataset.to_string());
        match plot(&report, &title, &a.out)? {
            Some(path) => println!("wrote {}", path.display()),
            None => println!("no attack queried the victim: nothing to plot"),
        }
        return Ok(());
    }
    let started = Instant::now();
    let (train, eval) = train_and_eval(&a.data, Some(a.train_limit))?;
    let side = eval.to_image_batch()?.image_shape()[1];
    let per_image_loss = match a.per_image_loss.as_str() {
        "margin" => PerImageLoss::Margin,
        "distance" => PerImageLoss::Distance,
        "clean-membership" => PerImageLoss::CleanMembership,
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown per-image loss {other:?}; known: margin, clean-membership, distance"
            )));
        }
    };
    let settings = BaselineSettings {
        epsilon: a.eps,
        gans: a
            .gans
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| gan(g, &a))
            .collect::<Result<_, _>>()?,
        gan_snapshot_calls: a.gan_snapshots.clone(),
        methods: a
            .methods
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| method(m, side))
            .collect::<Result<_, _>>()?,
        per_image_loss,
        per_image_budgets: a.budgets.clone(),
        seed: a.data.seed,
        pgd_steps: (a.pgd_steps > 0).then_some(a.pgd_steps),
    };
    let victim = a.victim.load(device)?;
    let report = baselines::run_baselines(&settings, &victim, &train, &eval, device)?;
    pipeline::create_dir(&a.out)?;
    let mut json = pipeline::to_json(&report)?;
    if let Some(fields) = json.as_object_mut() {
        fields.insert("command".into(), command.clone().into());
        fields.insert("victim".into(), a.victim.to_string().into());
        fields.insert("dataset".into(), a.data.dataset.to_string().into());
        fields.insert(
            "wall_seconds".into(),
            started.elapsed().as_secs_f64().into(),
        );
    }
    pipeline::write_json(&a.out.join("baselines.json"), &json)?;
    let md = format!(
        "`{command}`\n\nVictim {} on {}, L-inf eps {}.\n\n{}",
        a.victim,
        a.data.dataset,
        a.eps,
        baselines::baselines_markdown(&report)
    );
    pipeline::write_text(&a.out.join("baselines.md"), &md)?;
    let title = title(&a.victim.to_string(), &a.data.dataset.to_string());
    let figure = plot(&report, &title, &a.out)?;
    println!("{md}");
    println!(
        "wrote {}/baselines.json, baselines.md{}",
        a.out.display(),
        if figure.is_some() {
            ", baselines.png"
        } else {
            ""
        }
    );
    Ok(())
}
