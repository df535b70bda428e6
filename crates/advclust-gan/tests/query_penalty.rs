//! A penalty the attacker can only query ([`QueryPenalty`]): its gradient is estimated from the
//! perturbed copies already sent to the victim, each copy sent to it once, counted apart; it
//! steers the generator; a backprop run refuses it; bad answers are typed errors.

mod common;

use advclust_core::{ImageBatch, ModelOracle, ParamGuard};
use advclust_gan::{AttackError, AttackTrainer, GradientSource, QueryPenalty};
use common::{BrightnessPenalty as Brightness, HalfVictim, SIDE, base, device, halves};

/// Answers one value too few.
#[derive(Debug)]
struct Short;

impl QueryPenalty for Short {
    fn name(&self) -> String {
        "short".into()
    }
    fn weight(&self) -> f32 {
        1.0
    }
    fn penalties(
        &self,
        batch: &ImageBatch,
    ) -> Result<Vec<f64>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(vec![0.0; batch.len() - 1])
    }
}

fn mean_brightness(b: &ImageBatch) -> f64 {
    b.data().iter().map(|&v| f64::from(v)).sum::<f64>() / b.data().len() as f64
}

#[test]
fn a_query_penalty_is_estimated_from_the_victims_copies_and_steers_the_generator() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let config = base()
        .with_gradient_source(GradientSource::Nes {
            samples: 2,
            sigma: 0.01,
        })
        .with_max_images_per_call(Some(16))
        .with_stopping(advclust_gan::Stopping::Epochs { epochs: 8 })
        .check()
        .unwrap();
    let run = |penalty: Option<&dyn QueryPenalty>| {
        let mut oracle = ModelOracle::new(&victim, &dev);
        let trainer = AttackTrainer::new(&config, &dev);
        let trainer = match penalty {
            Some(p) => trainer.with_query_penalty(p),
            None => trainer,
        };
        trainer.fit_oracle(&mut oracle, &x).unwrap()
    };
    let plain = run(None);
    assert_eq!(plain.report().penalty_queries, None);
    let strong = Brightness {
        weight: 2000.0,
        floor: 0.0,
    };
    let adaptive = run(Some(&strong));
    let victim_q = adaptive.report().training_queries;
    let penalty_q = adaptive.report().penalty_queries.expect("counted");
    // Every perturbed copy went to the penalty too, in the same calls (2 x 2 x 8 copies per
    // step in calls of 16, 16 steps); the 16 clean images (one call per step of epoch 1) did not.
    assert_eq!(penalty_q.images, 16 * 32);
    assert_eq!(penalty_q.images, victim_q.images - 16);
    assert_eq!(penalty_q.batch_calls, 32);
    assert_eq!(penalty_q.batch_calls, victim_q.batch_calls - 2);
    assert!(adaptive.report().curves.iter().all(|c| c.l_penalty > 0.0));
    assert!(plain.report().curves.iter().all(|c| c.l_penalty == 0.0));
    let (dark, bright) = (
        mean_brightness(&adaptive.perturb(&x).unwrap()),
        mean_brightness(&plain.perturb(&x).unwrap()),
    );
    assert!(
        dark < bright - 0.01,
        "the penalty darkens the images: {dark} vs {bright}"
    );
    // Same seed, same penalty: the same generator.
    assert_eq!(
        run(Some(&strong)).perturb(&x).unwrap(),
        adaptive.perturb(&x).unwrap()
    );
    // A penalty that is zero everywhere (floor above every image) changes nothing.
    let idle = Brightness {
        weight: 200.0,
        floor: 2.0,
    };
    assert_eq!(
        run(Some(&idle)).perturb(&x).unwrap(),
        plain.perturb(&x).unwrap()
    );
}

#[test]
fn a_query_penalty_needs_a_query_only_source_and_valid_answers() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let backprop = base().check().unwrap();
    let penalty = Brightness {
        weight: 1.0,
        floor: 0.0,
    };
    let err = AttackTrainer::new(&backprop, &dev)
        .with_query_penalty(&penalty)
        .fit_model(&victim, &x)
        .unwrap_err();
    assert!(matches!(err, AttackError::InvalidConfig { .. }), "{err}");
    let nes = base()
        .with_gradient_source(GradientSource::Nes {
            samples: 1,
            sigma: 0.01,
        })
        .check()
        .unwrap();
    let mut oracle = ModelOracle::new(&victim, &dev);
    let err = AttackTrainer::new(&nes, &dev)
        .with_query_penalty(&Short)
        .fit_oracle(&mut oracle, &x)
        .unwrap_err();
    assert!(
        matches!(err.root(), AttackError::Penalty { name, .. } if name == "short"),
        "{err}"
    );
}
