//! `advclust transfer`: the source x target matrix of paper Fig. 4.

use std::path::PathBuf;
use std::time::Instant;

use advclust::Error;
use advclust::pipeline::{self, DatasetSpec, VictimSpec};
use advclust::transfer::{self, TransferSettings};
use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct Transfer {
    /// The victims, in matrix order (at least two; embedded names or saved directories).
    #[arg(long = "victim", required = true)]
    victims: Vec<VictimSpec>,
    /// The dataset every generator is trained on and every target evaluated on.
    #[arg(long, default_value = "mnist")]
    dataset: DatasetSpec,
    /// L-inf eps in [0, 1] pixels, the same for every source.
    #[arg(long, default_value_t = 0.1)]
    eps: f32,
    /// Images each generator is trained on (evaluation uses the whole set).
    #[arg(long, default_value_t = 2048)]
    train_limit: usize,
    /// Evaluate on a seeded subset of this many images (default: the whole set).
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Seed of every attack.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory: transfer.json, transfer.md, transfer.png and the generators (reused
    /// by a later run with the same directory).
    #[arg(long, default_value = "runs/transfer")]
    out: PathBuf,
}

pub(crate) fn transfer(
    a: Transfer,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    let settings = TransferSettings {
        epsilon: a.eps,
        train_limit: a.train_limit,
        eval_limit: a.eval_limit,
        seed: a.seed,
        ..TransferSettings::default()
    };
    let started = Instant::now();
    let matrix = transfer::run_transfer(
        &a.victims,
        &a.dataset,
        &settings,
        &a.out,
        device,
        &mut |s, t, scores| {
            println!(
                "{s} -> {t}: NMI {:.4} ARI {:.4} ACC {:.4}",
                scores.nmi, scores.ari, scores.acc
            )
        },
    )?;
    let mut json = pipeline::to_json(&matrix)?;
    json["command"] = serde_json::Value::String(command.clone());
    json["wall_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    pipeline::write_json(&a.out.join("transfer.json"), &json)?;
    let md = format!("`{command}`\n{}", matrix.markdown());
    pipeline::write_text(&a.out.join("transfer.md"), &md)?;
    let png = a.out.join("transfer.png");
    transfer::heatmap(&matrix, &png)?;
    println!(
        "wrote {0}/transfer.json, transfer.md and transfer.png",
        a.out.display()
    );
    Ok(())
}
