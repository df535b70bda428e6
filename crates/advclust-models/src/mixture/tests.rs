//! Fitting, memberships, determinism, save / load, gradients and errors of the mixture victims,
//! on three Gaussian blobs of 1 x 8 x 8 images.

use advclust_core::SeededRng;
use advclust_core::{DifferentiableClusterModel, ImageBatch, ParamGuard};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};

use super::*;
use crate::victim::{ClusterModelExt, Victim, VictimKind, VictimModel};

const SHAPE: [usize; 3] = [1, 8, 8];

fn device() -> Device {
    Device::flex()
}

/// `n` images of three blobs: a bright band of rows 0-2, 3-5 or 6-7 over noise of +-0.1.
fn blobs(n: usize, seed: u64) -> (ImageBatch, Vec<usize>) {
    let mut rng = SeededRng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * 64);
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    for &label in &labels {
        for y in 0..8 {
            let base = if y * 3 / 8 == label { 0.8 } else { 0.2 };
            for _ in 0..8 {
                data.push(base + rng.random_range(-0.1f32..0.1));
            }
        }
    }
    (ImageBatch::unit(data, [n, 1, 8, 8]).unwrap(), labels)
}

fn config(kind: MixtureKind) -> MixtureConfig {
    MixtureConfig::new(kind, SHAPE, 3, 4)
}

