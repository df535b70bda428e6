//! Fast tests of the CC model, loss, augmentations, training loop and checkpoints.

use advclust_core::SeededRng;
use advclust_core::{
    ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle, ParamGuard,
};
use advclust_models::cc::loss::{cc_loss, entropy_penalty, nt_xent};
use advclust_models::{
    AugmentConfig, CcConfig, CcModel, CcTrainConfig, ClusterModelExt, ModelError, VictimModel,
    augment_batch, train_cc,
};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};

fn device() -> Device {
    Device::flex()
}

fn tiny_config(shape: [usize; 3], k: usize) -> CcConfig {
    CcConfig::new(shape, k, &[4, 8])
}

fn random_images(n: usize, shape: [usize; 3], seed: u64) -> Vec<f32> {
    let mut rng = SeededRng::seed_from_u64(seed);
    (0..n * shape.iter().product::<usize>())
        .map(|_| rng.random_range(0.0..1.0))
        .collect()
}

/// A synthetic 2-class set: bright square top-left vs bottom-right, plus noise.
fn synthetic(n: usize, seed: u64) -> (ImageBatch, Vec<usize>) {
    let mut rng = SeededRng::seed_from_u64(seed);
    let (h, w) = (12, 12);
    let mut data = Vec::with_capacity(n * h * w);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % 2;
        for y in 0..h {
            for x in 0..w {
                let inside = if label == 0 {
                    y < 6 && x < 6
                } else {
                    y >= 6 && x >= 6
                };
                let base = if inside { 0.8 } else { 0.1 };
                data.push((base + rng.random_range(-0.1..0.1f32)).clamp(0.0, 1.0));
            }
        }
        labels.push(label);
    }
    (ImageBatch::unit(data, [n, 1, h, w]).unwrap(), labels)
}

fn tensor4(data: Vec<f32>, dims: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, dims), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn tiny_train_config(seed: u64) -> CcTrainConfig {
    let mut cfg = CcTrainConfig::new(tiny_config([1, 12, 12], 2));
    cfg.run.epochs = 2;
    cfg.run.batch_size = 16;
    cfg.run.learning_rate = 1e-3;
    cfg.run.seed = seed;
    cfg.run.progress = false;
    cfg.run.log_epochs = false;
    cfg
}

#[test]
fn forward_shapes_for_gray_and_color() {
    let dev = device();
    for (shape, k) in [([1, 28, 28], 10), ([3, 32, 32], 7)] {
        let model = CcModel::new(&tiny_config(shape, k), 1, &dev).unwrap();
        let x = tensor4(
            random_images(3, shape, 2),
            [3, shape[0], shape[1], shape[2]],
            &dev,
        );
        let out = model.forward(x.clone());
        assert_eq!(out.instance.dims(), [3, 128]);
        assert_eq!(out.clusters.dims(), [3, k]);
        assert_eq!(model.memberships(x).dims(), [3, k]);
        assert_eq!(model.input_shape(), shape);
        assert_eq!(model.num_clusters(), k);
        // Instance embeddings are unit vectors.
        for row in to_vec(out.instance).chunks(128) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
    }
}

