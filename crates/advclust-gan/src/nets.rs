//! The generator and the patch discriminator of the reference attack (AdvGAN-style).
//!
//! Weights are drawn on the host from a seeded [`SeededRng`], not from the backend's generator, so
//! the same seed gives the same networks on every backend and regardless of what else runs in
//! the process.

use advclust_core::{MAX_IMAGE_SIDE, SeededRng};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, InstanceNorm, InstanceNormConfig};
use burn::tensor::activation::{leaky_relu, relu, sigmoid, tanh};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};

use crate::error::{AttackError, Result};

/// Smallest image side the networks accept: the discriminator's three unpadded stride-2
/// 4x4 convolutions need at least 22 pixels, and the generator needs a multiple of 4.
pub const MIN_IMAGE_SIDE: usize = 24;

/// Standard deviation of the N(0, 0.02) conv weights and N(1, 0.02) BatchNorm scales.
const INIT_STD: f64 = 0.02;

/// Checks that `[C, H, W]` images can go through [`Generator`] (output size equal to the input
/// size) and [`Discriminator`]: `C >= 1`, `H` and `W` multiples of 4 and at least
/// [`MIN_IMAGE_SIDE`], and none above [`MAX_IMAGE_SIDE`].
///
/// ```
/// use advclust_gan::check_image_shape;
/// assert!(check_image_shape([3, 32, 32]).is_ok());
/// assert!(check_image_shape([1, 30, 28]).is_err()); // 30 is not a multiple of 4
/// assert!(check_image_shape([1, 20, 20]).is_err()); // too small for the discriminator
/// ```
pub fn check_image_shape(shape: [usize; 3]) -> Result<()> {
    let [c, h, w] = shape;
    let err = |reason: String| AttackError::UnsupportedImageSize {
        height: h,
        width: w,
        reason,
    };
    if c == 0 {
        return Err(AttackError::Core(advclust_core::CoreError::EmptyDimension(
            "channels",
        )));
    }
    if c > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE {
        return Err(err(format!(
            "{c} channels: the channel count and each side must be at most {MAX_IMAGE_SIDE}"
        )));
    }
    if h % 4 != 0 || w % 4 != 0 {
        return Err(err(
            "height and width must be multiples of 4 for the generator's output to match its \
             input (pad or crop the images)"
                .into(),
        ));
    }
    if h < MIN_IMAGE_SIDE || w < MIN_IMAGE_SIDE {
        return Err(err(format!(
            "height and width must be at least {MIN_IMAGE_SIDE} for the discriminator's three \
             stride-2 4x4 convolutions"
        )));
    }
    Ok(())
}

/// Seeded host-side sampler for initial weights.
pub(crate) struct WeightInit {
    rng: SeededRng,
}

impl WeightInit {
    pub(crate) fn new(seed: u64) -> Self {
        WeightInit {
            rng: SeededRng::seed_from_u64(seed),
        }
    }

    /// `len` samples of N(mean, std) by the Box-Muller transform.
    pub(crate) fn normal(&mut self, len: usize, mean: f64, std: f64) -> Vec<f32> {
        gaussian(&mut self.rng, len)
            .into_iter()
            .map(|z| (mean + std * z as f64) as f32)
            .collect()
    }

