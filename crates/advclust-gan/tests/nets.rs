//! Architecture checks: parameter counts, output sizes, size validation, initialisation.

mod common;

use advclust_gan::{AttackError, Discriminator, Generator, check_image_shape, trainable_params};
use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use common::device;

#[test]
fn parameter_counts_match_the_reference() {
    let dev = device();
    // Encoder 224 + 1168 + 4640, 4 residual blocks of 2 * 9216 + 2 * 64, decoder 4608 + 1152 + 864.
    let g3 = Generator::new(3, 0, &dev);
    assert_eq!(trainable_params(&g3), 86_896);
    let g1 = Generator::new(1, 0, &dev);
    assert_eq!(trainable_params(&g1), 86_176);
    // burn's num_params also counts the 8 BatchNorms' running mean and variance (32 each).
    assert_eq!(g3.num_params(), 86_896 + 8 * 2 * 32);

    let d3 = Discriminator::new(3, 0, &dev);
    assert_eq!(trainable_params(&d3), 10_809);
    let d1 = Discriminator::new(1, 0, &dev);
    assert_eq!(trainable_params(&d1), 10_553);
    assert_eq!(d3.num_params(), 10_809 + 2 * (16 + 32));
}

#[test]
fn generator_keeps_the_size_and_discriminator_gives_patches() {
    let dev = device();
    for channels in [1, 3] {
        let g = Generator::new(channels, 1, &dev);
        let d = Discriminator::new(channels, 1, &dev);
        assert_eq!(g.channels(), channels);
        for (side, patch) in [(28, 1), (32, 2)] {
            let x = Tensor::<4>::random([2, channels, side, side], Distribution::Default, &dev);
            let delta = g.forward(x.clone());
            assert_eq!(delta.dims(), [2, channels, side, side]);
            let values = advclust_core::tensor_to_vec(delta.into_data()).unwrap();
            assert!(values.iter().all(|v| v.abs() < 1.0), "tanh output");
            assert_eq!(d.forward(x).dims(), [2, 1, patch, patch]);
        }
    }
}

#[test]
fn unsupported_sizes_get_a_typed_error() {
    assert!(check_image_shape([1, 24, 24]).is_ok());
    assert!(check_image_shape([3, 96, 96]).is_ok());
    for (h, w) in [(30, 28), (28, 26), (27, 27)] {
        assert!(matches!(
            check_image_shape([1, h, w]),
            Err(AttackError::UnsupportedImageSize { height, width, .. }) if height == h && width == w
        ));
    }
    assert!(matches!(
        check_image_shape([1, 20, 32]),
        Err(AttackError::UnsupportedImageSize { .. })
    ));
    assert!(check_image_shape([0, 28, 28]).is_err());
    // Bounded above too (a saved attack's image_shape[0] = 2^63 panicked inside burn, 65,536
    // took a second and 100 MB before the weights were refused: found by advclust-fuzz).
    assert!(check_image_shape([4096, 24, 24]).is_ok());
    for shape in [
        [4097, 24, 24],
        [1 << 63, 24, 24],
        [1, 8192, 24],
        [1, 24, 8192],
    ] {
        assert!(
            matches!(
                check_image_shape(shape),
                Err(AttackError::UnsupportedImageSize { .. })
            ),
            "{shape:?}"
        );
    }
    use advclust_core::ParamGuard;
    use advclust_gan::{AttackConfig, GradientSource, MAX_BATCH_SIZE, MAX_ESTIMATOR_SAMPLES};
    assert!(
        AttackConfig::new()
            .with_batch_size(MAX_BATCH_SIZE)
            .check()
            .is_ok()
    );
    assert!(
        AttackConfig::new()
            .with_batch_size(MAX_BATCH_SIZE + 1)
            .check()
            .is_err()
    );
    assert!(
        AttackConfig::new()
            .with_batch_size(1 << 63)
            .check()
            .is_err()
    );
    let nes = |samples| GradientSource::Nes {
        samples,
        sigma: 0.01,
    };
    assert!(
        AttackConfig::new()
            .with_gradient_source(nes(MAX_ESTIMATOR_SAMPLES))
            .check()
            .is_ok()
    );
    assert!(
        AttackConfig::new()
            .with_gradient_source(nes(1 << 40))
            .check()
            .is_err()
    );
}

#[test]
fn initialisation_is_seeded_and_follows_the_reference() {
    let dev = device();
    let a = Generator::new(1, 7, &dev);
    let b = Generator::new(1, 7, &dev);
    let c = Generator::new(1, 8, &dev);
    let x = Tensor::<4>::random([1, 1, 28, 28], Distribution::Default, &dev);
    let ya = a.forward(x.clone()).into_data();
    let yb = b.forward(x.clone()).into_data();
    let yc = c.forward(x).into_data();
    assert_eq!(ya, yb);
    assert_ne!(ya, yc);

    // Conv weights ~ N(0, 0.02): check the std of the largest weight tensors.
    let mut weights = Vec::new();
    struct Collect<'a>(&'a mut Vec<f32>, Vec<String>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.1.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            if D == 4 && self.1.last().map(String::as_str) == Some("weight") {
                self.0
                    .extend(advclust_core::tensor_to_vec(p.val().into_data()).unwrap());
            }
        }
    }
    a.visit(&mut Collect(&mut weights, Vec::new()));
    let n = weights.len() as f64;
    let mean = weights.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (weights
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(mean.abs() < 1e-3, "mean {mean}");
    assert!((std - 0.02).abs() < 1e-3, "std {std}");
}