#[test]
fn memberships_rows_sum_to_one() {
    let dev = device();
    let model = CcModel::new(&tiny_config([3, 32, 32], 10), 3, &dev).unwrap();
    let m = to_vec(model.memberships(tensor4(
        random_images(5, [3, 32, 32], 4),
        [5, 3, 32, 32],
        &dev,
    )));
    for row in m.chunks(10) {
        assert!(row.iter().all(|&p| p >= 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // The oracle view validates the same thing.
    let mut oracle = ModelOracle::new(&model, &dev);
    let batch = ImageBatch::unit(random_images(5, [3, 32, 32], 4), [5, 3, 32, 32]).unwrap();
    let m = oracle.memberships(&batch).unwrap();
    assert_eq!((m.n(), m.k()), (5, 10));
}

#[test]
fn gradient_reaches_the_input() {
    let dev = device().autodiff();
    let model = CcModel::new(&tiny_config([1, 28, 28], 10), 5, &dev)
        .unwrap()
        .freeze();
    let x = tensor4(random_images(2, [1, 28, 28], 6), [2, 1, 28, 28], &dev).require_grad();
    let m = model.memberships(x.clone());
    let target = Tensor::<2>::from_data(TensorData::new(vec![0.1f32; 20], [2, 10]), &dev);
    let loss = (m - target).square().sum();
    let grads = loss.backward();
    let g = to_vec(x.grad(&grads).expect("the input has a gradient"));
    assert_eq!(g.len(), 2 * 28 * 28);
    assert!(g.iter().all(|v| v.is_finite()));
    assert!(g.iter().any(|v| v.abs() > 0.0));
}

#[test]
fn loss_parts_behave() {
    let dev = device();
    // Perfectly aligned, well separated views give a lower NT-Xent than random ones.
    let eye = Tensor::<2>::eye(4, &dev);
    let aligned = to_vec(nt_xent(eye.clone(), eye.clone(), 0.5))[0];
    let shuffled = Tensor::<2>::from_data(
        TensorData::new(
            vec![
                0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 0., 1., 0., 0., 1., 0.,
            ],
            [4, 4],
        ),
        &dev,
    );
    let wrong = to_vec(nt_xent(eye.clone(), shuffled, 0.5))[0];
    assert!(aligned < wrong, "{aligned} vs {wrong}");
    // Uniform marginal: no entropy penalty; collapsed: log K.
    let uniform = to_vec(entropy_penalty(eye.clone()))[0];
    assert!(uniform.abs() < 1e-5);
    let collapsed = Tensor::<2>::from_data(
        TensorData::new(vec![1f32, 0., 0., 0., 1., 0., 0., 0.], [2, 4]),
        &dev,
    );
    let penalty = to_vec(entropy_penalty(collapsed))[0];
    assert!((penalty - 4f32.ln()).abs() < 1e-4);
}

#[test]
fn cc_loss_is_finite_and_decreases() {
    let dev = device().autodiff();
    let (images, _) = synthetic(16, 7);
    let mut rng = SeededRng::seed_from_u64(8);
    let aug = AugmentConfig::grayscale();
    let mut views = augment_batch(images.data(), images.dims(), &aug, &mut rng).unwrap();
    views.extend(augment_batch(images.data(), images.dims(), &aug, &mut rng).unwrap());
    let mut model = CcModel::new(&tiny_config([1, 12, 12], 2), 9, &dev).unwrap();
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let out = model.forward(tensor4(views.clone(), [32, 1, 12, 12], &dev));
        let loss = cc_loss(
            out.instance.clone().narrow(0, 0, 16),
            out.instance.narrow(0, 16, 16),
            out.clusters.clone().narrow(0, 0, 16),
            out.clusters.narrow(0, 16, 16),
            0.5,
            1.0,
            1.0,
        );
        losses.push(to_vec(loss.total.clone().detach())[0]);
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[7] < losses[0], "loss did not decrease: {losses:?}");
}

#[test]
fn same_seed_gives_identical_training() {
    let (images, labels) = synthetic(48, 10);
    let dev = device();
    let (m1, r1) = train_cc(&tiny_train_config(11), &images, Some(&labels), &dev).unwrap();
    let (m2, r2) = train_cc(&tiny_train_config(11), &images, Some(&labels), &dev).unwrap();
    let losses =
        |r: &advclust_models::CcTrainReport| r.epochs.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&r1), losses(&r2));
    assert_eq!(r1.steps, 2 * (48 / 16));
    assert!(r1.final_scores.is_some());
    let a = m1.memberships_host(&images, 64, &dev).unwrap();
    let b = m2.memberships_host(&images, 64, &dev).unwrap();
    assert_eq!(a, b);
    let (_, r3) = train_cc(&tiny_train_config(12), &images, Some(&labels), &dev).unwrap();
    assert_ne!(losses(&r1), losses(&r3));
}

