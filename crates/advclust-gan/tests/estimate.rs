//! The zeroth-order estimates agree with the true gradient on the toy victim.

mod common;

use advclust_core::{Budgeted, DifferentiableClusterModel, ImageBatch, ModelOracle, QueryBudget};
use advclust_gan::{AdvDistance, AdvObjective, GradientSource, estimate_adv_gradient};
use burn::tensor::Tensor;
use common::{HalfVictim, SIDE, device, halves};
use rand::SeedableRng;
use rand::rngs::StdRng;

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
        let mut rng = StdRng::seed_from_u64(1);
        let est = estimate_adv_gradient(
            &mut oracle,
            &x,
            AdvObjective::Away(&clean),
            AdvDistance::HalfSquaredSum,
            source,
            Some(1000),
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
        // The loss estimate is close to the exact L_adv at x.
        assert!(est.l_adv() > 0.0);
    }
}

#[test]
fn estimator_rejects_backprop_and_bad_targets() {
    let dev = device();
    let victim = HalfVictim::new(3.0, &dev);
    let (x, _) = halves(1, 1, SIDE);
    let mut oracle = ModelOracle::new(&victim, &dev);
    let mut rng = StdRng::seed_from_u64(0);
    let nes = GradientSource::Nes {
        samples: 1,
        sigma: 0.01,
    };
    assert!(
        estimate_adv_gradient(
            &mut oracle,
            &x,
            AdvObjective::Toward(0),
            AdvDistance::L2Mean,
            GradientSource::Backprop,
            None,
            &mut rng
        )
        .is_err()
    );
    assert!(
        estimate_adv_gradient(
            &mut oracle,
            &x,
            AdvObjective::Toward(2),
            AdvDistance::L2Mean,
            nes,
            None,
            &mut rng
        )
        .is_err()
    );
    assert!(
        estimate_adv_gradient(
            &mut oracle,
            &x,
            AdvObjective::Away(&[1.0]),
            AdvDistance::L2Mean,
            nes,
            None,
            &mut rng
        )
        .is_err()
    );
    let ok = estimate_adv_gradient(
        &mut oracle,
        &x,
        AdvObjective::Toward(1),
        AdvDistance::L2Mean,
        nes,
        None,
        &mut rng,
    )
    .unwrap();
    assert!(ok.losses[0] <= 0.0, "targeted L_adv is minus a distance");
}
