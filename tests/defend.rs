//! The defense experiments end to end on the embedded CC victim and MNIST (small sizes): SSD
//! against a trained attack with the injection protocol, the adaptive attack that knows SSD,
//! adversarial retraining, and their typed errors.

use advclust::core::ParamGuard;
use advclust::defend::{SsdExperiment, adaptive_ssd, fit_test_split, ssd_against_attack};
use advclust::defense::{FeatureExtractor, VictimFeatures};
use advclust::gan::{AttackConfig, Stopping, TrainedAttack, train_backprop};
use advclust::models::Victim;
use advclust::pipeline::{DatasetSpec, VictimSpec};
use advclust::retrain::{RetrainSettings, adversarial_retraining};
use advclust::{Error, device};

struct Setup {
    device: advclust::burn::tensor::Device,
    victim: Victim,
    fit: advclust::core::ImageBatch,
    test: advclust::core::ImageBatch,
    test_labels: Vec<usize>,
    attack: TrainedAttack,
}

fn setup(n: usize) -> Setup {
    let device = device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let data = DatasetSpec::MnistEmbedded.load(Some(n), 2).unwrap();
    let images = data.to_image_batch().unwrap();
    let (fit_idx, test_idx) = fit_test_split(images.len(), 2).unwrap();
    let fit = images.select(&fit_idx).unwrap();
    let test = images.select(&test_idx).unwrap();
    let test_labels = test_idx.iter().map(|&i| data.labels()[i]).collect();
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(64)
        .with_stopping(Stopping::Epochs { epochs: 2 })
        .with_seed(3)
        .with_progress(false)
        .check()
        .unwrap();
    let train = fit.select(&(0..128).collect::<Vec<_>>()).unwrap();
    let attack = train_backprop(&config, &victim, &train, &device).unwrap();
    Setup {
        device,
        victim,
        fit,
        test,
        test_labels,
        attack,
    }
}

#[test]
fn ssd_runs_the_protocol_on_a_trained_attack_and_repeats_exactly() {
    let s = setup(512);
    let features = VictimFeatures::new(&s.victim, &s.device);
    let experiment = SsdExperiment {
        clusters: vec![1, 4],
        trials: 10,
        seed: 0,
    };
    let run =
        || ssd_against_attack(&features, &s.fit, &s.test, &s.attack, "cc", &experiment).unwrap();
    let r = run();
    assert_eq!(r.results.len(), 2);
    assert!((r.mean_linf - 0.1).abs() < 1e-4, "{}", r.mean_linf);
    for k in &r.results {
        let b = &k.batch;
        assert_eq!(b.images, 256);
        // Batches of 256 over 256 images: each of the 10 trials injects all or nothing.
        let whole = b.injected.mean * 10.0 / 256.0;
        assert!((whole - whole.round()).abs() < 1e-9, "{}", b.injected.mean);
        assert!((0.0..=1.0).contains(&b.metrics.auroc));
        assert!((0.0..=1.0).contains(&k.sample.detection_rate.mean));
    }
    assert_eq!(run(), r);
}

#[test]
fn an_attack_for_another_image_shape_is_a_typed_error() {
    let s = setup(256);
    let features = VictimFeatures::new(&s.victim, &s.device);
    let small = advclust::core::ImageBatch::unit(vec![0.5; 4 * 16], [4, 1, 4, 4]).unwrap();
    let experiment = SsdExperiment {
        clusters: vec![1],
        trials: 1,
        seed: 0,
    };
    let e = ssd_against_attack(&features, &small, &small, &s.attack, "cc", &experiment);
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
    let e = advclust::defense::extract(&features, &small);
    assert!(e.is_err());
    assert_eq!(features.input_shape(), [1, 28, 28]);
}

#[test]
fn the_adaptive_attack_trains_with_the_penalty_and_reports_both_attacks() {
    let s = setup(512);
    let plain = VictimFeatures::new(&s.victim, &s.device);
    let frozen = Box::new(VictimFeatures::frozen(&s.victim, &s.device));
    let experiment = SsdExperiment {
        clusters: vec![1],
        trials: 5,
        seed: 0,
    };
    let (r, adaptive) = adaptive_ssd(
        &s.victim,
        &plain,
        frozen,
        (&s.fit, &s.test, &s.test_labels),
        &s.attack,
        1,
        1.0,
        &experiment,
        &s.device,
    )
    .unwrap();
    assert_eq!(r.train_images, 128);
    assert!(r.threshold > 0.0);
    assert_eq!(r.plain.clean, r.adaptive.clean);
    assert_eq!(adaptive.report().train_images, 128);
    // The penalty was active: adversarial images start above the detector's threshold.
    assert!(adaptive.report().curves.iter().any(|c| c.l_penalty > 0.0));
}

#[test]
fn retraining_fine_tunes_cc_and_scan_and_refuses_other_victims() {
    let s = setup(256);
    let settings = RetrainSettings {
        rounds: 2,
        finetune_epochs: 1,
        batch_size: 64,
        learning_rate: 1e-4,
        seed: 0,
        dataset: "mnist".into(),
        augment: advclust::models::AugmentConfig::digits(),
        neighbors: 5,
    };
    let train = s.fit.select(&(0..64).collect::<Vec<_>>()).unwrap();
    let (rounds, tuned) = adversarial_retraining(
        s.victim.clone(),
        s.attack.clone(),
        (&s.test, &s.test_labels),
        &train,
        &settings,
        &s.device,
        &mut |_| {},
    )
    .unwrap();
    // Two rounds: the second fine-tunes a model that came out of a training run.
    assert_eq!(rounds.len(), 3);
    assert!(rounds[0].previous_generator.is_none());
    assert!(rounds[1].previous_generator.is_some());
    assert!(matches!(tuned, Victim::Cc(_)));
    // SCAN fine-tunes on clean + perturbed with twin neighbours; SPICE is refused.
    let scan = VictimSpec::Embedded("pretrained-scan-mnist".into())
        .load(&s.device)
        .unwrap();
    let mixed =
        advclust::core::ImageBatch::concat(&[s.test.clone(), s.attack.perturb(&s.test).unwrap()])
            .unwrap();
    let tuned = advclust::retrain::finetune_victim(&scan, &mixed, &settings, &s.device).unwrap();
    assert!(matches!(tuned, Victim::Scan(_)));
    let spice = VictimSpec::Embedded("pretrained-spice-mnist".into())
        .load(&s.device)
        .unwrap();
    let e = advclust::retrain::finetune_victim(&spice, &mixed, &settings, &s.device);
    assert!(matches!(e, Err(Error::InvalidArgument(_))));
}
