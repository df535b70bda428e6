//! The zeroth-order estimates agree with the true gradient on the toy victim.

mod common;

use advclust_core::SeededRng;
use advclust_core::{Budgeted, DifferentiableClusterModel, ImageBatch, ModelOracle, QueryBudget};
use advclust_gan::{
    AdvDistance, AdvObjective, GradientSource, QueryEstimator, estimate_adv_gradient,
};
use burn::tensor::Tensor;
use common::{HalfVictim, SIDE, device, halves};
use rand::SeedableRng;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// True `d/dx sum_i 0.5 ||C(x_i) - M_i||^2` by autodiff, for clean memberships `clean`.
fn true_gradient(victim: &HalfVictim, x: &ImageBatch, clean: &[f32]) -> Vec<f32> {
    let dev = device().autodiff();
    let xt = x.to_tensor(&dev).require_grad();
    let m = Tensor::<2>::from_data(
        burn::tensor::TensorData::new(clean.to_vec(), [x.len(), 2]),
        &dev,
    );
    let out = victim.memberships(xt.clone());
    let loss = (out - m).powf_scalar(2.0).sum().mul_scalar(0.5);
    let grads = loss.backward();
    advclust_core::tensor_to_vec(xt.grad(&grads).unwrap().into_data()).unwrap()
}

#[test]
fn nes_and_spsa_estimates_point_along_the_true_gradient() {
    let dev = device();
    // Moderately confident victim so the softmax is not saturated.
    let victim = HalfVictim::new(3.0, &dev);
    let (x, _) = halves(2, 1, SIDE);
    // Reference memberships that differ from the victim's output at x (else the gradient is 0).
    let clean = vec![0.1f32, 0.9, 0.8, 0.2];
    let truth = true_gradient(&victim, &x, &clean);
    let d = SIDE * SIDE;
    for source in [
        GradientSource::Nes {
            samples: 1000,
            sigma: 0.01,
        },
        GradientSource::Spsa {
            samples: 1000,
            delta: 0.01,
        },
    ] {
        let mut oracle = Budgeted::new(ModelOracle::new(&victim, &dev), QueryBudget::UNLIMITED);
        let mut rng = SeededRng::seed_from_u64(1);
        let est = estimate_adv_gradient(
            &mut oracle,
            &x,
            AdvObjective::Away(&clean),
            AdvDistance::HalfSquaredSum,
            &QueryEstimator {
                source,
                tile: 1,
                max_images_per_call: Some(1000),
            },
            &mut rng,
        )
        .unwrap();
        for i in 0..2 {
            let c = cosine(
                &est.gradient[i * d..(i + 1) * d],
                &truth[i * d..(i + 1) * d],
            );
            assert!(c > 0.5, "{source:?} image {i}: cosine {c}");
        }
        assert_eq!(oracle.counts().images, 2 * 2 * 1000);
        assert_eq!(oracle.counts().batch_calls, 4);
        assert_eq!(est.calls, 4);
        // The loss estimate is close to the exact L_adv = sum_i 0.5 ||C(x_i) - M_i||^2 at x.
        let out = advclust_core::tensor_to_vec(victim.memberships(x.to_tensor(&dev)).into_data())
            .unwrap();
        let exact: f64 = out
            .iter()
            .zip(&clean)
            .map(|(a, b)| 0.5 * f64::from(a - b).powi(2))
            .sum();
        let rel = (est.l_adv() - exact).abs() / exact;
        assert!(
            rel < 0.05,
            "{source:?}: estimate {} vs exact {exact}",
            est.l_adv()
        );
    }
}

#[test]
fn estimator_rejects_backprop_and_bad_targets() {
    let dev = device();
    let victim = HalfVictim::new(3.0, &dev);
    let (x, _) = halves(1, 1, SIDE);
    let mut oracle = ModelOracle::new(&victim, &dev);
    let mut rng = SeededRng::seed_from_u64(0);
    let nes = GradientSource::Nes {
        samples: 1,
        sigma: 0.01,
    };
    let mut estimate = |objective, source| {
        estimate_adv_gradient(
            &mut oracle,
            &x,
            objective,
            AdvDistance::L2Mean,
            &QueryEstimator {
                source,
                tile: 1,
                max_images_per_call: None,
            },
            &mut rng,
        )
    };
    assert!(estimate(AdvObjective::Toward(0), GradientSource::Backprop).is_err());
    assert!(estimate(AdvObjective::Toward(2), nes).is_err());
    assert!(estimate(AdvObjective::Away(&[1.0]), nes).is_err());
    assert!(estimate(AdvObjective::Toward(1), nes).is_ok());
}

