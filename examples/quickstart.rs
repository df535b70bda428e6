//! Quickstart: attack the embedded CC victim on the embedded MNIST test split.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Loads the 10,000 MNIST test images and the pretrained Contrastive Clustering model that ship
//! inside the crates (no download, no `../shared`), trains the GAN attack with gradients through
//! the victim on a seeded subset (L-infinity, eps = 0.1), evaluates it on all 10,000 images, and
//! prints the clean-vs-adversarial table. Writes `runs/quickstart/report.json`, `grid.png`
//! (Fig. 1), `confusion.png` (Fig. 2) and `queries.png` (training scores vs. victim calls), and the
//! trained generator in `runs/quickstart/attack`.
//! Set `ADVCLUST_BACKEND` to pick another compiled-in backend.

use std::path::Path;
use std::time::Instant;

use advclust::core::ParamGuard;
use advclust::gan::{AttackConfig, Stopping};
use advclust::pipeline::{self, DatasetSpec, VictimSpec};

/// Images the generator is trained on (a seeded subset of the test split).
const TRAIN_IMAGES: usize = 2048;
/// Training epochs over those images.
const EPOCHS: usize = 12;

fn main() -> Result<(), advclust::Error> {
    let started = Instant::now();
    let out = Path::new("runs/quickstart");
    let device = advclust::device(None)?;
    let victim = VictimSpec::pretrained_cc_mnist().load(&device)?;
    let eval = DatasetSpec::MnistEmbedded.load(None, 0)?;
    let train = eval.shuffled(0).take(TRAIN_IMAGES);
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(256)
        .with_stopping(Stopping::Epochs { epochs: EPOCHS })
        .with_seed(0)
        .with_output_dir(Some(out.join("attack")))
        .check()?;
    println!(
        "advclust quickstart: CC victim on MNIST-test ({} images), backend {:?}",
        eval.len(),
        advclust::compiled_backends()
    );
    println!(
        "training the attack on {TRAIN_IMAGES} images for {EPOCHS} epochs (L-inf eps 0.1, gradients through the victim)"
    );
    let outcome = pipeline::attack_victim(&config, &victim, &train, &eval, &device, None)?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("dataset".into(), "mnist".into());
    metadata.insert(
        "victim".into(),
        VictimSpec::pretrained_cc_mnist().to_string().into(),
    );
    let written = pipeline::save_attack_run(out, &outcome, &eval, metadata)?;
    println!();
    print!(
        "{}",
        pipeline::attack_summary(&outcome, &written, started.elapsed().as_secs_f64())
    );
    Ok(())
}
