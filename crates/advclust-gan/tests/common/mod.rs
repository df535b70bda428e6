//! A tiny differentiable victim and synthetic data shared by the integration tests.
#![allow(dead_code)]

use advclust_core::{DifferentiableClusterModel, ImageBatch};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

/// The small attack configuration the tests start from: eps 0.1, a strong `L_adv` weight,
/// batches of 8, 2 epochs, no progress bar.
pub fn base() -> advclust_gan::AttackConfig {
    advclust_gan::AttackConfig::new()
        .with_epsilon(0.1)
        .with_lambda_adv(30.0)
        .with_batch_size(8)
        .with_stopping(advclust_gan::Stopping::Epochs { epochs: 2 })
        .with_progress(false)
}

/// Image side of the test images (the smallest the networks accept).
pub const SIDE: usize = 24;

pub fn device() -> Device {
    Device::flex()
}

/// Two clusters by which half of the image is brighter: logits `+-scale * (mean(left) -
/// mean(right))`, softmax. Weights are fixed, not random.
#[derive(Module, Debug)]
pub struct HalfVictim {
    linear: Linear,
}

impl HalfVictim {
    pub fn new(scale: f32, device: &Device) -> Self {
        let d = SIDE * SIDE;
        let mut linear = LinearConfig::new(d, 2).init(device);
        let mut w = vec![0.0f32; d * 2];
        for p in 0..d {
            let sign = if p % SIDE < SIDE / 2 { 1.0 } else { -1.0 };
            w[p * 2] = sign * scale / (d as f32 / 2.0);
            w[p * 2 + 1] = -w[p * 2];
        }
        linear.weight = Param::from_data(TensorData::new(w, [d, 2]), device);
        linear.bias = Some(Param::from_data(
            TensorData::new(vec![0.0f32; 2], [2]),
            device,
        ));
        HalfVictim { linear }
    }
}

impl DifferentiableClusterModel for HalfVictim {
    fn num_clusters(&self) -> usize {
        2
    }
    fn input_shape(&self) -> [usize; 3] {
        [1, SIDE, SIDE]
    }
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.linear.forward(images.flatten::<2>(1, 3)), 1)
    }
}

/// A victim whose outputs are NaN.
#[derive(Module, Debug)]
pub struct NanVictim {
    inner: HalfVictim,
}

impl NanVictim {
    pub fn new(device: &Device) -> Self {
        NanVictim {
            inner: HalfVictim::new(10.0, device),
        }
    }
}

impl DifferentiableClusterModel for NanVictim {
    fn num_clusters(&self) -> usize {
        2
    }
    fn input_shape(&self) -> [usize; 3] {
        [1, SIDE, SIDE]
    }
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        self.inner.memberships(images).mul_scalar(f32::NAN)
    }
}

fn hash(i: u64) -> f32 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// `n` images of `[channels, side, side]`: class 0 has a brighter left half, class 1 a
/// brighter right half (difference 0.15), plus uniform noise of +-0.1. Returns images and labels.
pub fn halves(n: usize, channels: usize, side: usize) -> (ImageBatch, Vec<usize>) {
    let mut data = Vec::with_capacity(n * channels * side * side);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = i % 2;
        labels.push(y);
        for c in 0..channels {
            for r in 0..side {
                for col in 0..side {
                    let bright = (col < side / 2) == (y == 0);
                    let base = if bright { 0.575 } else { 0.425 };
                    let idx = (((i * channels + c) * side + r) * side + col) as u64;
                    let noise = (hash(idx) - 0.5) * 0.2;
                    data.push((base + noise).clamp(0.0, 1.0));
                }
            }
        }
    }
    (
        ImageBatch::unit(data, [n, channels, side, side]).unwrap(),
        labels,
    )
}

/// A query-only penalty: each image's mean brightness above `floor` (a stand-in for a
/// detector's score over its threshold); pushing it down darkens the adversarial images.
#[derive(Debug)]
pub struct BrightnessPenalty {
    pub weight: f32,
    pub floor: f64,
}

impl advclust_gan::QueryPenalty for BrightnessPenalty {
    fn name(&self) -> String {
        "brightness".into()
    }
    fn weight(&self) -> f32 {
        self.weight
    }
    fn penalties(
        &self,
        batch: &ImageBatch,
    ) -> Result<Vec<f64>, Box<dyn std::error::Error + Send + Sync>> {
        Ok((0..batch.len())
            .map(|i| {
                let img = batch.image(i).unwrap();
                let mean = img.iter().map(|&v| f64::from(v)).sum::<f64>() / img.len() as f64;
                (mean - self.floor).max(0.0)
            })
            .collect())
    }
}
