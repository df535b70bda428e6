//! Checkpoints and resume: a run stopped after any step and resumed ends exactly like one that
//! was never stopped (generator, snapshots, report without wall times), for every gradient
//! source. The stop here is an oracle that dies after some calls (the in-process stand-in for
//! a kill; `.ci/run` kills the CLI with SIGKILL).

mod common;

use advclust_core::{
    ClusterOracle, CoreError, ImageBatch, Memberships, ModelOracle, ParamGuard, QueryBudget,
    Result as CoreResult,
};
use advclust_gan::{
    AttackConfig, AttackError, AttackTrainer, CheckpointPolicy, GradientSource, Stopping,
    TrainedAttack,
};
use common::{BrightnessPenalty, HalfVictim, SIDE, base, device, halves};

/// A query-only penalty: its counts are part of the state a resume restores.
const BRIGHTNESS: BrightnessPenalty = BrightnessPenalty {
    weight: 5.0,
    floor: 0.0,
};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("advclust-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An oracle that answers `calls_left` calls, then fails like a dead server.
struct DiesAfter {
    inner: ModelOracle<HalfVictim>,
    calls_left: usize,
}

impl ClusterOracle for DiesAfter {
    fn num_clusters(&self) -> usize {
        self.inner.num_clusters()
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        self.inner.input_shape()
    }
    fn memberships(&mut self, batch: &ImageBatch) -> CoreResult<Memberships> {
        if self.calls_left == 0 {
            return Err(CoreError::Transport("connection refused".into()));
        }
        self.calls_left -= 1;
        self.inner.memberships(batch)
    }
}

/// What must not depend on a resume: the report without wall times, and the final
/// generator's and the snapshots' perturbations of `x` (as bits, to compare compactly).
#[derive(Debug, PartialEq)]
struct Outcome {
    report: String,
    perturbed: u64,
    snapshots: Vec<u64>,
}

fn bits(b: &ImageBatch) -> u64 {
    b.data().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn outcome(a: &TrainedAttack, x: &ImageBatch) -> Outcome {
    Outcome {
        report: serde_json::to_string(&a.report().without_timings()).unwrap(),
        perturbed: bits(&a.perturb(x).unwrap()),
        snapshots: (0..a.snapshots().len())
            .map(|i| bits(&a.perturb_snapshot(i, x).unwrap().unwrap()))
            .collect(),
    }
}

fn configs() -> Vec<(&'static str, AttackConfig)> {
    let three_epochs = Stopping::Epochs { epochs: 3 };
    vec![
        ("backprop", base().with_stopping(three_epochs)),
        (
            "nes-momentum-snapshots",
            base()
                .with_stopping(three_epochs)
                .with_gradient_source(GradientSource::Nes {
                    samples: 2,
                    sigma: 0.01,
                })
                .with_estimate_momentum(0.5)
                .with_max_images_per_call(Some(16))
                .with_snapshot_calls(vec![4, 9, 1000]),
        ),
        (
            "nes-query-penalty",
            base()
                .with_stopping(three_epochs)
                .with_gradient_source(GradientSource::Nes {
                    samples: 1,
                    sigma: 0.01,
                }),
        ),
        (
            "spsa-budget",
            base()
                .with_stopping(three_epochs)
                .with_gradient_source(GradientSource::Spsa {
                    samples: 1,
                    delta: 0.01,
                })
                .with_budget(QueryBudget::batch_calls(9)),
        ),
    ]
}

#[test]
fn a_run_stopped_after_any_step_resumes_to_the_uninterrupted_result() {
    let dev = device();
    let (x, labels) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    for (name, config) in configs() {
        let config = config.check().unwrap();
        let query_only = config.gradient_source.is_query_only();
        let train = |policy: CheckpointPolicy, calls_left: usize| {
            let mut trainer = AttackTrainer::new(&config, &dev)
                .with_labels(&labels)
                .with_checkpoints(policy);
            if name == "nes-query-penalty" {
                trainer = trainer.with_query_penalty(&BRIGHTNESS);
            }
            if query_only {
                let mut oracle = DiesAfter {
                    inner: ModelOracle::new(&victim, &dev),
                    calls_left,
                };
                trainer.fit_oracle(&mut oracle, &x)
            } else {
                trainer.fit_model(&victim, &x)
            }
        };
        let reference_dir = temp_dir(&format!("{name}-reference"));
        let reference = train(
            CheckpointPolicy::new(&reference_dir).every_steps(1),
            usize::MAX,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = outcome(&reference, &x);
        assert!(reference.report().steps >= 3, "{name}");
        if !query_only {
            // Backprop has no oracle to kill: resume from its finished checkpoint.
            let again = train(
                CheckpointPolicy::new(&reference_dir).resume(true),
                usize::MAX,
            )
            .unwrap();
            assert_eq!(outcome(&again, &x), expected, "{name}: finished checkpoint");
            continue;
        }
        let total_calls = reference.report().training_queries.batch_calls as usize;
        for calls in 1..total_calls {
            let dir = temp_dir(&format!("{name}-{calls}"));
            let policy = CheckpointPolicy::new(&dir).every_steps(1);
            let err = train(policy.clone(), calls).unwrap_err();
            assert!(
                matches!(err, AttackError::Interrupted { .. }),
                "{name}: {err}"
            );
            let resumed = match train(policy.clone().resume(true), usize::MAX) {
                Ok(a) => a,
                // Killed before the first checkpoint: nothing to resume, start afresh.
                Err(AttackError::NothingToResume { .. }) => train(policy, usize::MAX).unwrap(),
                Err(e) => panic!("{name}, stopped after {calls} calls: {e}"),
            };
            assert_eq!(
                outcome(&resumed, &x),
                expected,
                "{name}, stopped after {calls} calls"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
        let _ = std::fs::remove_dir_all(&reference_dir);
    }
}

#[test]
fn resuming_needs_a_checkpoint_of_the_same_run() {
    let dev = device();
    let (x, labels) = halves(16, 1, SIDE);
    let victim = HalfVictim::new(10.0, &dev);
    let dir = temp_dir("mismatch");
    let config = base().check().unwrap();
    let err = AttackTrainer::new(&config, &dev)
        .with_checkpoints(CheckpointPolicy::new(&dir).resume(true))
        .fit_model(&victim, &x)
        .unwrap_err();
    assert!(matches!(err, AttackError::NothingToResume { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
    AttackTrainer::new(&config, &dev)
        .with_labels(&labels)
        .with_checkpoints(CheckpointPolicy::new(&dir))
        .fit_model(&victim, &x)
        .unwrap();
    // Another seed, other labels, other images: refused, not mixed.
    let other_seed = base().with_seed(7).check().unwrap();
    let mut flipped = labels.clone();
    flipped.reverse();
    for (config, labels, x) in [(&other_seed, &labels, &x), (&config, &flipped, &x)] {
        let err = AttackTrainer::new(config, &dev)
            .with_labels(labels)
            .with_checkpoints(CheckpointPolicy::new(&dir).resume(true))
            .fit_model(&victim, x)
            .unwrap_err();
        assert!(matches!(err, AttackError::Incompatible(_)), "{err}");
    }
    let (fewer, fewer_labels) = halves(8, 1, SIDE);
    let err = AttackTrainer::new(&config, &dev)
        .with_labels(&fewer_labels)
        .with_checkpoints(CheckpointPolicy::new(&dir).resume(true))
        .fit_model(&victim, &fewer)
        .unwrap_err();
    assert!(matches!(err, AttackError::Incompatible(_)), "{err}");
    // A damaged checkpoint is a typed error too.
    std::fs::write(dir.join("state.json"), b"{\"format\": 1").unwrap();
    let err = AttackTrainer::new(&config, &dev)
        .with_labels(&labels)
        .with_checkpoints(CheckpointPolicy::new(&dir).resume(true))
        .fit_model(&victim, &x)
        .unwrap_err();
    assert!(matches!(err, AttackError::Incompatible(_)), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