#[test]
fn targeted_estimate_points_toward_the_target() {
    let dev = device();
    let victim = HalfVictim::new(3.0, &dev);
    let (x, _) = halves(2, 1, SIDE);
    // Maximising minus the distance to the one-hot target is descending that distance.
    let target = 1;
    let one_hot = [0.0f32, 1.0, 0.0, 1.0];
    let toward: Vec<f32> = true_gradient(&victim, &x, &one_hot)
        .into_iter()
        .map(|g| -g)
        .collect();
    let mut oracle = ModelOracle::new(&victim, &dev);
    let mut rng = SeededRng::seed_from_u64(2);
    let est = estimate_adv_gradient(
        &mut oracle,
        &x,
        AdvObjective::Toward(target),
        AdvDistance::HalfSquaredSum,
        &QueryEstimator {
            source: GradientSource::Nes {
                samples: 1000,
                sigma: 0.01,
            },
            tile: 1,
            max_images_per_call: Some(1000),
        },
        &mut rng,
    )
    .unwrap();
    let d = SIDE * SIDE;
    for i in 0..2 {
        let c = cosine(
            &est.gradient[i * d..(i + 1) * d],
            &toward[i * d..(i + 1) * d],
        );
        assert!(c > 0.5, "image {i}: cosine {c}");
    }
}

#[test]
fn coarse_directions_estimate_a_smooth_gradient_with_fewer_queries() {
    // The toy victim's gradient is constant on each half of the image, so 4 x 4 tiles lose
    // nothing and the estimate lives in 16 times fewer dimensions.
    let dev = device();
    let victim = HalfVictim::new(3.0, &dev);
    let (x, _) = halves(2, 1, SIDE);
    let clean = vec![0.1f32, 0.9, 0.8, 0.2];
    let truth = true_gradient(&victim, &x, &clean);
    let d = SIDE * SIDE;
    let mean_cosine = |tile: usize| {
        let mut total = 0.0;
        for seed in 0..5 {
            let mut rng = SeededRng::seed_from_u64(seed);
            let mut oracle = ModelOracle::new(&victim, &dev);
            let nes = GradientSource::Nes {
                samples: 10,
                sigma: 0.01,
            };
            let est = estimate_adv_gradient(
                &mut oracle,
                &x,
                AdvObjective::Away(&clean),
                AdvDistance::HalfSquaredSum,
                &QueryEstimator {
                    source: nes,
                    tile,
                    max_images_per_call: None,
                },
                &mut rng,
            )
            .unwrap();
            for i in 0..2 {
                total += cosine(
                    &est.gradient[i * d..(i + 1) * d],
                    &truth[i * d..(i + 1) * d],
                );
            }
        }
        total / 10.0
    };
    // With S Gaussian directions in D dimensions the cosine is about sqrt(S / (S + D)):
    // 0.47 for 10 directions in 36 coarse dimensions, 0.13 in 576 pixels.
    let (fine, coarse) = (mean_cosine(1), mean_cosine(4));
    assert!(coarse > 0.35, "tiles of 4: cosine {coarse}");
    assert!(
        coarse > 2.0 * fine,
        "tiles of 4: {coarse} vs per pixel: {fine}"
    );
    let mut rng = SeededRng::seed_from_u64(0);
    let zero = estimate_adv_gradient(
        &mut ModelOracle::new(&victim, &dev),
        &x,
        AdvObjective::Away(&clean),
        AdvDistance::HalfSquaredSum,
        &QueryEstimator {
            source: GradientSource::Nes {
                samples: 1,
                sigma: 0.01,
            },
            tile: 0,
            max_images_per_call: None,
        },
        &mut rng,
    );
    assert!(zero.is_err());
}