fn host(t: Tensor<2>) -> Vec<f32> {
    advclust_core::tensor_to_vec(t.into_data()).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("advclust-mixture-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn both_kinds_separate_the_blobs() {
    let dev = device();
    let (images, labels) = blobs(90, 0);
    for kind in [MixtureKind::Gmm, MixtureKind::SoftKmeans] {
        let (model, report) = fit_mixture(&images, &config(kind), 0, &dev).unwrap();
        let scores = model.evaluate(&images, &labels, &dev).unwrap();
        assert!(scores.nmi > 0.9, "{kind}: NMI {}", scores.nmi);
        assert!(report.kmeans_converged, "{kind}");
        assert!(report.explained_variance_ratio > 0.5, "{kind}: {report:?}");
        assert!(report.inertia.is_finite() && report.inertia > 0.0);
        match kind {
            MixtureKind::Gmm => {
                assert!(report.em_iterations >= 1);
                assert!(report.log_likelihood.is_some_and(f64::is_finite));
            }
            MixtureKind::SoftKmeans => {
                assert_eq!(report.em_iterations, 0);
                assert_eq!(report.log_likelihood, None);
            }
        }
    }
}

#[test]
fn memberships_rows_sum_to_one() {
    let dev = device();
    let (images, _) = blobs(30, 1);
    for kind in [MixtureKind::Gmm, MixtureKind::SoftKmeans] {
        let (model, _) = fit_mixture(&images, &config(kind), 3, &dev).unwrap();
        let m = model.memberships_host(&images, 7, &dev).unwrap();
        assert_eq!(m.len(), 30 * 3);
        for row in m.chunks(3) {
            assert!(row.iter().all(|p| (0.0..=1.0).contains(p)));
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
    }
}

#[test]
fn soft_kmeans_logits_are_negative_squared_distances() {
    let dev = device();
    let (images, _) = blobs(30, 2);
    let (model, _) = fit_mixture(&images, &config(MixtureKind::SoftKmeans), 0, &dev).unwrap();
    let z = host(model.project(images.to_tensor(&dev)));
    let centres = model.parts().unwrap().centres;
    let m = model.memberships_host(&images, 256, &dev).unwrap();
    for (zi, mi) in z.chunks(4).zip(m.chunks(3)) {
        let logits: Vec<f32> = centres
            .chunks(4)
            .map(|c| -zi.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum::<f32>())
            .collect();
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = logits.iter().map(|l| (l - top).exp()).sum();
        for (l, p) in logits.iter().zip(mi) {
            assert!(((l - top).exp() / total - p).abs() < 1e-4);
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_weights() {
    let dev = device();
    let (images, _) = blobs(60, 3);
    let fit = |seed| {
        fit_mixture(&images, &config(MixtureKind::Gmm), seed, &dev)
            .unwrap()
            .0
            .parts()
            .unwrap()
    };
    assert_eq!(fit(7), fit(7));
}

#[test]
fn save_and_load_round_trip_through_the_victim_family() {
    let dev = device();
    let (images, labels) = blobs(45, 4);
    for kind in [MixtureKind::Gmm, MixtureKind::SoftKmeans] {
        let (model, report) = fit_mixture(&images, &config(kind), 1, &dev).unwrap();
        let scores = model.evaluate(&images, &labels, &dev).unwrap();
        let model = model.with_training_summary(report.training_summary("blobs", Some(scores)));
        let dir = temp_dir(kind.name());
        VictimModel::save(&model, &dir).unwrap();

        let loaded = Victim::load(&dir, &dev).unwrap();
        assert_eq!(loaded.kind(), VictimKind::Mixture);
        assert_eq!(loaded.channel_std(), &[1.0]);
        assert_eq!(loaded.training().unwrap().dataset, "blobs");
        let before = model.memberships_host(&images, 256, &dev).unwrap();
        let after = loaded.memberships_host(&images, 256, &dev).unwrap();
        assert_eq!(before, after);

        let typed = MixtureModel::load(&dir, &dev).unwrap();
        assert_eq!(typed.config(), model.config());
        assert_eq!(typed.parts().unwrap(), model.parts().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_input_gets_a_gradient() {
    let dev = device().autodiff();
    let (images, _) = blobs(30, 5);
    let (model, _) = fit_mixture(&images, &config(MixtureKind::Gmm), 0, &dev).unwrap();
    let model = model.freeze();
    // Image 0 (saturated memberships) and the midpoint of images 0 and 1 (two blobs): the
    // latter sits between clusters, where the softmax is not flat.
    let (a, b) = (images.image(0).unwrap(), images.image(1).unwrap());
    let mut data = a.to_vec();
    data.extend(a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)));
    let x = ImageBatch::unit(data, [2, 1, 8, 8])
        .unwrap()
        .to_tensor(&dev)
        .require_grad();
    let m = model.memberships(x.clone());
    let target = Tensor::<2>::from_data(TensorData::new(vec![1.0f32 / 3.0; 6], [2, 3]), &dev);
    let grads = (m - target).square().sum().backward();
    let g = advclust_core::tensor_to_vec(x.grad(&grads).unwrap().into_data()).unwrap();
    assert_eq!(g.len(), 2 * 64);
    assert!(g.iter().all(|v| v.is_finite()));
    assert!(g[64..].iter().any(|v| v.abs() > 1e-6), "{:?}", &g[64..]);
}

#[test]
fn configs_are_validated() {
    let bad = |c: MixtureConfig| match c.check() {
        Err(ModelError::InvalidConfig { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bad(MixtureConfig::new(MixtureKind::Gmm, SHAPE, 3, 0)),
        "components"
    );
    assert_eq!(
        bad(MixtureConfig::new(MixtureKind::Gmm, SHAPE, 3, 65)),
        "components"
    );
    assert_eq!(
        bad(MixtureConfig::new(MixtureKind::Gmm, SHAPE, 1, 4)),
        "num_clusters"
    );
    assert_eq!(
        bad(MixtureConfig::new(MixtureKind::Gmm, [1, 0, 8], 3, 1)),
        "input_shape"
    );
    assert!(
        MixtureConfig::new(MixtureKind::Gmm, SHAPE, 3, 64)
            .check()
            .is_ok()
    );
    let (images, _) = blobs(9, 6);
    let err = fit_mixture(
        &images,
        &MixtureConfig::new(MixtureKind::Gmm, SHAPE, 3, 65),
        0,
        &device(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ModelError::InvalidConfig {
            name: "components",
            ..
        }
    ));
}

#[test]
fn kinds_serialise_by_name() {
    assert_eq!(serde_json::to_string(&MixtureKind::Gmm).unwrap(), "\"gmm\"");
    assert_eq!(
        serde_json::to_string(&MixtureKind::SoftKmeans).unwrap(),
        "\"soft-kmeans\""
    );
    let c: MixtureConfig = serde_json::from_str(
        r#"{"kind":"soft-kmeans","input_shape":[1,8,8],"num_clusters":3,"components":4}"#,
    )
    .unwrap();
    assert_eq!(c, config(MixtureKind::SoftKmeans));
}

#[test]
fn bad_data_is_a_typed_error() {
    let dev = device();
    let cfg = config(MixtureKind::Gmm);
    let (images, _) = blobs(2, 7);
    assert!(matches!(
        fit_mixture(&images, &cfg, 0, &dev).unwrap_err(),
        ModelError::FewerImagesThanClusters {
            images: 2,
            clusters: 3
        }
    ));
    assert!(matches!(
        fit_mixture_flat(&[], 0, &cfg, 0, &dev).unwrap_err(),
        ModelError::NoImages
    ));
    let mut data = blobs(6, 7).0.into_data();
    data[70] = f32::NAN;
    assert!(matches!(
        fit_mixture_flat(&data, 6, &cfg, 0, &dev).unwrap_err(),
        ModelError::NonFinite {
            what: "images",
            index: 70,
            ..
        }
    ));
    assert!(matches!(
        fit_mixture_flat(&data[..100], 6, &cfg, 0, &dev).unwrap_err(),
        ModelError::Core(advclust_core::CoreError::ShapeMismatch { .. })
    ));
    let other = ImageBatch::unit(vec![0.5; 6 * 16], [6, 1, 4, 4]).unwrap();
    assert!(matches!(
        fit_mixture(&other, &cfg, 0, &dev).unwrap_err(),
        ModelError::InputShape { .. }
    ));
}

#[test]
fn parts_are_checked() {
    let dev = device();
    let cfg = config(MixtureKind::Gmm);
    let ok = <MixtureModel as VictimModel>::from_config(&cfg, &dev)
        .unwrap()
        .parts()
        .unwrap();
    let mut short = ok.clone();
    short.centres.pop();
    assert!(MixtureModel::from_parts(&cfg, short, &dev).is_err());
    let mut nan = ok.clone();
    nan.basis[3] = f32::INFINITY;
    assert!(matches!(
        MixtureModel::from_parts(&cfg, nan, &dev).unwrap_err(),
        ModelError::NonFinite {
            what: "basis",
            index: 3,
            ..
        }
    ));
    let mut negative = ok;
    negative.precisions[0] = 0.0;
    assert!(MixtureModel::from_parts(&cfg, negative, &dev).is_err());
}

#[test]
fn identical_images_do_not_break_the_fit() {
    // No variance at all: PCA, k-means++ and EM must still give finite parameters.
    let dev = device();
    let images = ImageBatch::unit(vec![0.3; 5 * 64], [5, 1, 8, 8]).unwrap();
    for kind in [MixtureKind::Gmm, MixtureKind::SoftKmeans] {
        let (model, report) = fit_mixture(&images, &config(kind), 0, &dev).unwrap();
        assert_eq!(report.explained_variance_ratio, 1.0);
        let m = model.memberships_host(&images, 256, &dev).unwrap();
        assert!(m.iter().all(|v| v.is_finite()));
    }
}
