//! The attack pipeline on the real shared datasets (see `shared/data/README.md`). Ignored by
//! default; `.ci/run` runs it: `cargo test -p advclust --test real_data -- --ignored`. The data
//! root is `$ADVCLUST_DATA`, or `shared/data` next to the workspace.

use std::path::PathBuf;

use advclust::core::{ModelOracle, ParamGuard};
use advclust::gan::{AttackConfig, Stopping};
use advclust::pipeline::{self, DatasetSpec, VictimSpec};

fn root() -> PathBuf {
    std::env::var_os("ADVCLUST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")))
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn every_embedded_victim_scores_its_record_on_the_shared_mnist_files() {
    let device = advclust::device(None).unwrap();
    let data = format!("mnist:{}", root().join("mnist").display())
        .parse::<DatasetSpec>()
        .unwrap()
        .load(None, 0)
        .unwrap();
    assert_eq!(data.len(), 10_000);
    let images = data.to_image_batch().unwrap();
    for embedded in advclust::models::EMBEDDED {
        let victim = embedded
            .name
            .parse::<VictimSpec>()
            .unwrap()
            .load(&device)
            .unwrap();
        let recorded = victim.training().unwrap().scores.unwrap();
        let mut oracle = ModelOracle::new(&victim, &device);
        let clean = pipeline::evaluate_clean(&mut oracle, &images, data.labels()).unwrap();
        assert!(
            (clean.scores.nmi - recorded.nmi).abs() < 1e-6,
            "{}: {clean:?} vs {recorded:?}",
            embedded.name
        );
        assert!((clean.scores.acc - recorded.acc).abs() < 1e-6);
    }
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn attack_runs_on_shared_fashion_mnist_and_refuses_cifar10_for_a_grayscale_victim() {
    let device = advclust::device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(128)
        .with_stopping(Stopping::Epochs { epochs: 3 })
        .with_progress(false)
        .check()
        .unwrap();
    // Fashion-MNIST images (1x28x28) fit the MNIST victim: the attack moves their clusters.
    let fashion = format!("fashion-mnist:{}", root().join("fashion-mnist").display())
        .parse::<DatasetSpec>()
        .unwrap()
        .load(Some(1024), 0)
        .unwrap();
    let train = fashion.take(256);
    let outcome =
        pipeline::attack_victim(&config, &victim, &train, &fashion, &device, None).unwrap();
    let e = &outcome.evaluation;
    assert!(e.changed_fraction > 0.2, "{e:?}");
    assert!(e.adversarial.nmi < e.clean.nmi, "{e:?}");
    assert!(e.norms.max_linf <= 0.1 + 1e-6);
    // CIFAR-10 images (3x32x32) do not: a typed error before any training.
    let cifar = format!("cifar10:{}", root().join("cifar10-jpg/test").display())
        .parse::<DatasetSpec>()
        .unwrap()
        .load(Some(64), 0)
        .unwrap();
    let err = pipeline::attack_victim(&config, &victim, &cifar, &cifar, &device, None).unwrap_err();
    assert!(matches!(err, advclust::Error::Attack(_)), "{err}");
}
