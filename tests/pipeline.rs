//! The attack pipeline end to end on the embedded victim and data (small sizes): what a run
//! writes, that the same seed gives the same report, and the typed errors of bad names.

use std::path::PathBuf;

use advclust::core::{ModelOracle, NormKind, ParamGuard};
use advclust::gan::{AttackConfig, AttackReport, GradientSource, Stopping, TrainedAttack};
use advclust::pipeline::{self, DatasetSpec, VictimSpec};
use advclust::{Error, device};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("advclust-pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(source: GradientSource, dir: &std::path::Path) -> (AttackReport, Vec<PathBuf>) {
    let device = device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let eval = DatasetSpec::MnistEmbedded.load(Some(256), 3).unwrap();
    let train = eval.shuffled(1).take(128);
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(64)
        .with_gradient_source(source)
        .with_max_images_per_call(Some(64))
        .with_stopping(Stopping::Epochs { epochs: 2 })
        .with_seed(7)
        .with_progress(false)
        .check()
        .unwrap();
    let outcome = pipeline::attack_victim(&config, &victim, &train, &eval, &device, None).unwrap();
    let written = pipeline::save_attack_run(dir, &outcome, &eval, serde_json::Map::new()).unwrap();
    let summary = pipeline::attack_summary(&outcome, &written, 1.0);
    assert!(summary.contains("relative NMI drop"), "{summary}");
    (outcome.attack.report().clone(), written)
}

#[test]
fn attack_run_writes_everything_and_repeats_exactly() {
    let nes = GradientSource::Nes {
        samples: 2,
        sigma: 0.01,
    };
    let (a, written) = run(nes, &scratch("a"));
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["report.json", "grid.png", "confusion.png", "queries.png"]
    );
    assert!(written.iter().all(|p| p.is_file()));
    let dir = written[0].parent().unwrap();
    let saved: AttackReport =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(saved, a);
    // Every epoch carries scores and the cumulative calls: 2 clean + 2 * 2 * 128 / 64 perturbed
    // calls in epoch 1 (clean memberships are queried once per image and cached).
    assert_eq!(a.curves.len(), 2);
    assert!(a.curves.iter().all(|e| e.scores.is_some()));
    assert_eq!(a.curves[0].queries.batch_calls, 2 + 8);
    assert_eq!(a.curves[1].queries.batch_calls, 2 + 16);
    assert_eq!(a.evaluated_images, 256);

    // The saved generator reproduces the run's perturbations with no queries.
    let device = device(None).unwrap();
    let loaded = TrainedAttack::load(dir.join("attack"), &device).unwrap();
    assert_eq!(loaded.report().without_timings(), a.without_timings());

    // Same seed, same backend: the same report, to the last bit.
    let (b, _) = run(nes, &scratch("b"));
    assert_eq!(a.without_timings(), b.without_timings());
}

#[test]
fn sweep_at_zero_epsilon_is_the_clean_score() {
    let device = device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let data = DatasetSpec::MnistEmbedded.load(Some(256), 5).unwrap();
    let images = data.to_image_batch().unwrap();
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(64)
        .with_stopping(Stopping::Epochs { epochs: 1 })
        .with_progress(false)
        .check()
        .unwrap();
    let attack = advclust::gan::train_backprop(&config, &victim, &images, &device).unwrap();
    let mut oracle = ModelOracle::new(&victim, &device);
    let clean = pipeline::evaluate_clean(&mut oracle, &images, data.labels()).unwrap();
    let points = pipeline::sweep_epsilon(
        &attack,
        &mut oracle,
        &images,
        data.labels(),
        NormKind::Linf,
        &[0.0, 0.1],
    )
    .unwrap();
    assert_eq!(points[0].mean_l2, 0.0);
    assert_eq!(points[0].nmi, clean.scores.nmi);
    assert!(points[1].mean_l2 > 0.0);
    assert!(
        pipeline::sweep_epsilon(
            &attack,
            &mut oracle,
            &images,
            data.labels(),
            NormKind::Linf,
            &[-0.1],
        )
        .is_err()
    );
}

#[test]
fn bad_names_are_typed_errors() {
    for bad in ["imagenet", "fashion-mnist", "cifar10"] {
        assert!(matches!(
            bad.parse::<DatasetSpec>(),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert_eq!(
        "mnist".parse::<DatasetSpec>().unwrap(),
        DatasetSpec::MnistEmbedded
    );
    let missing = "fashion-mnist:/nonexistent/advclust"
        .parse::<DatasetSpec>()
        .unwrap();
    assert!(matches!(missing.load(None, 0), Err(Error::Data(_))));
    let device = device(None).unwrap();
    let victim = VictimSpec::Saved(PathBuf::from("/nonexistent/advclust-model"));
    assert!(matches!(victim.load(&device), Err(Error::Model(_))));
}

/// A user's own oracle (here a budgeted, boxed one) goes through the same entry point as the
/// project's victims, and gives the same result as attacking the victim by name.
#[test]
fn any_oracle_can_be_attacked_through_the_pipeline() {
    use advclust::core::{Budgeted, ClusterOracle, QueryBudget};
    let device = device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let eval = DatasetSpec::MnistEmbedded.load(Some(128), 3).unwrap();
    let train = eval.shuffled(1).take(64);
    let config = AttackConfig::new()
        .with_batch_size(32)
        .with_gradient_source(GradientSource::Spsa {
            samples: 1,
            delta: 0.01,
        })
        .with_max_images_per_call(Some(64))
        .with_stopping(Stopping::Epochs { epochs: 1 })
        .with_progress(false)
        .check()
        .unwrap();
    let mut oracle: Box<dyn ClusterOracle> = Box::new(Budgeted::new(
        ModelOracle::new(&victim, &device),
        QueryBudget::UNLIMITED,
    ));
    let by_oracle =
        pipeline::attack_oracle(&config, &mut oracle, &train, &eval, &device, None).unwrap();
    let by_victim =
        pipeline::attack_victim(&config, &victim, &train, &eval, &device, None).unwrap();
    assert_eq!(by_oracle.adversarial, by_victim.adversarial);
    assert_eq!(
        by_oracle.attack.report().without_timings(),
        by_victim.attack.report().without_timings()
    );
    // 64 clean images once, then 2 x 32 perturbed copies per step, in calls of 64.
    assert_eq!(
        by_oracle.attack.report().training_queries.images,
        64 + 2 * 2 * 32
    );
}

/// The white-box per-image PGD bound stays in the threat model and flips most images of the
/// embedded CC victim.
#[test]
fn white_box_pgd_flips_most_images_inside_the_ball() {
    use advclust::core::ThreatModel;
    let device = device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let images = DatasetSpec::MnistEmbedded
        .load(Some(32), 5)
        .unwrap()
        .to_image_batch()
        .unwrap();
    let mut oracle = ModelOracle::new(&victim, &device);
    let clean = pipeline::query_clusters(&mut oracle, &images, 32).unwrap();
    let adv =
        advclust::baselines::white_box_pgd(&victim, &images, &clean, 0.1, 10, &device).unwrap();
    let threat = ThreatModel::linf(0.1).check().unwrap();
    assert!(threat.contains(&images, &adv).unwrap());
    let after = pipeline::query_clusters(&mut oracle, &adv, 32).unwrap();
    let flipped = clean.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(flipped >= 24, "{flipped} of 32 flipped");
}
