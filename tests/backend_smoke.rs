//! Backend smoke test: a few Adam steps of a small conv net with autodiff on the backend that
//! `advclust::device(None)` picks (set `ADVCLUST_BACKEND` to choose). The loss must decrease and
//! the same seed must give the same losses. Run with `--nocapture` to see the losses.

use advclust::burn::module::Module;
use advclust::burn::nn::conv::{Conv2d, Conv2dConfig};
use advclust::burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use advclust::burn::optim::{AdamConfig, GradientsParams};
use advclust::burn::tensor::{Device, Distribution, Tensor, TensorData};
use std::time::Instant;

#[derive(Module, Debug)]
struct SmallConvNet {
    conv1: Conv2d,
    conv2: Conv2d,
    head: Linear,
    relu: Relu,
}

impl SmallConvNet {
    fn new(device: &Device) -> Self {
        SmallConvNet {
            conv1: Conv2dConfig::new([1, 8], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            conv2: Conv2dConfig::new([8, 16], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            head: LinearConfig::new(16 * 7 * 7, 10).init(device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.relu.forward(self.conv1.forward(x));
        let x = self.relu.forward(self.conv2.forward(x));
        self.head.forward(x.flatten::<2>(1, 3))
    }
}

/// Trains for `steps` Adam steps from `seed` on a fixed synthetic regression target; returns the
/// losses and the mean step time in milliseconds (after the first step).
fn run(device: &Device, seed: u64, steps: usize) -> (Vec<f32>, f64) {
    device.seed(seed);
    let x = Tensor::<4>::random([32, 1, 28, 28], Distribution::Uniform(0.0, 1.0), device);
    let target_data: Vec<f32> = (0..32 * 10)
        .map(|i| ((i * 37 % 17) as f32) / 17.0)
        .collect();
    let target = Tensor::<2>::from_data(TensorData::new(target_data, [32, 10]), device);
    let mut model = SmallConvNet::new(device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::with_capacity(steps);
    let mut elapsed = 0.0;
    for step in 0..steps {
        let start = Instant::now();
        let loss = (model.forward(x.clone()) - target.clone())
            .powf_scalar(2.0)
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        losses.push(loss.into_scalar::<f32>());
        if step > 0 {
            elapsed += start.elapsed().as_secs_f64() * 1e3;
        }
    }
    (losses, elapsed / (steps - 1) as f64)
}

#[test]
fn adam_steps_decrease_loss_and_are_reproducible() {
    let device = advclust::device(None).expect("a backend").autodiff();
    let steps = 8;
    let (a, ms) = run(&device, 42, steps);
    let (b, _) = run(&device, 42, steps);
    println!(
        "backend {:?} (compiled {:?}): losses {a:?}, {ms:.1} ms/step",
        std::env::var(advclust::BACKEND_ENV).unwrap_or_else(|_| "default".into()),
        advclust::compiled_backends()
    );
    assert!(a.iter().all(|l| l.is_finite()), "non-finite loss: {a:?}");
    assert!(
        a[steps - 1] < a[0] * 0.9,
        "loss did not decrease by 10%: {a:?}"
    );
    assert_eq!(a, b, "same seed, same backend must give the same losses");
}

#[test]
fn unknown_or_missing_backends_are_typed_errors() {
    assert!(matches!(
        advclust::device(Some("tpu")),
        Err(advclust::Error::UnknownBackend(_))
    ));
    if !cfg!(feature = "wgpu") {
        assert!(matches!(
            advclust::device(Some("wgpu")),
            Err(advclust::Error::BackendNotCompiled { .. })
        ));
    }
}
