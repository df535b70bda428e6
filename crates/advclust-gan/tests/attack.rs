//! Training, errors, budget, save/load, reproducibility and bounds on a toy victim.

mod common;

use advclust_core::{
    CoreError, ImageBatch, ModelOracle, NormKind, ParamGuard, QueryBudget, ThreatModel,
};
use advclust_gan::{
    AttackConfig, AttackError, CheckedAttackConfig, GradientSource, LrMilestone, OptimizerConfig,
    StopReason, Stopping, TrainedAttack, train_backprop, train_query_only,
};
use burn::module::Module;
use burn::tensor::Tensor;
use common::{HalfVictim, NanVictim, SIDE, base, device, halves};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("advclust-gan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn wrong_channels_or_size_are_typed_errors() {
    let dev = device();
    let victim = HalfVictim::new(10.0, &dev);
    let config = base().check().unwrap();
    let (rgb, _) = halves(4, 3, SIDE);
    let err = train_backprop(&config, &victim, &rgb, &dev).unwrap_err();
    assert!(
        matches!(err, AttackError::Core(CoreError::ImageShapeMismatch { .. })),
        "{err}"
    );

    // A size the networks cannot take, against an oracle that accepts anything.
    let (odd, _) = halves(4, 1, 26);
    let mut oracle = Brightness;
    let nes = base()
        .with_gradient_source(GradientSource::Nes {
            samples: 1,
            sigma: 0.01,
        })
        .check()
        .unwrap();
    let err = train_query_only(&nes, &mut oracle, &odd, &dev).unwrap_err();
    assert!(
        matches!(err, AttackError::UnsupportedImageSize { height: 26, .. }),
        "{err}"
    );
    let (small, _) = halves(4, 1, 20);
    let err = train_query_only(&nes, &mut oracle, &small, &dev).unwrap_err();
    assert!(
        matches!(err, AttackError::UnsupportedImageSize { height: 20, .. }),
        "{err}"
    );

    // Backprop needs a model; a query-only oracle refuses it.
    let (x, _) = halves(4, 1, SIDE);
    let err = train_query_only(&config, &mut oracle, &x, &dev).unwrap_err();
    assert!(matches!(err, AttackError::InvalidConfig { .. }));

    // Perturbing images of another shape is refused too.
    let attack = train_backprop(
        &base()
            .with_stopping(Stopping::Epochs { epochs: 1 })
            .check()
            .unwrap(),
        &victim,
        &x,
        &dev,
    )
    .unwrap();
    let err = attack.perturb(&rgb).unwrap_err();
    assert!(matches!(
        err,
        AttackError::Core(CoreError::ImageShapeMismatch { .. })
    ));
    // Target out of range.
    let targeted = base().with_target(Some(5)).check().unwrap();
    assert!(matches!(
        train_backprop(&targeted, &victim, &x, &dev).unwrap_err(),
        AttackError::TargetOutOfRange { target: 5, k: 2 }
    ));
}

/// Two clusters by mean brightness; accepts any shape.
struct Brightness;
impl advclust_core::ClusterOracle for Brightness {
    fn num_clusters(&self) -> usize {
        2
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        None
    }
    fn memberships(
        &mut self,
        batch: &ImageBatch,
    ) -> advclust_core::Result<advclust_core::Memberships> {
        let rows = (0..batch.len()).flat_map(|i| {
            let img = batch.image(i).unwrap();
            let p = img.iter().sum::<f32>() / img.len() as f32;
            [1.0 - p, p]
        });
        advclust_core::Memberships::new(rows.collect(), batch.len(), 2)
    }
}

