//! A small, configurable ResNet backbone (BasicBlocks with BatchNorm) for 28x28 / 32x32 images.
//!
//! Layout: a 3x3 stem convolution (stride [`ResNetConfig::stem_stride`]) + BatchNorm + ReLU,
//! then one stage per entry of [`ResNetConfig::widths`], each made of
//! [`ResNetConfig::blocks`]`[s]` BasicBlocks (the first block of every stage after the first
//! halves the resolution), then global average pooling. The feature size is the last width.
//! There is no max-pool: small images keep their resolution in the first stage, as in the
//! CIFAR variants of ResNet.

use advclust_core::SeededRng;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Architecture of the [`ResNet`] backbone (serialised into a model's JSON description).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Image channels (1 for grayscale, 3 for colour).
    pub in_channels: usize,
    /// Output channels of the stem convolution.
    pub stem_width: usize,
    /// Stride of the stem convolution (1 keeps the resolution, 2 halves it).
    pub stem_stride: usize,
    /// Channels of each stage; the backbone's feature size is the last one.
    pub widths: Vec<usize>,
    /// BasicBlocks in each stage (same length as `widths`, each at least 1).
    pub blocks: Vec<usize>,
}

impl ResNetConfig {
    /// A ResNet with stem width `widths[0]`, stem stride 1 and `blocks_per_stage` blocks in each
    /// stage.
    pub fn new(in_channels: usize, widths: &[usize], blocks_per_stage: usize) -> Self {
        ResNetConfig {
            in_channels,
            stem_width: widths.first().copied().unwrap_or(16),
            stem_stride: 1,
            widths: widths.to_vec(),
            blocks: vec![blocks_per_stage; widths.len()],
        }
    }

    /// Sets the stem stride.
    pub fn with_stem_stride(mut self, stride: usize) -> Self {
        self.stem_stride = stride;
        self
    }

    /// The size of the feature vector the backbone produces.
    pub fn feature_dim(&self) -> usize {
        self.widths.last().copied().unwrap_or(0)
    }

    /// Validates the architecture for `[C, H, W]` inputs.
    pub fn validate(&self, input_shape: [usize; 3]) -> Result<()> {
        if self.in_channels == 0 {
            return Err(ModelError::invalid("in_channels", "must be at least 1"));
        }
        if self.in_channels != input_shape[0] {
            return Err(ModelError::invalid(
                "in_channels",
                format!(
                    "{} does not match the input's {} channels",
                    self.in_channels, input_shape[0]
                ),
            ));
        }
        if self.stem_width == 0 {
            return Err(ModelError::invalid("stem_width", "must be at least 1"));
        }
        if !(1..=2).contains(&self.stem_stride) {
            return Err(ModelError::invalid(
                "stem_stride",
                format!("must be 1 or 2, got {}", self.stem_stride),
            ));
        }
        if self.widths.is_empty() {
            return Err(ModelError::invalid("widths", "need at least one stage"));
        }
        if self.widths.len() != self.blocks.len() {
            return Err(ModelError::invalid(
                "blocks",
                format!(
                    "{} stages of widths but {} block counts",
                    self.widths.len(),
                    self.blocks.len()
                ),
            ));
        }
        if self.widths.contains(&0) {
            return Err(ModelError::invalid(
                "widths",
                "every width must be at least 1",
            ));
        }
        if self.blocks.contains(&0) {
            return Err(ModelError::invalid(
                "blocks",
                "every stage needs at least 1 block",
            ));
        }
        self.parameter_count()?;
        // Resolution after the stem and the stride-2 stages (3x3 convs, padding 1).
        let mut hw = [input_shape[1], input_shape[2]];
        let downsamples = (self.stem_stride == 2) as usize + self.widths.len() - 1;
        for _ in 0..downsamples {
            hw = [hw[0].div_ceil(2), hw[1].div_ceil(2)];
        }
        if input_shape[1] < 4 || input_shape[2] < 4 || hw[0] == 0 || hw[1] == 0 {
            return Err(ModelError::invalid(
                "input_shape",
                format!("{input_shape:?} is too small for this backbone"),
            ));
        }
        Ok(())
    }

    /// Parameters of the backbone (convolutions and BatchNorm), computed with checked
    /// arithmetic; every width, block count and the total are bounded ([`crate::MAX_WIDTH`],
    /// [`crate::MAX_BLOCKS`], [`crate::MAX_PARAMETERS`]) so a hostile description fails here,
    /// before anything is allocated.
    pub fn parameter_count(&self) -> Result<u64> {
        use crate::norm::{add_layer, check_at_most};
        check_at_most("in_channels", self.in_channels, crate::MAX_IMAGE_SIDE)?;
        check_at_most("widths", self.widths.len(), crate::MAX_BLOCKS)?;
        let mut total = 0u64;
        add_layer(
            &mut total,
            "stem_width",
            self.in_channels * 9,
            self.stem_width,
        )?;
        add_layer(&mut total, "stem_width", 1, self.stem_width)?;
        let mut in_ch = self.stem_width;
        for (&width, &n) in self.widths.iter().zip(&self.blocks) {
            check_at_most("blocks", n, crate::MAX_BLOCKS)?;
            for b in 0..n {
                // Two 3x3 convolutions, two BatchNorms, and a 1x1 shortcut when the shape
                // changes.
                add_layer(&mut total, "widths", in_ch.saturating_mul(9), width)?;
                add_layer(&mut total, "widths", width.saturating_mul(9), width)?;
                add_layer(&mut total, "widths", 4, width)?;
                if b == 0 && in_ch != width {
                    add_layer(&mut total, "widths", in_ch, width)?;
                }
                in_ch = width;
            }
        }
        Ok(total)
    }

