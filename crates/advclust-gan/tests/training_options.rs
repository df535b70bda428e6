//! The objectives, generator snapshots and the query-only estimator's options (tiles, time
//! prior) on a toy victim.

mod common;

use advclust_core::{ModelOracle, ParamGuard, QueryBudget};
use advclust_gan::{AdvLoss, GradientSource, Stopping, train_backprop, train_query_only};
use common::{HalfVictim, SIDE, base, device, halves};

#[test]
fn soft_mutual_information_objective_breaks_the_toy_victim_in_both_modes() {
    let dev = device();
    let (x, labels) = halves(32, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    for source in [
        GradientSource::Backprop,
        GradientSource::Nes {
            samples: 20,
            sigma: 0.01,
        },
    ] {
        let config = base()
            .with_loss(AdvLoss::SoftMutualInformation)
            .with_gradient_source(source)
            .with_stopping(Stopping::Epochs { epochs: 8 })
            .check()
            .unwrap();
        let mut attack = if source.is_query_only() {
            let mut oracle = ModelOracle::new(&victim, &dev);
            train_query_only(&config, &mut oracle, &x, &dev).unwrap()
        } else {
            train_backprop(&config, &victim, &x, &dev).unwrap()
        };
        let mut oracle = ModelOracle::new(&victim, &dev);
        let eval = attack.evaluate(&mut oracle, &x, &labels).unwrap();
        // L_adv = -B MI rises towards 0 (no information left about the clean clusters).
        let curves = &attack.report().curves;
        assert!(curves.last().unwrap().l_adv > curves[0].l_adv);
        assert!(
            eval.adversarial.nmi < 0.5,
            "{}: adversarial NMI {}",
            source.name(),
            eval.adversarial.nmi
        );
    }
    // Untargeted only.
    assert!(
        base()
            .with_loss(AdvLoss::SoftMutualInformation)
            .with_target(Some(1))
            .check()
            .is_err()
    );
}

#[test]
fn a_generator_snapshot_equals_a_run_with_that_call_budget() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let spsa = GradientSource::Spsa {
        samples: 2,
        delta: 0.01,
    };
    // Query-only: the first step makes 1 clean call and 4 estimate calls of 16, later ones 4.
    let calls = vec![3, 5, 9, 13, 1000];
    let full = base()
        .with_gradient_source(spsa)
        .with_max_images_per_call(Some(16))
        .with_snapshot_calls(calls.clone())
        .check()
        .unwrap();
    let mut oracle = ModelOracle::new(&victim, &dev);
    let attack = train_query_only(&full, &mut oracle, &x, &dev).unwrap();
    assert_eq!(attack.snapshots().len(), calls.len());
    for (i, &c) in calls.iter().enumerate() {
        let snap = &attack.snapshots()[i];
        assert_eq!(snap.requested_calls, c);
        assert!(snap.queries.batch_calls <= c);
        let budget = base()
            .with_gradient_source(spsa)
            .with_max_images_per_call(Some(16))
            .with_budget(QueryBudget::batch_calls(c))
            .check()
            .unwrap();
        let mut oracle = ModelOracle::new(&victim, &dev);
        let short = train_query_only(&budget, &mut oracle, &x, &dev).unwrap();
        assert_eq!(snap.steps, short.report().steps, "at {c} calls");
        // The budget run stops before the step it could not finish: the same counts.
        assert_eq!(
            snap.queries,
            short.report().training_queries,
            "at {c} calls"
        );
        let from_snapshot = attack.perturb_snapshot(i, &x).unwrap().unwrap();
        assert_eq!(from_snapshot, short.perturb(&x).unwrap(), "at {c} calls");
    }
    assert!(attack.perturb_snapshot(calls.len(), &x).is_none());
    // The last one was never reached: it is the final generator.
    let last = attack
        .perturb_snapshot(calls.len() - 1, &x)
        .unwrap()
        .unwrap();
    assert_eq!(last, attack.perturb(&x).unwrap());
}

#[test]
fn the_time_prior_changes_training_reproducibly_and_is_validated() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let run = |momentum: f32| {
        let config = base()
            .with_gradient_source(GradientSource::Nes {
                samples: 1,
                sigma: 0.01,
            })
            .with_estimate_momentum(momentum)
            .with_direction_tile(4)
            .check()
            .unwrap();
        let mut oracle = ModelOracle::new(&victim, &dev);
        train_query_only(&config, &mut oracle, &x, &dev)
            .unwrap()
            .perturb(&x)
            .unwrap()
    };
    let (a, b, plain) = (run(0.5), run(0.5), run(0.0));
    assert_eq!(a, b);
    assert_ne!(a, plain);
    for bad in [-0.1, 1.0, f32::NAN] {
        assert!(base().with_estimate_momentum(bad).check().is_err());
    }
    assert!(base().with_direction_tile(0).check().is_err());
}