    /// `len` samples of U(-bound, bound).
    fn uniform(&mut self, len: usize, bound: f64) -> Vec<f32> {
        (0..len)
            .map(|_| ((self.rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
            .collect()
    }

    fn param<const D: usize>(
        values: Vec<f32>,
        shape: [usize; D],
        device: &Device,
    ) -> Param<Tensor<D>> {
        Param::from_data(TensorData::new(values, shape), device)
    }

    /// Replaces a conv's weight by N(0, 0.02) and its bias (if any) by PyTorch's default
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as the reference's `weights_init` leaves biases alone.
    fn conv(&mut self, mut conv: Conv2d, device: &Device) -> Conv2d {
        let shape = conv.weight.lazy_shape().dims::<4>();
        let fan_in = shape[1] * shape[2] * shape[3];
        let n = shape.iter().product();
        conv.weight = Self::param(self.normal(n, 0.0, INIT_STD), shape, device);
        if conv.bias.is_some() {
            let bound = 1.0 / (fan_in as f64).sqrt();
            conv.bias = Some(Self::param(
                self.uniform(shape[0], bound),
                [shape[0]],
                device,
            ));
        }
        conv
    }

    fn conv_t(&mut self, mut conv: ConvTranspose2d, device: &Device) -> ConvTranspose2d {
        let shape = conv.weight.lazy_shape().dims::<4>();
        let n = shape.iter().product();
        conv.weight = Self::param(self.normal(n, 0.0, INIT_STD), shape, device);
        conv
    }

    fn batch_norm(&mut self, mut bn: BatchNorm, device: &Device) -> BatchNorm {
        let [c] = bn.gamma.lazy_shape().dims::<1>();
        bn.gamma = Self::param(self.normal(c, 1.0, INIT_STD), [c], device);
        bn.beta = Self::param(vec![0.0; c], [c], device);
        bn
    }
}

/// `len` standard normal samples (Box-Muller, two per pair of uniforms).
pub(crate) fn gaussian(rng: &mut SeededRng, len: usize) -> Vec<f32> {
    advclust_core::standard_normal(rng, len)
}

fn conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_bias(bias)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

fn conv_t(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_bias(false)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

fn instance_norm(c: usize, device: &Device) -> InstanceNorm {
    // PyTorch's InstanceNorm2d default: no affine parameters, no running statistics.
    InstanceNormConfig::new(c).with_affine(false).init(device)
}

/// Reflection padding of 1 pixel on each side of H and W.
fn reflect_pad1(x: Tensor<4>) -> Tensor<4> {
    x.pad([(1, 1), (1, 1)], PadMode::Reflect)
}

/// Residual block of the generator's bottleneck: reflection pad 1, conv 3x3 (no bias),
/// BatchNorm, ReLU, reflection pad 1, conv 3x3 (no bias), BatchNorm; `x + block(x)`.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
}

impl ResnetBlock {
    fn new(dim: usize, init: &mut WeightInit, device: &Device) -> Self {
        ResnetBlock {
            conv1: init.conv(conv(dim, dim, 3, 1, false, device), device),
            bn1: init.batch_norm(BatchNormConfig::new(dim).init(device), device),
            conv2: init.conv(conv(dim, dim, 3, 1, false, device), device),
            bn2: init.batch_norm(BatchNormConfig::new(dim).init(device), device),
        }
    }

    /// `x + block(x)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv1.forward(reflect_pad1(x.clone()));
        let y = relu(self.bn1.forward(y));
        let y = self.bn2.forward(self.conv2.forward(reflect_pad1(y)));
        x + y
    }
}

/// The generator `G: x -> delta` of the reference attack (about 87k parameters for 3 channels).
///
/// Encoder: conv 3x3 s1 (C->8), conv 3x3 s2 (8->16), conv 3x3 s2 (16->32), each with bias,
/// InstanceNorm (no affine) and ReLU, no padding. Bottleneck: 4 [`ResnetBlock`]s on 32
/// channels. Decoder: transposed conv 3x3 s2 (32->16) and (16->8), no bias, InstanceNorm, ReLU;
/// transposed conv 6x6 s1 (8->C), no bias; tanh. The output has the input's size when H and W
/// are multiples of 4 (see [`check_image_shape`]).
#[derive(Module, Debug)]
pub struct Generator {
    enc1: Conv2d,
    enc1_norm: InstanceNorm,
    enc2: Conv2d,
    enc2_norm: InstanceNorm,
    enc3: Conv2d,
    enc3_norm: InstanceNorm,
    blocks: Vec<ResnetBlock>,
    dec1: ConvTranspose2d,
    dec1_norm: InstanceNorm,
    dec2: ConvTranspose2d,
    dec2_norm: InstanceNorm,
    dec3: ConvTranspose2d,
}

impl Generator {
    /// A generator for `channels`-channel images, initialised from `seed` (conv weights
    /// N(0, 0.02), conv biases U(+-1/sqrt(fan_in)), BatchNorm scale N(1, 0.02) and shift 0).
    pub fn new(channels: usize, seed: u64, device: &Device) -> Self {
        let mut init = WeightInit::new(seed);
        let d = device;
        Generator {
            enc1: init.conv(conv(channels, 8, 3, 1, true, d), d),
            enc1_norm: instance_norm(8, d),
            enc2: init.conv(conv(8, 16, 3, 2, true, d), d),
            enc2_norm: instance_norm(16, d),
            enc3: init.conv(conv(16, 32, 3, 2, true, d), d),
            enc3_norm: instance_norm(32, d),
            blocks: (0..4).map(|_| ResnetBlock::new(32, &mut init, d)).collect(),
            dec1: init.conv_t(conv_t(32, 16, 3, 2, d), d),
            dec1_norm: instance_norm(16, d),
            dec2: init.conv_t(conv_t(16, 8, 3, 2, d), d),
            dec2_norm: instance_norm(8, d),
            dec3: init.conv_t(conv_t(8, channels, 6, 1, d), d),
        }
    }

    /// Number of image channels.
    pub fn channels(&self) -> usize {
        self.enc1.weight.lazy_shape().dims::<4>()[1]
    }

    /// The raw perturbation `G(x)` in `(-1, 1)`, shape `[N, C, H, W]` like `x`.
    ///
    /// # Panics
    ///
    /// On a channel count other than [`Generator::channels`] or a size refused by
    /// [`check_image_shape`]; the trainer and [`crate::TrainedAttack::perturb`] check first.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.enc1_norm.forward(self.enc1.forward(x)));
        let x = relu(self.enc2_norm.forward(self.enc2.forward(x)));
        let mut x = relu(self.enc3_norm.forward(self.enc3.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = relu(self.dec1_norm.forward(self.dec1.forward(x)));
        let x = relu(self.dec2_norm.forward(self.dec2.forward(x)));
        tanh(self.dec3.forward(x))
    }
}

/// The patch discriminator `D` (about 10.5k parameters): conv 4x4 s2 (C->8) + LeakyReLU 0.2;
/// conv 4x4 s2 (8->16) + BatchNorm + LeakyReLU 0.2; conv 4x4 s2 (16->32) + BatchNorm +
/// LeakyReLU 0.2; conv 1x1 (32->1); sigmoid. No padding: a 32x32 input gives a 2x2 map.
#[derive(Module, Debug)]
pub struct Discriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    head: Conv2d,
}

impl Discriminator {
    /// A discriminator for `channels`-channel images, initialised from `seed`.
    pub fn new(channels: usize, seed: u64, device: &Device) -> Self {
        let mut init = WeightInit::new(seed);
        let d = device;
        Discriminator {
            conv1: init.conv(conv(channels, 8, 4, 2, true, d), d),
            conv2: init.conv(conv(8, 16, 4, 2, true, d), d),
            bn2: init.batch_norm(BatchNormConfig::new(16).init(d), d),
            conv3: init.conv(conv(16, 32, 4, 2, true, d), d),
            bn3: init.batch_norm(BatchNormConfig::new(32).init(d), d),
            head: init.conv(conv(32, 1, 1, 1, true, d), d),
        }
    }

    /// Patch probabilities `[N, 1, H', W']` that each patch is a clean image.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = leaky_relu(self.conv1.forward(x), 0.2);
        let x = leaky_relu(self.bn2.forward(self.conv2.forward(x)), 0.2);
        let x = leaky_relu(self.bn3.forward(self.conv3.forward(x)), 0.2);
        sigmoid(self.head.forward(x))
    }
}

/// Number of trainable parameters of `module`: every float parameter except BatchNorm running
/// statistics (which burn's `num_params()` counts and PyTorch's parameter count does not).
///
/// ```
/// use advclust_gan::{trainable_params, Discriminator, Generator};
/// let device = burn::tensor::Device::flex();
/// assert_eq!(trainable_params(&Generator::new(3, 0, &device)), 86_896);
/// assert_eq!(trainable_params(&Discriminator::new(1, 0, &device)), 10_553);
/// ```
pub fn trainable_params<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        count: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let running = matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            );
            if !running {
                self.count += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        count: 0,
    };
    module.visit(&mut counter);
    counter.count
}