    /// Builds the backbone with weights drawn from `rng` (He-uniform convolutions, BatchNorm
    /// weight 1 and bias 0).
    pub fn init(&self, rng: &mut SeededRng, device: &Device) -> ResNet {
        let stem = conv3x3(
            self.in_channels,
            self.stem_width,
            self.stem_stride,
            rng,
            device,
        );
        let stem_bn = batch_norm(self.stem_width, device);
        let mut blocks = Vec::new();
        let mut in_ch = self.stem_width;
        for (s, (&width, &n)) in self.widths.iter().zip(&self.blocks).enumerate() {
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(in_ch, width, stride, rng, device));
                in_ch = width;
            }
        }
        ResNet {
            stem,
            stem_bn,
            blocks,
        }
    }
}

/// The 1x1 projection (convolution + BatchNorm) on a block's shortcut when its shape changes.
#[derive(Module, Debug)]
pub struct Projection {
    conv: Conv2d,
    bn: BatchNorm,
}

/// A ResNet BasicBlock: two 3x3 convolutions with BatchNorm, ReLU, identity or projected shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<Projection>,
}

impl BasicBlock {
    fn new(
        in_ch: usize,
        out_ch: usize,
        stride: usize,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Self {
        let shortcut = (stride != 1 || in_ch != out_ch).then(|| Projection {
            conv: conv(in_ch, out_ch, 1, stride, 0, rng, device),
            bn: batch_norm(out_ch, device),
        });
        BasicBlock {
            conv1: conv3x3(in_ch, out_ch, stride, rng, device),
            bn1: batch_norm(out_ch, device),
            conv2: conv3x3(out_ch, out_ch, 1, rng, device),
            bn2: batch_norm(out_ch, device),
            shortcut,
        }
    }

    /// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = self.bn2.forward(self.conv2.forward(out));
        let short = match &self.shortcut {
            Some(p) => p.bn.forward(p.conv.forward(x)),
            None => x,
        };
        relu(out + short)
    }
}

/// The backbone: stem, BasicBlocks, global average pooling.
#[derive(Module, Debug)]
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
}

impl ResNet {
    /// The stem convolution's weights `[stem_width, C, 3, 3]` (for inspection).
    pub fn stem_weight(&self) -> Tensor<4> {
        self.stem.weight.val()
    }

    /// Features `[N, feature_dim]` of (already normalised) images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem_bn.forward(self.stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }
}

/// A two-layer MLP head `Linear -> ReLU -> Linear`.
#[derive(Module, Debug)]
pub struct MlpHead {
    hidden: Linear,
    output: Linear,
}

impl MlpHead {
    /// A head `d_in -> d_hidden -> d_out` with PyTorch's default uniform initialisation.
    pub fn new(
        d_in: usize,
        d_hidden: usize,
        d_out: usize,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Self {
        MlpHead {
            hidden: linear(d_in, d_hidden, rng, device),
            output: linear(d_hidden, d_out, rng, device),
        }
    }

    /// Raw outputs `[N, d_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.output.forward(relu(self.hidden.forward(x)))
    }
}

fn uniform(rng: &mut SeededRng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

fn conv3x3(
    in_ch: usize,
    out_ch: usize,
    stride: usize,
    rng: &mut SeededRng,
    device: &Device,
) -> Conv2d {
    conv(in_ch, out_ch, 3, stride, 1, rng, device)
}

/// A bias-free convolution with He-uniform weights (gain sqrt(2), fan-in).
fn conv(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    rng: &mut SeededRng,
    device: &Device,
) -> Conv2d {
    let mut c = Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device);
    let fan_in = in_ch * kernel * kernel;
    let bound = (6.0 / fan_in as f32).sqrt();
    let shape = [out_ch, in_ch, kernel, kernel];
    let values = uniform(rng, shape.iter().product(), bound);
    c.weight = Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device));
    c
}

pub(crate) fn linear(d_in: usize, d_out: usize, rng: &mut SeededRng, device: &Device) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    let bound = 1.0 / (d_in as f32).sqrt();
    let w = uniform(rng, d_in * d_out, bound);
    let b = uniform(rng, d_out, bound);
    l.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device));
    l.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(b, [d_out]),
        device,
    )));
    l
}

fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}