#[test]
fn nan_inputs_and_outputs_are_typed_errors() {
    let mut data = vec![0.5f32; SIDE * SIDE];
    data[3] = f32::NAN;
    let err: AttackError = ImageBatch::unit(data, [1, 1, SIDE, SIDE])
        .unwrap_err()
        .into();
    assert!(matches!(
        err,
        AttackError::Core(CoreError::NonFinite { index: 3, .. })
    ));

    let dev = device();
    let (x, _) = halves(8, 1, SIDE);
    let err =
        train_backprop(&base().check().unwrap(), &NanVictim::new(&dev), &x, &dev).unwrap_err();
    assert!(
        matches!(
            err.root(),
            AttackError::NonFinite {
                epoch: 1,
                step: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.partial().is_some());
}

#[test]
fn a_spent_budget_ends_training_normally_before_the_step_that_would_not_fit() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let dir = temp_dir("budget");
    // Query-only: 16 clean images once, then 8 * 2 * 2 = 32 images per step; room for 2 steps
    // (the third would need 32 images with 10 left: it is not started, nothing is spent).
    let config = base()
        .with_gradient_source(GradientSource::Spsa {
            samples: 2,
            delta: 0.01,
        })
        .with_budget(QueryBudget::images(16 + 2 * 32 + 10))
        .with_output_dir(Some(dir.clone()))
        .check()
        .unwrap();
    let victim = HalfVictim::new(10.0, &dev);
    let mut oracle = ModelOracle::new(&victim, &dev);
    let attack = train_query_only(&config, &mut oracle, &x, &dev).unwrap();
    let report = attack.report();
    assert_eq!(report.steps, 2);
    assert_eq!(report.training_queries.images, 16 + 2 * 32);
    assert_eq!(
        report.stopped,
        StopReason::Budget {
            next_step_calls: 1,
            next_step_images: 32
        }
    );
    assert!(report.stopped.is_budget());
    assert!(report.interrupted.is_none());
    // The one complete epoch (2 steps of 8 images) is in the curves; the second made none.
    assert_eq!(report.curves.last().unwrap().steps, 2);
    let loaded = TrainedAttack::load(&dir, &dev).unwrap();
    assert_eq!(loaded.perturb(&x).unwrap(), attack.perturb(&x).unwrap());
    assert_eq!(loaded.report(), attack.report());

    // Backprop: one clean and one adversarial call per step; 5 calls allow 2 steps and the
    // fifth call is never made.
    let config = base()
        .with_budget(QueryBudget::batch_calls(5))
        .check()
        .unwrap();
    let attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    assert_eq!(attack.report().steps, 2);
    assert_eq!(attack.report().training_queries.batch_calls, 4);
    assert!(matches!(
        attack.report().stopped,
        StopReason::Budget {
            next_step_calls: 2,
            ..
        }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_load_gives_identical_perturbations() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let attack = train_backprop(&base().check().unwrap(), &victim, &x, &dev).unwrap();
    let dir = temp_dir("save");
    attack.save(&dir).unwrap();
    let loaded = TrainedAttack::load(&dir, &dev).unwrap();
    assert_eq!(loaded.perturb(&x).unwrap(), attack.perturb(&x).unwrap());
    assert_eq!(loaded.report(), attack.report());
    assert_eq!(loaded.config(), attack.config());
    assert!(TrainedAttack::load(dir.join("missing"), &dev).is_err());
    // A smaller evaluation radius than the training one (the paper's epsilon sweep).
    let small = ThreatModel::linf(0.01).check().unwrap();
    let adv = loaded.perturb_with(&x, &small).unwrap();
    assert!(small.contains(&x, &adv).unwrap());
    assert!(!small.contains(&x, &attack.perturb(&x).unwrap()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_seed_gives_identical_reports() {
    let dev = device();
    let (x, labels) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let run = |seed: u64, source: GradientSource| {
        let config = base()
            .with_seed(seed)
            .with_gradient_source(source)
            .check()
            .unwrap();
        advclust_gan::AttackTrainer::new(&config, &dev)
            .with_labels(&labels)
            .fit_model(&victim, &x)
            .unwrap()
    };
    for source in [
        GradientSource::Backprop,
        GradientSource::Nes {
            samples: 2,
            sigma: 0.01,
        },
    ] {
        let a = run(3, source);
        let b = run(3, source);
        assert_eq!(a.report().without_timings(), b.report().without_timings());
        assert_eq!(a.perturb(&x).unwrap(), b.perturb(&x).unwrap());
        assert_eq!(a.report().curves.len(), 2);
        assert!(a.report().curves[0].scores.is_some());
        let c = run(4, source);
        assert_ne!(a.report().without_timings(), c.report().without_timings());
    }
}

#[test]
fn backprop_attack_breaks_the_toy_victim_within_the_linf_bound() {
    let dev = device();
    let (x, labels) = halves(32, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let config = base()
        .with_stopping(Stopping::Epochs { epochs: 6 })
        .check()
        .unwrap();
    let mut attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    let curves = &attack.report().curves;
    assert!(
        curves.last().unwrap().l_adv > curves[0].l_adv,
        "L_adv should grow: {:?}",
        curves.iter().map(|e| e.l_adv).collect::<Vec<_>>()
    );
    let adv = attack.perturb(&x).unwrap();
    assert!(attack.threat_model().contains(&x, &adv).unwrap());
    let mut oracle = ModelOracle::new(&victim, &dev);
    let eval = attack.evaluate(&mut oracle, &x, &labels).unwrap();
    assert_eq!(eval.clean.acc, 1.0);
    assert!(
        eval.changed_fraction >= 0.4,
        "changed {}",
        eval.changed_fraction
    );
    assert!(
        eval.adversarial.nmi < 0.5,
        "adversarial NMI {}",
        eval.adversarial.nmi
    );
    assert!(eval.norms.max_linf <= 0.1 + 1e-5);
    // Evaluation queries are counted apart from training's: 2 passes of 32 images in batches of 8.
    assert_eq!(eval.queries.batch_calls, 8);
    assert_eq!(attack.report().evaluation_queries.images, 64);
    assert_eq!(attack.report().training_queries.batch_calls, 2 * 4 * 6);
    assert!(attack.report().adversarial_scores.is_some());
}

#[test]
fn query_only_nes_attack_breaks_the_toy_victim() {
    let dev = device();
    let (x, labels) = halves(32, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let mut oracle = ModelOracle::new(&victim, &dev);
    let config = base()
        .with_gradient_source(GradientSource::Nes {
            samples: 20,
            sigma: 0.01,
        })
        .with_stopping(Stopping::Epochs { epochs: 8 })
        .check()
        .unwrap();
    let mut attack = train_query_only(&config, &mut oracle, &x, &dev).unwrap();
    let r = attack.report();
    assert_eq!(r.training_queries.images, 32 + 8 * 32 * 40);
    let eval = attack.evaluate(&mut oracle, &x, &labels).unwrap();
    assert!(
        eval.adversarial.nmi < 0.5,
        "adversarial NMI {}",
        eval.adversarial.nmi
    );
    assert!(
        attack
            .threat_model()
            .contains(&x, &attack.perturb(&x).unwrap())
            .unwrap()
    );
}

#[test]
fn l2_threat_model_bounds_outputs() {
    let dev = device();
    let (x, _) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let config = base()
        .with_norm(NormKind::L2)
        .with_epsilon(1.0)
        .with_hinge_weight(1.0)
        .with_stopping(Stopping::Epochs { epochs: 1 })
        .check()
        .unwrap();
    let attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    let adv = attack.perturb(&x).unwrap();
    let tm = attack.threat_model();
    assert_eq!(tm.norm(), NormKind::L2);
    assert!(tm.contains(&x, &adv).unwrap());
    let norms = ThreatModel::norms(&x, &adv).unwrap();
    assert!(norms.iter().all(|p| p.l2 <= 1.0 + 1e-4));
    assert!(attack.report().bound.contains("hinge"));
}

#[test]
fn query_only_training_counts_queries_and_caches_clean_memberships() {
    let dev = device();
    let (x, labels) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let mut oracle = ModelOracle::new(&victim, &dev);
    let config = base()
        .with_gradient_source(GradientSource::Nes {
            samples: 3,
            sigma: 0.01,
        })
        .with_max_images_per_call(Some(40))
        .check()
        .unwrap();
    let attack = advclust_gan::AttackTrainer::new(&config, &dev)
        .with_labels(&labels)
        .fit_oracle(&mut oracle, &x)
        .unwrap();
    let r = attack.report();
    // Clean memberships once per image (first epoch, one call per batch), then 8 * 2 * 3 = 48
    // perturbed images per step in calls of at most 40 images (2 calls).
    assert_eq!(r.steps, 4);
    assert_eq!(r.training_queries.images, 16 + 4 * 48);
    assert_eq!(r.training_queries.batch_calls, 2 + 4 * 2);
    assert_eq!(r.curves[0].queries.images, 16 + 2 * 48);
    assert!(
        r.curves
            .iter()
            .all(|e| e.l_adv.is_finite() && e.scores.is_some())
    );
}

#[test]
fn convergence_stops_early_and_reports_queries() {
    let dev = device();
    let (x, _) = halves(8, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let config = base()
        .with_stopping(Stopping::Convergence {
            max_epochs: 10,
            min_epochs: 2,
            tolerance: 1e9,
            patience: 1,
        })
        .check()
        .unwrap();
    let attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    let r = attack.report();
    let conv = r.converged.expect("converged");
    assert_eq!(conv.epoch, 2);
    assert_eq!(r.epochs, 2);
    assert_eq!(conv.steps, 2);
    assert_eq!(conv.queries.batch_calls, 4);
    assert_eq!(conv.queries, r.training_queries);
}

#[test]
fn learning_rate_schedule_follows_milestones() {
    let dev = device();
    let (x, _) = halves(8, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let optimizer = OptimizerConfig {
        milestones: vec![
            LrMilestone {
                epoch: 2,
                factor: 0.1,
            },
            LrMilestone {
                epoch: 3,
                factor: 0.01,
            },
        ],
        ..OptimizerConfig::default()
    };
    assert_eq!(OptimizerConfig::default().factor_at(49), 1.0);
    assert_eq!(OptimizerConfig::default().factor_at(50), 0.1);
    assert_eq!(OptimizerConfig::default().factor_at(120), 0.01);
    let config = base()
        .with_optimizer(optimizer)
        .with_stopping(Stopping::Epochs { epochs: 3 })
        .check()
        .unwrap();
    let attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    let lrs: Vec<f64> = attack
        .report()
        .curves
        .iter()
        .map(|e| e.lr_generator)
        .collect();
    assert_eq!(lrs.len(), 3);
    assert!(
        (lrs[0] - 1e-3).abs() < 1e-12
            && (lrs[1] - 1e-4).abs() < 1e-12
            && (lrs[2] - 1e-5).abs() < 1e-12
    );
}

#[test]
fn targeted_attack_moves_images_to_the_target() {
    let dev = device();
    let (x, _) = halves(32, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let config = base()
        .with_target(Some(1))
        .with_stopping(Stopping::Epochs { epochs: 4 })
        .check()
        .unwrap();
    let attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    let adv = attack.perturb(&x).unwrap();
    let mut oracle = ModelOracle::new(&victim, &dev);
    use advclust_core::ClusterOracle;
    let clusters = oracle.memberships(&adv).unwrap().labels();
    let in_target = clusters.iter().filter(|&&c| c == 1).count();
    assert!(in_target >= 30, "{in_target} of 32 in the target cluster");
    assert!(attack.report().last_epoch().unwrap().success_rate > 0.9);
    // Targeted backprop needs only the adversarial call per step.
    assert_eq!(attack.report().training_queries.batch_calls, 4 * 4);
}

#[test]
fn config_validation_and_serde() {
    assert!(base().check().is_ok());
    for bad in [
        base().with_epsilon(f32::NAN),
        base().with_lambda_adv(-1.0),
        base().with_batch_size(0),
        base().with_stopping(Stopping::Epochs { epochs: 0 }),
        base().with_gradient_source(GradientSource::Nes {
            samples: 0,
            sigma: 0.1,
        }),
        base().with_gradient_source(GradientSource::Spsa {
            samples: 1,
            delta: 0.0,
        }),
        base().with_max_images_per_call(Some(0)),
        base().with_pert_clip(Some(-0.2)),
        base().with_optimizer(OptimizerConfig {
            milestones: vec![
                LrMilestone {
                    epoch: 5,
                    factor: 0.1,
                },
                LrMilestone {
                    epoch: 5,
                    factor: 0.1,
                },
            ],
            ..OptimizerConfig::default()
        }),
    ] {
        assert!(matches!(
            bad.check(),
            Err(AttackError::InvalidConfig { .. })
        ));
    }
    let config = base().with_gradient_source(GradientSource::Spsa {
        samples: 4,
        delta: 0.02,
    });
    let json = serde_json::to_string(&config).unwrap();
    let back: AttackConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    let checked: CheckedAttackConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(checked, config.check().unwrap());
    // Missing fields take the reference defaults; an invalid checked config does not parse.
    let partial: AttackConfig = serde_json::from_str(r#"{"epsilon": 0.2}"#).unwrap();
    assert_eq!(partial.epsilon, 0.2);
    assert_eq!(partial.lambda_adv, 5.0);
    assert_eq!(partial.optimizer.epsilon, 1e-8);
    assert!(serde_json::from_str::<CheckedAttackConfig>(r#"{"batch_size": 0}"#).is_err());
}

#[test]
fn single_steps_refuse_a_target_the_victim_does_not_have() {
    let dev = device();
    let victim = HalfVictim::new(10.0, &dev);
    let frozen = advclust_gan::FrozenVictim::new(&victim, &dev);
    let (x, _) = halves(4, 1, SIDE);
    let config = base().with_target(Some(2)).check().unwrap();
    let mut gan =
        advclust_gan::AttackGan::new(&config, [1, SIDE, SIDE], x.value_box(), &dev).unwrap();
    let err = gan.step_backprop(&frozen, &x).unwrap_err();
    assert!(
        matches!(err, AttackError::TargetOutOfRange { target: 2, k: 2 }),
        "{err}"
    );
    let config = base().with_target(Some(1)).check().unwrap();
    let mut gan =
        advclust_gan::AttackGan::new(&config, [1, SIDE, SIDE], x.value_box(), &dev).unwrap();
    assert!(gan.step_backprop(&frozen, &x).is_ok());
}

#[test]
fn evaluation_of_given_adversarial_images_checks_their_layout() {
    let dev = device();
    let victim = HalfVictim::new(10.0, &dev);
    let (x, labels) = halves(8, 1, SIDE);
    let mut attack = train_backprop(&base().check().unwrap(), &victim, &x, &dev).unwrap();
    let mut oracle = ModelOracle::new(&victim, &dev);
    let adversarial = attack.perturb(&x).unwrap();
    let full = attack.evaluate(&mut oracle, &x, &labels).unwrap();
    let given = attack
        .evaluate_perturbed(&mut oracle, &x, &adversarial, &labels)
        .unwrap();
    assert_eq!(full, given);
    let short = x.select(&[0, 1]).unwrap();
    let err = attack
        .evaluate_perturbed(&mut oracle, &x, &short, &labels)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AttackError::Core(CoreError::SampleCountMismatch { .. })
        ),
        "{err}"
    );
}

/// A victim whose phi is wider than k (two "heads" side by side, as SCAN / NNM expose).
#[derive(Module, Debug)]
struct TwoHeadVictim {
    inner: HalfVictim,
}

impl advclust_core::DifferentiableClusterModel for TwoHeadVictim {
    fn num_clusters(&self) -> usize {
        2
    }
    fn input_shape(&self) -> [usize; 3] {
        [1, SIDE, SIDE]
    }
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        self.inner.memberships(images)
    }
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        let m = self.inner.memberships(images);
        Tensor::cat(vec![m.clone(), m.mul_scalar(2.0)], 1)
    }
}

#[test]
fn backprop_attack_compares_a_phi_wider_than_k_and_clusters_by_memberships() {
    let dev = device();
    let (x, labels) = halves(32, 1, SIDE);
    let victim = TwoHeadVictim {
        inner: HalfVictim::new(10.0, &dev),
    };
    let config = base()
        .with_stopping(Stopping::Epochs { epochs: 6 })
        .check()
        .unwrap();
    let mut attack = train_backprop(&config, &victim, &x, &dev).unwrap();
    let mut oracle = ModelOracle::new(&victim, &dev);
    let eval = attack.evaluate(&mut oracle, &x, &labels).unwrap();
    assert!(
        eval.adversarial.nmi < 0.5,
        "adversarial NMI {}",
        eval.adversarial.nmi
    );
}
