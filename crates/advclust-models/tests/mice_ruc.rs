//! MiCE and RUC: training on the shared runner, a deterministic inference (MiCE's frozen
//! queue), save / load through the victim type, exact resumption, and typed errors.

mod common;

use advclust_core::DifferentiableClusterModel;
use advclust_models::runner::{EpochLog, RunConfig};
use advclust_models::{
    ClusterModelExt, MiceModel, MiceTrainConfig, ModelError, RucModel, RucTrainConfig,
    ScanTrainConfig, Victim, VictimKind, VictimModel, train_mice, train_ruc, train_scan,
};
use burn::tensor::activation::softmax;
use common::{device, quiet, synthetic, temp_dir, tiny_pretext};

fn tiny_mice_config(seed: u64) -> MiceTrainConfig {
    let mut config = MiceTrainConfig::new(2, 1);
    config.embedding_dim = 4;
    config.queue_size = 40;
    config.run = quiet(RunConfig::new(3, 16, 1e-3));
    config.run.seed = seed;
    config
}

fn losses(e: &[EpochLog]) -> Vec<f64> {
    e.iter().map(|e| e.loss).collect()
}

#[test]
fn mice_trains_answers_deterministically_and_loads_as_mice() {
    let dev = device();
    let (images, labels) = synthetic(48, 41);
    let pretext = tiny_pretext(&images, &labels, 42);
    let (mice, report) = train_mice(
        &tiny_mice_config(43),
        &pretext,
        &images,
        Some(&labels),
        &dev,
    )
    .unwrap();
    assert_eq!(report.run.epochs.len(), 3);
    assert!(report.final_scores.is_some() && report.prior_scores.is_some());
    // Inference does not enqueue: the same images give the same memberships every time.
    let first = mice.memberships_host(&images, 48, &dev).unwrap();
    let again = mice.memberships_host(&images, 48, &dev).unwrap();
    assert_eq!(first, again);
    let chunked = mice.memberships_host(&images, 7, &dev).unwrap();
    assert!(
        first
            .iter()
            .zip(&chunked)
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );
    for row in first.chunks(2) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // phi = the log gating prior: exp of each row sums to 1.
    let x = images.select(&[0, 1, 2]).unwrap().to_tensor(&dev);
    let log_pi = mice.attack_output(x);
    assert_eq!(log_pi.dims(), [3, 2]);
    let rows = advclust_core::tensor_to_vec(log_pi.exp().sum_dim(1).into_data()).unwrap();
    assert!(rows.iter().all(|s| (s - 1.0).abs() < 1e-5));
    let dir = temp_dir("mice");
    mice.save(&dir).unwrap();
    let victim = Victim::load(&dir, &dev).unwrap();
    assert_eq!(victim.kind(), VictimKind::Mice);
    assert_eq!(victim.memberships_host(&images, 48, &dev).unwrap(), first);
    assert!(matches!(
        RucModel::load(&dir, &dev),
        Err(ModelError::WrongKind { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_mice_run_restores_teacher_queue_and_prototypes_exactly() {
    let dev = device();
    let (images, labels) = synthetic(32, 51);
    let pretext = tiny_pretext(&images, &labels, 52);
    let config = tiny_mice_config(53);
    let (full_model, full) = train_mice(&config, &pretext, &images, None, &dev).unwrap();
    let dir = temp_dir("mice-resume");
    let mut first = config.clone();
    first.run.epochs = 2;
    first.run.checkpoint_dir = Some(dir.clone());
    first.run.checkpoint_every = 1;
    train_mice(&first, &pretext, &images, None, &dev).unwrap();
    let mut second = first.clone();
    second.run.epochs = 3;
    second.run.resume = true;
    let (model, resumed) = train_mice(&second, &pretext, &images, None, &dev).unwrap();
    assert_eq!(resumed.run.resumed_after_epoch, Some(2));
    assert_eq!(losses(&full.run.epochs), losses(&resumed.run.epochs));
    assert_eq!(
        model.memberships_host(&images, 32, &dev).unwrap(),
        full_model.memberships_host(&images, 32, &dev).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mice_refuses_bad_settings_with_typed_errors() {
    let dev = device();
    let (images, labels) = synthetic(32, 61);
    let pretext = tiny_pretext(&images, &labels, 62);
    let bad = [
        {
            let mut c = tiny_mice_config(1);
            c.queue_size = 16; // not more than a batch
            c
        },
        {
            let mut c = tiny_mice_config(1);
            c.embedding_dim = 1; // smaller than K = 2
            c
        },
        {
            let mut c = tiny_mice_config(1);
            c.momentum = 1.0;
            c
        },
        {
            let mut c = tiny_mice_config(1);
            c.tau = 0.0;
            c
        },
    ];
    for config in bad {
        let err = train_mice(&config, &pretext, &images, None, &dev).unwrap_err();
        assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err}");
    }
    // A description asking for an absurd queue is refused before anything is allocated.
    let mut config = advclust_models::MiceConfig::new(
        [1, 12, 12],
        2,
        advclust_models::ResNetConfig::new(1, &[4], 1),
    );
    config.queue_size = usize::MAX / 2;
    assert!(MiceModel::new(&config, 0, &dev).is_err());
}

fn tiny_base(
    images: &advclust_core::ImageBatch,
    pretext: &advclust_models::Pretext,
) -> advclust_models::ScanModel {
    let mut config = ScanTrainConfig::new(2, 1);
    config.num_heads = 1;
    config.selflabel = None;
    config.run = quiet(RunConfig::new(3, 16, 1e-3));
    train_scan(&config, pretext, images, None, &device())
        .unwrap()
        .0
}

fn tiny_ruc_config(seed: u64) -> RucTrainConfig {
    let mut config = RucTrainConfig::new(advclust_models::AugmentConfig::grayscale());
    config.confidence_threshold = 0.5;
    config.growth_threshold = 0.6;
    config.vote_neighbors = 4;
    config.run = quiet(RunConfig::new(3, 16, 1e-3));
    config.run.seed = seed;
    config
}

#[test]
fn ruc_trains_on_a_scan_base_and_predicts_with_both_networks() {
    let dev = device();
    let (images, labels) = synthetic(48, 71);
    let pretext = tiny_pretext(&images, &labels, 72);
    let base = tiny_base(&images, &pretext);
    let (ruc, report) = train_ruc(
        &tiny_ruc_config(73),
        &base,
        &pretext,
        &images,
        Some(&labels),
        &dev,
    )
    .unwrap();
    assert!(report.clean > 0 && report.clean <= report.confident.min(report.vote_agreed));
    assert!(report.base_scores.is_some() && report.final_scores.is_some());
    // Memberships are the softmax of the two networks' summed logits.
    let x = images.select(&[0, 1, 2]).unwrap().to_tensor(&dev);
    let [a, b] = ruc.nets();
    let want = softmax(a.logits(x.clone()) + b.logits(x.clone()), 1);
    let got = ruc.memberships(x);
    let diff = advclust_core::tensor_to_vec((got - want).abs().max().into_data()).unwrap();
    assert!(diff[0] < 1e-6);
    let dir = temp_dir("ruc");
    ruc.save(&dir).unwrap();
    let victim = Victim::load(&dir, &dev).unwrap();
    assert_eq!(victim.kind(), VictimKind::Ruc);
    assert_eq!(
        victim.memberships_host(&images, 48, &dev).unwrap(),
        ruc.memberships_host(&images, 48, &dev).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_ruc_run_rebuilds_its_clean_sets_and_equals_an_uninterrupted_one() {
    let dev = device();
    let (images, labels) = synthetic(32, 81);
    let pretext = tiny_pretext(&images, &labels, 82);
    let base = tiny_base(&images, &pretext);
    let config = tiny_ruc_config(83);
    let (full_model, full) = train_ruc(&config, &base, &pretext, &images, None, &dev).unwrap();
    let dir = temp_dir("ruc-resume");
    let mut first = config.clone();
    first.run.epochs = 2;
    first.run.checkpoint_dir = Some(dir.clone());
    first.run.checkpoint_every = 1;
    train_ruc(&first, &base, &pretext, &images, None, &dev).unwrap();
    let mut second = first.clone();
    second.run.epochs = 3;
    second.run.resume = true;
    let (model, resumed) = train_ruc(&second, &base, &pretext, &images, None, &dev).unwrap();
    assert_eq!(resumed.run.resumed_after_epoch, Some(2));
    assert_eq!(losses(&full.run.epochs), losses(&resumed.run.epochs));
    assert_eq!(
        model.memberships_host(&images, 32, &dev).unwrap(),
        full_model.memberships_host(&images, 32, &dev).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
