//! Trains a CC (Contrastive Clustering) victim on CPU and writes the model and a JSON report.
//!
//! ```text
//! cargo build --release -p advclust-models --example train_cc
//! target/release/examples/train_cc --dataset mnist-embedded --epochs 30 --out runs/cc-mnist
//! target/release/examples/train_cc --dataset fashion-mnist --data-path ../shared/data/fashion-mnist --out runs/cc-fashion
//! target/release/examples/train_cc --dataset cifar10 --data-path ../shared/data/cifar10-jpg/test --out runs/cc-cifar10
//! ```
//!
//! Options (defaults in brackets): `--epochs` [30], `--batch-size` [256], `--lr` [3e-4],
//! `--seed` [0], `--out` [runs/cc], `--k` [number of classes], `--widths` [16,32,64],
//! `--blocks` [1], `--stem-stride` [1], `--limit N` (first N images of a seeded shuffle),
//! `--max-steps N` (steps per epoch, for timing), `--eval-every` [1], `--checkpoint-every` [5],
//! `--resume`, `--crop-min F` (smallest crop area), `--augment digits|grayscale|color`.
//! `RAYON_NUM_THREADS` sets the number of CPU threads.

use std::path::PathBuf;
use std::time::Instant;

use advclust_core::ImageBatch;
use advclust_data::{
    Dataset, load_cifar10_folder, load_fashion_mnist_png_test, mnist_test_embedded,
};
use advclust_models::{AugmentConfig, CcConfig, CcTrainConfig, ResNetConfig, train_cc};
use burn::module::Module;
use burn::tensor::Device;

type BoxError = Box<dyn std::error::Error>;

struct Args {
    dataset: String,
    data_path: Option<PathBuf>,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    out: PathBuf,
    k: Option<usize>,
    widths: Vec<usize>,
    blocks: usize,
    stem_stride: usize,
    limit: Option<usize>,
    max_steps: Option<usize>,
    eval_every: usize,
    checkpoint_every: usize,
    resume: bool,
    crop_min: Option<f32>,
    augment: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        dataset: "mnist-embedded".into(),
        data_path: None,
        epochs: 30,
        batch_size: 256,
        lr: 3e-4,
        seed: 0,
        out: PathBuf::from("runs/cc"),
        k: None,
        widths: vec![16, 32, 64],
        blocks: 1,
        stem_stride: 1,
        limit: None,
        max_steps: None,
        eval_every: 1,
        checkpoint_every: 5,
        resume: false,
        crop_min: None,
        augment: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--resume" {
            a.resume = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!(
                "see the header of crates/advclust-models/examples/train_cc.rs for the options"
            );
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dataset" => a.dataset = value,
            "--data-path" => a.data_path = Some(PathBuf::from(value)),
            "--epochs" => a.epochs = value.parse()?,
            "--batch-size" => a.batch_size = value.parse()?,
            "--lr" => a.lr = value.parse()?,
            "--seed" => a.seed = value.parse()?,
            "--out" => a.out = PathBuf::from(value),
            "--k" => a.k = Some(value.parse()?),
            "--widths" => {
                a.widths = value
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--blocks" => a.blocks = value.parse()?,
            "--stem-stride" => a.stem_stride = value.parse()?,
            "--limit" => a.limit = Some(value.parse()?),
            "--max-steps" => a.max_steps = Some(value.parse()?),
            "--eval-every" => a.eval_every = value.parse()?,
            "--checkpoint-every" => a.checkpoint_every = value.parse()?,
            "--crop-min" => a.crop_min = Some(value.parse()?),
            "--augment" => a.augment = Some(value),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(a)
}

fn load(args: &Args) -> Result<Dataset, BoxError> {
    let need_path = || {
        args.data_path
            .clone()
            .ok_or_else(|| format!("--dataset {} needs --data-path", args.dataset))
    };
    Ok(match args.dataset.as_str() {
        "mnist-embedded" | "mnist" => mnist_test_embedded()?,
        "fashion-mnist" => load_fashion_mnist_png_test(need_path()?)?,
        "cifar10" => load_cifar10_folder(need_path()?)?,
        other => {
            return Err(format!(
                "unknown dataset {other} (mnist-embedded, fashion-mnist, cifar10)"
            )
            .into());
        }
    })
}

fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let args = parse_args()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut data = load(&args)?;
    if let Some(limit) = args.limit {
        data = data.shuffled(args.seed).take(limit);
    }
    let [n, c, h, w] = data.dims();
    let k = args.k.unwrap_or(data.num_classes());
    eprintln!("{}: {n} images of {c}x{h}x{w}, k = {k}", args.dataset);

    let backbone =
        ResNetConfig::new(c, &args.widths, args.blocks).with_stem_stride(args.stem_stride);
    let model = CcConfig::new([c, h, w], k, &args.widths).with_backbone(backbone);
    let mut config = CcTrainConfig::new(model);
    config.dataset = args.dataset.clone();
    config.epochs = args.epochs;
    config.batch_size = args.batch_size;
    config.learning_rate = args.lr;
    config.seed = args.seed;
    config.eval_every = args.eval_every;
    config.max_steps_per_epoch = args.max_steps;
    config.checkpoint_dir = Some(args.out.clone());
    config.checkpoint_every = args.checkpoint_every;
    config.resume = args.resume;
    config.augment = match args.augment.as_deref() {
        Some("digits") => AugmentConfig::digits(),
        Some("grayscale") => AugmentConfig::grayscale(),
        Some("color") => AugmentConfig::color(),
        Some(other) => return Err(format!("unknown augmentation preset {other}").into()),
        None if args.dataset.starts_with("mnist") => AugmentConfig::digits(),
        None => AugmentConfig::for_channels(c),
    };
    if let Some(m) = args.crop_min {
        config.augment.crop_scale[0] = m;
    }

    let labels = data.labels().to_vec();
    let (images, dims, _, _) = data.into_parts();
    let images = ImageBatch::unit(images, dims)?;
    let device = Device::flex();
    let (model, report) = train_cc(&config, &images, Some(&labels), &device)?;

    let mut summary = model
        .training_summary()
        .cloned()
        .ok_or("no training summary")?;
    summary.command = Some(command.clone());
    let model = model.with_training_summary(summary);
    let model_dir = args.out.join("model");
    model.save(&model_dir)?;
    let mut json = serde_json::to_value(&report)?;
    json["command"] = serde_json::Value::String(command);
    json["process_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    let report_path = args.out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&json)? + "\n")?;
    eprintln!(
        "done: {} parameters ({} values), {} steps, {:.1} ms/step, training {:.1} s, wall {:.1} s",
        report.num_parameters,
        model.num_params(),
        report.steps,
        report.mean_step_ms,
        report.train_seconds,
        report.wall_seconds
    );
    if let Some(s) = report.final_scores {
        eprintln!("final: NMI {:.4} ARI {:.4} ACC {:.4}", s.nmi, s.ari, s.acc);
    }
    eprintln!(
        "model: {}  report: {}",
        model_dir.display(),
        report_path.display()
    );
    Ok(())
}
