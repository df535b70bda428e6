//! Helpers shared by the victim test suites: a synthetic two-class set and a tiny pretext.

#![allow(dead_code)]

use advclust_core::{ImageBatch, SeededRng};
use advclust_models::runner::RunConfig;
use advclust_models::{Pretext, PretextTrainConfig, ResNetConfig, SimClrConfig, train_pretext};
use burn::tensor::Device;
use rand::{RngExt, SeedableRng};

pub fn device() -> Device {
    Device::flex()
}

pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("advclust-victims-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A synthetic 2-class set of 12 x 12 images: a bright square top-left or bottom-right, noise.
pub fn synthetic(n: usize, seed: u64) -> (ImageBatch, Vec<usize>) {
    let mut rng = SeededRng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * 144);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % 2;
        for y in 0..12 {
            for x in 0..12 {
                let inside = if label == 0 {
                    y < 6 && x < 6
                } else {
                    y >= 6 && x >= 6
                };
                let base = if inside { 0.8 } else { 0.1 };
                data.push((base + rng.random_range(-0.1f32..0.1)).clamp(0.0, 1.0));
            }
        }
        labels.push(label);
    }
    (ImageBatch::unit(data, [n, 1, 12, 12]).unwrap(), labels)
}

pub fn quiet(mut run: RunConfig) -> RunConfig {
    run.progress = false;
    run.log_epochs = false;
    run
}

pub fn tiny_pretext(images: &ImageBatch, labels: &[usize], seed: u64) -> Pretext {
    let model = SimClrConfig::new([1, 12, 12], ResNetConfig::new(1, &[4, 8], 1));
    let mut config = PretextTrainConfig::new(model);
    config.num_neighbors = 3;
    config.run = quiet(RunConfig::new(2, 16, 1e-3));
    config.run.seed = seed;
    train_pretext(&config, images, Some(labels), &device())
        .unwrap()
        .0
}