#[test]
fn resume_without_a_checkpoint_is_an_error() {
    let (images, labels) = synthetic(32, 13);
    let dir = std::env::temp_dir().join(format!("advclust-cc-noresume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = tiny_train_config(14);
    cfg.run.checkpoint_dir = Some(dir.clone());
    cfg.run.resume = true;
    let err = train_cc(&cfg, &images, Some(&labels), &device()).unwrap_err();
    assert!(
        matches!(err, advclust_models::ModelError::MissingCheckpoint { .. }),
        "{err}"
    );
    assert!(!dir.join(advclust_models::CHECKPOINT_SUBDIR).exists());
}

#[test]
fn resume_continues_like_an_uninterrupted_run() {
    let (images, labels) = synthetic(32, 13);
    let dev = device();
    let dir = std::env::temp_dir().join(format!("advclust-cc-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = tiny_train_config(14);
    cfg.run.epochs = 3;
    let (_, full) = train_cc(&cfg, &images, Some(&labels), &dev).unwrap();

    let mut first = cfg.clone();
    first.run.epochs = 2;
    first.run.checkpoint_dir = Some(dir.clone());
    first.run.checkpoint_every = 1;
    train_cc(&first, &images, Some(&labels), &dev).unwrap();
    let mut second = first.clone();
    second.run.epochs = 3;
    second.run.resume = true;
    let (_, resumed) = train_cc(&second, &images, Some(&labels), &dev).unwrap();
    assert_eq!(resumed.resumed_after_epoch, Some(2));
    assert_eq!(resumed.steps, 32 / 16);
    let losses =
        |r: &advclust_models::CcTrainReport| r.epochs.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&full), losses(&resumed));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_load_roundtrip_gives_identical_memberships() {
    let dev = device();
    let (images, labels) = synthetic(32, 15);
    let (model, _) = train_cc(&tiny_train_config(16), &images, Some(&labels), &dev).unwrap();
    let dir = std::env::temp_dir().join(format!("advclust-cc-save-{}", std::process::id()));
    model.save(&dir).unwrap();
    let loaded = CcModel::load(&dir, &dev).unwrap();
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.training_summary(), model.training_summary());
    let a = model.memberships_host(&images, 64, &dev).unwrap();
    let b = loaded.memberships_host(&images, 64, &dev).unwrap();
    assert_eq!(a, b);
    // Also from bytes, and onto an autodiff device.
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let weights = std::fs::read(dir.join("model.bpk")).unwrap();
    let from_bytes = CcModel::from_bytes(&json, &weights, &dev.clone().autodiff()).unwrap();
    assert_eq!(a, from_bytes.memberships_host(&images, 64, &dev).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn typed_errors_for_bad_input_and_bad_checkpoints() {
    let dev = device();
    let model = CcModel::new(&tiny_config([1, 28, 28], 10), 17, &dev).unwrap();
    // Wrong input shape.
    let x = tensor4(random_images(2, [3, 28, 28], 1), [2, 3, 28, 28], &dev);
    assert!(matches!(
        model.try_memberships(x),
        Err(ModelError::InputShape {
            expected: [1, 28, 28],
            actual: [3, 28, 28]
        })
    ));
    let batch = ImageBatch::unit(random_images(2, [1, 32, 32], 1), [2, 1, 32, 32]).unwrap();
    assert!(matches!(
        model.predict(&batch, &dev),
        Err(ModelError::InputShape { .. })
    ));

    let dir = std::env::temp_dir().join(format!("advclust-cc-errors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Missing files.
    assert!(matches!(
        CcModel::load(&dir, &dev),
        Err(ModelError::MissingCheckpoint { .. })
    ));
    model.save(&dir).unwrap();
    // Wrong expected k.
    assert!(matches!(
        CcModel::load_expecting(&dir, 5, &dev),
        Err(ModelError::ClusterCountMismatch {
            expected: 5,
            actual: 10
        })
    ));
    assert!(CcModel::load_expecting(&dir, 10, &dev).is_ok());
    // Description edited to another k: the weights no longer fit.
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let weights = std::fs::read(dir.join("model.bpk")).unwrap();
    let edited = json.replace("\"num_clusters\": 10", "\"num_clusters\": 5");
    assert_ne!(edited, json);
    assert!(matches!(
        CcModel::from_bytes(&edited, &weights, &dev),
        Err(ModelError::ArchitectureMismatch { .. })
    ));
    // Another backbone width.
    let other = CcModel::new(&CcConfig::new([1, 28, 28], 10, &[4, 16]), 0, &dev).unwrap();
    let other_json = serde_json::to_string(&other.description().unwrap()).unwrap();
    assert!(matches!(
        CcModel::from_bytes(&other_json, &weights, &dev),
        Err(ModelError::ArchitectureMismatch { .. })
    ));
    // Truncated weights, in memory and on disk.
    for cut in [weights.len() / 2, 10, 0] {
        let r = CcModel::from_bytes(&json, &weights[..cut], &dev);
        assert!(
            matches!(r, Err(ModelError::CorruptCheckpoint { .. })),
            "cut {cut}: {r:?}"
        );
    }
    std::fs::write(dir.join("model.bpk"), &weights[..weights.len() - 100]).unwrap();
    let r = CcModel::load(&dir, &dev);
    assert!(
        matches!(r, Err(ModelError::CorruptCheckpoint { .. })),
        "{r:?}"
    );
    // Garbage description.
    assert!(matches!(
        CcModel::from_bytes("{not json", &weights, &dev),
        Err(ModelError::BadDescription { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_configs_are_rejected_up_front() {
    let good = tiny_config([1, 28, 28], 10);
    assert!(good.check_ref().is_ok());
    let mut bad = good.clone();
    bad.num_clusters = 1;
    assert!(matches!(
        bad.check(),
        Err(ModelError::InvalidConfig {
            name: "num_clusters",
            ..
        })
    ));
    let mut bad = good.clone();
    bad.backbone.blocks = vec![1];
    assert!(matches!(
        bad.check_ref(),
        Err(ModelError::InvalidConfig { .. })
    ));
    let mut bad = good.clone();
    bad.std = vec![0.0];
    assert!(CcModel::new(&bad, 0, &device()).is_err());

    let mut train = tiny_train_config(0);
    train.run.batch_size = 1;
    assert!(matches!(
        train.check_ref(),
        Err(ModelError::InvalidConfig {
            name: "batch_size",
            ..
        })
    ));
    let mut train = tiny_train_config(0);
    train.augment.crop_scale = [0.0, 1.0];
    assert!(train.check().is_err());

    let (images, labels) = synthetic(8, 0);
    let r = train_cc(&tiny_train_config(0), &images, Some(&labels), &device());
    assert!(matches!(
        r,
        Err(ModelError::TooFewImages {
            available: 8,
            batch_size: 16
        })
    ));
    let (images, labels) = synthetic(32, 0);
    let r = train_cc(
        &tiny_train_config(0),
        &images,
        Some(&labels[..5]),
        &device(),
    );
    assert!(matches!(
        r,
        Err(ModelError::LabelCount {
            images: 32,
            labels: 5
        })
    ));
}

#[test]
fn augmentations_are_seeded_and_stay_in_range() {
    for (shape, cfg) in [
        ([1, 28, 28], AugmentConfig::digits()),
        ([3, 32, 32], AugmentConfig::color()),
    ] {
        let mut cfg = cfg;
        cfg.noise_std = 0.05;
        let dims = [6, shape[0], shape[1], shape[2]];
        let images = random_images(6, shape, 20);
        let a = augment_batch(&images, dims, &cfg, &mut SeededRng::seed_from_u64(21)).unwrap();
        let b = augment_batch(&images, dims, &cfg, &mut SeededRng::seed_from_u64(21)).unwrap();
        let c = augment_batch(&images, dims, &cfg, &mut SeededRng::seed_from_u64(22)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), images.len());
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(a, images);
    }
    // With every random transform off, an augmentation is the identity.
    let identity = AugmentConfig {
        crop_scale: [1.0, 1.0],
        crop_ratio: [1.0, 1.0],
        horizontal_flip: false,
        rotation_degrees: 0.0,
        shear: 0.0,
        stroke_prob: 0.0,
        jitter_prob: 0.0,
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        grayscale_prob: 0.0,
        noise_std: 0.0,
    };
    let images = random_images(2, [3, 8, 8], 23);
    let out = augment_batch(
        &images,
        [2, 3, 8, 8],
        &identity,
        &mut SeededRng::seed_from_u64(0),
    )
    .unwrap();
    for (x, y) in images.iter().zip(&out) {
        assert!((x - y).abs() < 1e-5);
    }
    // Bad input is a typed error, not a panic.
    let mut rng = SeededRng::seed_from_u64(0);
    assert!(augment_batch(&images, [3, 3, 8, 8], &identity, &mut rng).is_err());
    assert!(augment_batch(&[], [0, 3, 8, 8], &identity, &mut rng).is_err());
    let bad = AugmentConfig {
        jitter_prob: 2.0,
        ..identity
    };
    assert!(augment_batch(&images, [2, 3, 8, 8], &bad, &mut rng).is_err());
}

#[test]
fn training_learns_the_synthetic_clusters() {
    let (images, labels) = synthetic(64, 30);
    let mut cfg = tiny_train_config(31);
    cfg.run.epochs = 6;
    cfg.run.learning_rate = 3e-3;
    let (_, report) = train_cc(&cfg, &images, Some(&labels), &device()).unwrap();
    let scores = report.final_scores.unwrap();
    assert!(report.epochs.iter().all(|e| e.loss.is_finite()));
    // Two trivially separable blobs: CC should find them quickly.
    assert!(scores.acc > 0.9, "{scores:?} {:?}", report.epochs.last());
}
