//! The defense experiments end to end on the embedded CC victim and MNIST (small sizes): SSD
//! against a trained attack with the injection protocol, the adaptive attack that knows SSD,
//! adversarial retraining, and their typed errors.

use advclust::core::ParamGuard;
use advclust::defend::{
    DetectorAccess, SsdExperiment, adaptive_ssd, fit_test_split, ssd_against_attack,
};
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
        DetectorAccess::WhiteBox(frozen),
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
fn the_query_only_adaptive_attack_queries_the_detector_for_every_copy() {
    let s = setup(512);
    let plain = VictimFeatures::new(&s.victim, &s.device);
    let experiment = SsdExperiment {
        clusters: vec![1],
        trials: 5,
        seed: 0,
    };
    let nes = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(64)
        .with_gradient_source(advclust::gan::GradientSource::Nes {
            samples: 1,
            sigma: 0.01,
        })
        .with_max_images_per_call(Some(64))
        .with_stopping(Stopping::Epochs { epochs: 1 })
        .with_seed(3)
        .with_progress(false)
        .check()
        .unwrap();
    let train = s.fit.select(&(0..128).collect::<Vec<_>>()).unwrap();
    let mut oracle = advclust::core::ModelOracle::new(&s.victim, &s.device);
    let attack = advclust::gan::train_query_only(&nes, &mut oracle, &train, &s.device).unwrap();
    let run = |attack: &TrainedAttack| {
        adaptive_ssd(
            &s.victim,
            &plain,
            DetectorAccess::QueryOnly,
            (&s.fit, &s.test, &s.test_labels),
            attack,
            1,
            100.0,
            &experiment,
            &s.device,
        )
    };
    let (r, adaptive) = run(&attack).unwrap();
    assert_eq!(r.access, "query-only");
    let detector = r.detector_queries.expect("the detector was queried");
    // Two steps of 64 images, one direction: 2 x 128 copies to each, plus 128 clean images
    // to the victim.
    assert_eq!(detector.images, 256);
    assert_eq!(r.victim_queries.images, 256 + 128);
    assert!(adaptive.report().curves.iter().any(|c| c.l_penalty > 0.0));
    // A backprop attack has no queries to estimate the detector's gradient from.
    let e = run(&s.attack);
    assert!(e.is_err(), "{e:?}");
}

#[test]
fn retraining_fine_tunes_every_kind_of_victim() {
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
    // SCAN and NNM fine-tune on clean + perturbed with twin neighbours, SPICE on its reliable
    // images and their twins, a mixture is refitted: each comes back changed, of its kind.
    let mixed =
        advclust::core::ImageBatch::concat(&[s.test.clone(), s.attack.perturb(&s.test).unwrap()])
            .unwrap();
    let memberships = |v: &Victim| {
        let mut oracle = advclust::core::ModelOracle::new(v, &s.device);
        advclust::core::ClusterOracle::memberships(&mut oracle, &s.test)
            .unwrap()
            .data()
            .to_vec()
    };
    let gmm_config = advclust::models::MixtureConfig::new(
        advclust::models::MixtureKind::Gmm,
        [1, 28, 28],
        10,
        8,
    );
    let (gmm, _) = advclust::models::fit_mixture(&s.test, &gmm_config, 0, &s.device).unwrap();
    let mut victims: Vec<Victim> = ["scan", "nnm", "spice"]
        .iter()
        .map(|kind| {
            VictimSpec::Embedded(format!("pretrained-{kind}-mnist"))
                .load(&s.device)
                .unwrap()
        })
        .collect();
    victims.push(Victim::Mixture(gmm));
    for victim in &victims {
        let tuned =
            advclust::retrain::finetune_victim(victim, &mixed, &settings, &s.device).unwrap();
        assert_eq!(tuned.kind(), victim.kind());
        assert_ne!(
            memberships(&tuned),
            memberships(victim),
            "{}",
            victim.kind()
        );
    }
    // A mixed set is n clean then n perturbed images.
    let odd = mixed
        .select(&(0..mixed.len() - 1).collect::<Vec<_>>())
        .unwrap();
    let e = advclust::retrain::finetune_victim(&victims[0], &odd, &settings, &s.device);
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
}
