//! Time of one attack training step (one discriminator and one generator Adam step, attack
//! gradient backpropagated through a frozen victim) on a `[256, 1, 28, 28]` batch, on the
//! backend that `ADVCLUST_BACKEND` names (default: the best compiled in).
//!
//! The victim is a small CNN (conv 3x3 s2 1->16, ReLU, conv 3x3 s2 16->32, ReLU, linear ->
//! 10, softmax; 16,330 parameters); `benches/torch_step.py` is the same step in PyTorch.
//!
//! ```text
//! cargo bench --bench attack_step                                   # flex
//! ADVCLUST_BACKEND=tch-cpu cargo bench --no-default-features --features tch --bench attack_step
//! python3 benches/torch_step.py --threads 2 --steps 20              # PyTorch, eager
//! ```

use std::hint::black_box;
use std::time::Duration;

use advclust::core::{DifferentiableClusterModel, ImageBatch, ParamGuard, ValueBox};
use advclust::gan::{AttackConfig, AttackGan, FrozenVictim, GradientSource};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

/// A small CNN clustering victim for 1x28x28 images, k = 10.
#[derive(Module, Debug)]
struct SmallCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    head: Linear,
}

impl SmallCnn {
    fn new(device: &Device) -> Self {
        SmallCnn {
            conv1: Conv2dConfig::new([1, 16], [3, 3])
                .with_stride([2, 2])
                .init(device),
            conv2: Conv2dConfig::new([16, 32], [3, 3])
                .with_stride([2, 2])
                .init(device),
            head: LinearConfig::new(32 * 6 * 6, 10).init(device),
        }
    }
}

impl DifferentiableClusterModel for SmallCnn {
    fn num_clusters(&self) -> usize {
        10
    }
    fn input_shape(&self) -> [usize; 3] {
        [1, 28, 28]
    }
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(images));
        let x = relu(self.conv2.forward(x));
        softmax(self.head.forward(x.flatten::<2>(1, 3)), 1)
    }
}

fn batch(n: usize) -> ImageBatch {
    let data = (0..n * 28 * 28)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0)
        .collect();
    ImageBatch::new(data, [n, 1, 28, 28], ValueBox::UNIT).unwrap()
}

fn step(c: &mut Criterion) {
    let name = std::env::var("ADVCLUST_BACKEND").unwrap_or_else(|_| "default".into());
    let device = advclust::device(None).expect("ADVCLUST_BACKEND names a compiled-in backend");
    device.seed(0);
    let victim = SmallCnn::new(&device);
    let frozen = FrozenVictim::new(&victim, &device);
    let x = batch(256);
    let config = AttackConfig::new()
        .with_gradient_source(GradientSource::Backprop)
        .with_progress(false)
        .check()
        .unwrap();
    let mut gan = AttackGan::new(&config, [1, 28, 28], ValueBox::UNIT, &device).unwrap();
    let mut group = c.benchmark_group("attack_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    group.bench_function(format!("backprop_256x1x28x28_{name}"), |b| {
        b.iter(|| black_box(gan.step_backprop(&frozen, &x).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
