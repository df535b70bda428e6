//! The victim family: SimCLR pretext, neighbour mining, SCAN, NNM, SPICE, one save / load path that
//! dispatches on the recorded kind, the shared training runner (resume, atomic checkpoints,
//! divergence) and their typed errors.

use advclust_core::SeededRng;
use advclust_core::{DifferentiableClusterModel, ImageBatch};
use advclust_models::nnm::cluster_contrast;
use advclust_models::runner::{EpochLog, RunConfig, StepLoss, TrainingStep, run_training};
use advclust_models::scan::scan_loss;
use advclust_models::spice::prototype::prototype_labels;
use advclust_models::{
    ClusterModelExt, ModelError, NnmTrainConfig, Pretext, ResNetConfig, ScanModel, ScanTrainConfig,
    SpiceTrainConfig, Victim, VictimKind, VictimModel, mine_neighbors, train_nnm, train_scan,
    train_spice,
};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};

mod common;
use common::{device, quiet, synthetic, temp_dir, tiny_pretext};

fn tiny_scan_config(seed: u64) -> ScanTrainConfig {
    let mut config = ScanTrainConfig::new(2, 1);
    config.num_heads = 2;
    config.run = quiet(RunConfig::new(2, 16, 1e-3));
    config.run.seed = seed;
    if let Some(sl) = config.selflabel.as_mut() {
        sl.threshold = 0.6;
        sl.run = quiet(RunConfig::new(1, 16, 1e-3));
    }
    config
}

#[test]
fn neighbours_match_a_brute_force_search_and_lead_with_the_image_itself() {
    let (n, d, k) = (37, 5, 4);
    let mut rng = SeededRng::seed_from_u64(1);
    let features: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let nb = mine_neighbors(&features, n, k, &device()).unwrap();
    let unit: Vec<Vec<f64>> = features
        .chunks(d)
        .map(|r| {
            let norm = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            r.iter().map(|v| *v as f64 / norm).collect()
        })
        .collect();
    for i in 0..n {
        let mut others: Vec<(f64, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum(), j))
            .collect();
        others.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected: Vec<u32> = std::iter::once(i as u32)
            .chain(others[..k].iter().map(|(_, j)| *j as u32))
            .collect();
        assert_eq!(nb.row(i), &expected[..], "row {i}");
    }
    // Agreement: labels by parity; counted by hand.
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let same: usize = (0..n)
        .map(|i| {
            nb.row(i)[1..]
                .iter()
                .filter(|&&j| j as usize % 2 == i % 2)
                .count()
        })
        .sum();
    let agreement = nb.label_agreement(&labels).unwrap();
    assert!((agreement - same as f64 / (n * k) as f64).abs() < 1e-12);
    // Bad input: k >= n, rows that do not split, a corrupt table.
    assert!(mine_neighbors(&features, n, n, &device()).is_err());
    assert!(mine_neighbors(&features[..10], 3, 1, &device()).is_err());
    let mut bad = nb.clone();
    bad.indices[5] = n as u32;
    assert!(matches!(
        bad.validate("t"),
        Err(ModelError::BadDescription { .. })
    ));
    bad.indices.pop();
    assert!(matches!(
        bad.validate("t"),
        Err(ModelError::BadDescription { .. })
    ));
}

#[test]
fn scan_loss_matches_a_hand_computation() {
    let dev = device();
    let a = [[2.0f32, 0.0, -1.0], [0.5, 0.5, 0.0]];
    let b = [[1.0f32, 0.0, 0.0], [0.0, 2.0, 0.0]];
    let t = |m: [[f32; 3]; 2]| {
        Tensor::<2>::from_data(TensorData::new(m.concat().to_vec(), [2, 3]), &dev)
    };
    let (total, cons, ent) = scan_loss(t(a), t(b), 5.0);
    let softmax = |r: [f32; 3]| {
        let e: Vec<f64> = r.iter().map(|v| (*v as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect::<Vec<_>>()
    };
    let (p, q): (Vec<_>, Vec<_>) = (a.map(softmax).to_vec(), b.map(softmax).to_vec());
    let cons_ref = -(0..2)
        .map(|i| (0..3).map(|c| p[i][c] * q[i][c]).sum::<f64>().ln())
        .sum::<f64>()
        / 2.0;
    let pbar: Vec<f64> = (0..3).map(|c| (p[0][c] + p[1][c]) / 2.0).collect();
    let ent_ref: f64 = -pbar.iter().map(|v| v * v.ln()).sum::<f64>();
    let scalar = |x: Tensor<1>| x.into_scalar::<f32>() as f64;
    assert!((scalar(cons) - cons_ref).abs() < 1e-5);
    assert!((scalar(ent) - ent_ref).abs() < 1e-5);
    assert!((scalar(total) - (cons_ref - 5.0 * ent_ref)).abs() < 1e-4);
}

#[test]
fn pretext_then_scan_trains_saves_and_loads_through_the_victim_type() {
    let dev = device();
    let (images, labels) = synthetic(48, 3);
    let pretext = tiny_pretext(&images, &labels, 4);
    assert_eq!((pretext.neighbors.n, pretext.neighbors.k), (48, 3));
    let dir = temp_dir("pretext");
    pretext.save(&dir).unwrap();
    let loaded = Pretext::load(&dir, &dev).unwrap();
    assert_eq!(loaded.neighbors, pretext.neighbors);
    assert_eq!(
        loaded.model.embed_host(&images, &dev).unwrap(),
        pretext.model.embed_host(&images, &dev).unwrap()
    );

    let (scan, report) = train_scan(
        &{
            let mut c = tiny_scan_config(5);
            c.selflabel = None;
            c
        },
        &loaded,
        &images,
        Some(&labels),
        &dev,
    )
    .unwrap();
    // The whole network is trained: the backbone's weights moved away from the pretext's.
    let w = |t: Tensor<4>| t.into_data().try_into_vec_as::<f32>().unwrap();
    let before = w(loaded.model.backbone().stem_weight());
    let after = w(scan.backbone().stem_weight());
    assert_eq!(before.len(), after.len());
    assert!(before.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-6));
    assert_eq!(report.head_losses.len(), 2);
    assert_eq!(scan.config().selected_head, report.selected_head);
    assert!(report.selflabel.is_none() && report.final_scores.is_some());
    // With the self-labelling stage.
    let (_, with_sl) =
        train_scan(&tiny_scan_config(5), &loaded, &images, Some(&labels), &dev).unwrap();
    assert_eq!(with_sl.selflabel.as_ref().map(|r| r.epochs.len()), Some(1));
    assert!(with_sl.confident_fraction.is_some());
    // phi = every head's raw logits side by side; memberships = the selected head's softmax.
    let x = images.select(&[0, 1, 2]).unwrap().to_tensor(&dev);
    assert_eq!(scan.attack_output(x.clone()).dims(), [3, 4]);
    let m = scan
        .memberships(x)
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    for row in m.chunks(2) {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-5);
    }

    // One save path, one load path that dispatches on the recorded kind.
    let vdir = temp_dir("scan");
    scan.save(&vdir).unwrap();
    let victim = Victim::load(&vdir, &dev).unwrap();
    assert_eq!(victim.kind(), VictimKind::Scan);
    assert_eq!(
        victim.memberships_host(&images, 7, &dev).unwrap(),
        scan.memberships_host(&images, 64, &dev).unwrap()
    );
    assert_eq!(victim.training(), VictimModel::training(&scan));
    // Loading it as a CC model names the kinds.
    assert!(matches!(
        advclust_models::CcModel::load(&vdir, &dev),
        Err(ModelError::WrongKind {
            expected: VictimKind::Cc,
            actual: VictimKind::Scan,
            ..
        })
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&vdir);
}

#[test]
fn bad_victim_directories_are_typed_errors_naming_the_file() {
    let dev = device();
    let (images, labels) = synthetic(32, 6);
    let pretext = tiny_pretext(&images, &labels, 7);
    let mut config = tiny_scan_config(8);
    config.selflabel = None;
    let (scan, _) = train_scan(&config, &pretext, &images, None, &dev).unwrap();
    let dir = temp_dir("bad");
    scan.save(&dir).unwrap();
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let weights = std::fs::read(dir.join("model.bpk")).unwrap();

    let unknown = json.replace("\"kind\": \"scan\"", "\"kind\": \"spiceberg\"");
    assert_ne!(unknown, json);
    std::fs::write(dir.join("model.json"), &unknown).unwrap();
    match Victim::load(&dir, &dev) {
        Err(ModelError::BadDescription { origin, message }) => {
            assert!(origin.ends_with("model.json"), "{origin}");
            assert!(message.contains("spiceberg"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A config that does not fit the weights (another k).
    let other_k = json.replace("\"num_clusters\": 2", "\"num_clusters\": 3");
    assert_ne!(other_k, json);
    std::fs::write(dir.join("model.json"), &other_k).unwrap();
    assert!(matches!(
        Victim::load(&dir, &dev),
        Err(ModelError::ArchitectureMismatch { .. })
    ));
    // A selected head that does not exist.
    let bad_head = json.replace("\"selected_head\": ", "\"selected_head\": 7");
    std::fs::write(dir.join("model.json"), &bad_head).unwrap();
    assert!(Victim::load(&dir, &dev).is_err());
    // Truncated and missing weights.
    std::fs::write(dir.join("model.json"), &json).unwrap();
    std::fs::write(dir.join("model.bpk"), &weights[..weights.len() / 3]).unwrap();
    assert!(matches!(
        Victim::load(&dir, &dev),
        Err(ModelError::CorruptCheckpoint { .. })
    ));
    std::fs::remove_file(dir.join("model.bpk")).unwrap();
    match Victim::load(&dir, &dev) {
        Err(ModelError::MissingCheckpoint { path }) => assert!(path.ends_with("model.bpk")),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scan_refuses_a_pretext_of_other_data_and_bad_k() {
    let dev = device();
    let (images, labels) = synthetic(32, 9);
    let pretext = tiny_pretext(&images, &labels, 10);
    // Another number of images than the neighbours cover.
    let fewer = images.select(&(0..20).collect::<Vec<_>>()).unwrap();
    assert!(matches!(
        train_scan(&tiny_scan_config(0), &pretext, &fewer, None, &dev),
        Err(ModelError::PretextMismatch(_))
    ));
    // Another image shape.
    let color = ImageBatch::unit(vec![0.5; 32 * 3 * 12 * 12], [32, 3, 12, 12]).unwrap();
    assert!(matches!(
        train_scan(&tiny_scan_config(0), &pretext, &color, None, &dev),
        Err(ModelError::InputShape { .. })
    ));
    // k < 2 and k > n.
    for k in [1, 33] {
        let mut config = tiny_scan_config(0);
        config.num_clusters = k;
        assert!(
            matches!(
                train_scan(&config, &pretext, &images, None, &dev),
                Err(ModelError::InvalidConfig { .. })
            ),
            "k = {k}"
        );
    }
    // An empty dataset cannot even be built (a typed error in advclust-core).
    assert!(ImageBatch::unit(vec![], [0, 1, 12, 12]).is_err());
}

#[test]
fn a_resumed_scan_run_equals_an_uninterrupted_one() {
    let dev = device();
    let (images, labels) = synthetic(32, 11);
    let pretext = tiny_pretext(&images, &labels, 12);
    let mut config = tiny_scan_config(13);
    config.selflabel = None;
    config.run.epochs = 3;
    let (full_model, full) = train_scan(&config, &pretext, &images, None, &dev).unwrap();

    let dir = temp_dir("resume");
    let mut first = config.clone();
    first.run.epochs = 2;
    first.run.checkpoint_dir = Some(dir.clone());
    first.run.checkpoint_every = 1;
    train_scan(&first, &pretext, &images, None, &dev).unwrap();
    // Only the finished checkpoint is left: no temporary or set-aside directory.
    let entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec!["scan".to_string()]);
    let mut second = first.clone();
    second.run.epochs = 3;
    second.run.resume = true;
    let (model, resumed) = train_scan(&second, &pretext, &images, None, &dev).unwrap();
    assert_eq!(resumed.scan.resumed_after_epoch, Some(2));
    let losses = |e: &[EpochLog]| e.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&full.scan.epochs), losses(&resumed.scan.epochs));
    assert_eq!(
        model.memberships_host(&images, 64, &dev).unwrap(),
        full_model.memberships_host(&images, 64, &dev).unwrap()
    );
    // A checkpoint of another run (another seed) is refused, not mixed in.
    let mut other = second.clone();
    other.run.seed = 99;
    assert!(matches!(
        train_scan(&other, &pretext, &images, None, &dev),
        Err(ModelError::ArchitectureMismatch { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A step whose loss turns NaN at a chosen epoch.
struct DivergingStep {
    nan_from_epoch: usize,
    calls: usize,
    steps_per_epoch: usize,
}

impl TrainingStep<ScanModel> for DivergingStep {
    fn loss(
        &mut self,
        model: &ScanModel,
        batch: &[usize],
        _: &mut SeededRng,
        device: &Device,
    ) -> advclust_models::Result<StepLoss> {
        let epoch = self.calls / self.steps_per_epoch + 1;
        self.calls += 1;
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.5; batch.len() * 144], [batch.len(), 1, 12, 12]),
            device,
        );
        let out = model.attack_output(x).mean();
        let total = if epoch >= self.nan_from_epoch {
            out.clone() / out.zeros_like() * 0.0
        } else {
            out
        };
        Ok(StepLoss {
            total,
            parts: Vec::new(),
        })
    }
}

#[test]
fn a_diverged_run_stops_with_the_epoch_and_keeps_the_last_checkpoint() {
    let dev = device();
    let dir = temp_dir("nan");
    let mut run = quiet(RunConfig::new(4, 8, 1e-3));
    run.checkpoint_dir = Some(dir.clone());
    run.checkpoint_every = 1;
    let train_dev = run.training_device(&dev);
    let config = advclust_models::ScanConfig {
        input_shape: [1, 12, 12],
        num_clusters: 2,
        backbone: ResNetConfig::new(1, &[4], 1),
        num_heads: 1,
        selected_head: 0,
        mean: vec![0.0],
        std: vec![1.0],
    };
    let model = ScanModel::new(&config, 0, &train_dev).unwrap();
    let mut step = DivergingStep {
        nan_from_epoch: 3,
        calls: 0,
        steps_per_epoch: 2,
    };
    let r = run_training(
        "nan",
        model,
        16,
        &run,
        serde_json::json!(1),
        &mut step,
        &train_dev,
        &mut |_| {},
    );
    assert!(
        matches!(
            r,
            Err(ModelError::Diverged {
                epoch: 3,
                step: 0,
                ..
            })
        ),
        "{r:?}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("nan").join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["epoch"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tiny_nnm_config(seed: u64) -> NnmTrainConfig {
    let mut config = NnmTrainConfig::new(2, 1);
    config.num_neighbors = 3;
    config.run = quiet(RunConfig::new(3, 16, 1e-3));
    config.run.seed = seed;
    config
}

#[test]
fn cluster_contrast_matches_a_hand_computation() {
    let dev = device();
    // Two rows assigned one-hot to two clusters: the normalised columns are the unit vectors,
    // S = I, and each row's cross-entropy is log(1 + e^-1).
    let a = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]), &dev);
    let got = cluster_contrast(a.clone(), a)
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap()[0];
    let want = (1.0f32 + (-1.0f32).exp()).ln();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn nnm_trains_with_its_global_table_and_loads_as_nnm() {
    let dev = device();
    let (images, labels) = synthetic(48, 21);
    let pretext = tiny_pretext(&images, &labels, 22);
    let (nnm, report) =
        train_nnm(&tiny_nnm_config(23), &pretext, &images, Some(&labels), &dev).unwrap();
    assert_eq!(report.head_losses.len(), 3);
    assert!(report.neighbor_agreement.is_some() && report.final_scores.is_some());
    // The global term is off in epoch 1 and on from epoch 2.
    let global = |e: &EpochLog| e.parts.iter().find(|p| p.0 == "global").unwrap().1;
    assert_eq!(global(&report.run.epochs[0]), 0.0);
    assert!(report.run.epochs[1..].iter().all(|e| global(e) > 0.0));
    // phi = the three heads' logits; saved and loaded as an NNM victim.
    let x = images.select(&[0, 1]).unwrap().to_tensor(&dev);
    assert_eq!(nnm.attack_output(x).dims(), [2, 6]);
    let dir = temp_dir("nnm");
    nnm.save(&dir).unwrap();
    let victim = Victim::load(&dir, &dev).unwrap();
    assert_eq!(victim.kind(), VictimKind::Nnm);
    assert_eq!(
        victim.memberships_host(&images, 5, &dev).unwrap(),
        nnm.memberships_host(&images, 64, &dev).unwrap()
    );
    assert!(matches!(
        ScanModel::load(&dir, &dev),
        Err(ModelError::WrongKind {
            expected: VictimKind::Scan,
            actual: VictimKind::Nnm,
            ..
        })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_nnm_run_rebuilds_its_global_table_and_equals_an_uninterrupted_one() {
    let dev = device();
    let (images, labels) = synthetic(32, 31);
    let pretext = tiny_pretext(&images, &labels, 32);
    let config = tiny_nnm_config(33);
    let (full_model, full) = train_nnm(&config, &pretext, &images, None, &dev).unwrap();
    let dir = temp_dir("nnm-resume");
    let mut first = config.clone();
    first.run.epochs = 2;
    first.run.checkpoint_dir = Some(dir.clone());
    first.run.checkpoint_every = 1;
    train_nnm(&first, &pretext, &images, None, &dev).unwrap();
    let mut second = first.clone();
    second.run.epochs = 3;
    second.run.resume = true;
    let (model, resumed) = train_nnm(&second, &pretext, &images, None, &dev).unwrap();
    assert_eq!(resumed.run.resumed_after_epoch, Some(2));
    let losses = |e: &[EpochLog]| e.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&full.run.epochs), losses(&resumed.run.epochs));
    assert_eq!(
        model.memberships_host(&images, 64, &dev).unwrap(),
        full_model.memberships_host(&images, 64, &dev).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nnm_refuses_bad_settings_with_typed_errors() {
    let dev = device();
    let (images, labels) = synthetic(32, 41);
    let pretext = tiny_pretext(&images, &labels, 42);
    let mut too_many = tiny_nnm_config(43);
    too_many.num_neighbors = 32;
    let mut no_epoch = tiny_nnm_config(43);
    no_epoch.global_from_epoch = 0;
    let mut one_cluster = tiny_nnm_config(43);
    one_cluster.num_clusters = 1;
    for config in [too_many, no_epoch, one_cluster] {
        assert!(matches!(
            train_nnm(&config, &pretext, &images, None, &dev),
            Err(ModelError::InvalidConfig { .. })
        ));
    }
    let (other, _) = synthetic(32, 44);
    assert!(matches!(
        train_nnm(&tiny_nnm_config(43), &pretext, &other, None, &dev),
        Err(ModelError::PretextMismatch(_))
    ));
}

#[test]
fn prototype_labels_pick_the_images_nearest_each_clusters_top_scored_mean() {
    // Four images on two axes; the head scores image 0 highest for cluster 0 and image 3 for
    // cluster 1, so the prototypes are those images' embeddings and each picks its axis.
    let embeddings = [1.0f32, 0.0, 0.9, 0.1, 0.1, 0.9, 0.0, 1.0];
    let scores = [0.9f32, 0.1, 0.4, 0.6, 0.6, 0.4, 0.2, 0.8];
    let pairs = prototype_labels(&scores, &embeddings, 4, 2, 0.5);
    assert_eq!(pairs, vec![(0, 0), (1, 0), (2, 1), (3, 1)]);
}

fn tiny_spice_config(seed: u64) -> SpiceTrainConfig {
    let mut config = SpiceTrainConfig::new(2, 1);
    config.num_heads = 2;
    config.prototype.run = quiet(RunConfig::new(2, 16, 5e-3));
    config.prototype.run.seed = seed;
    config.reliable.neighbors = 5;
    config.reliable.ratio = 0.5;
    config.reliable.score_threshold = 0.0;
    if let Some(semi) = config.semi.as_mut() {
        semi.run = quiet(RunConfig::new(1, 12, 1e-3));
        semi.run.seed = seed;
    }
    config
}

#[test]
fn spice_self_then_semi_trains_and_loads_as_spice() {
    let dev = device();
    let (images, labels) = synthetic(48, 51);
    let pretext = tiny_pretext(&images, &labels, 52);
    let (spice, report) = train_spice(
        &tiny_spice_config(53),
        &pretext,
        &images,
        Some(&labels),
        &dev,
    )
    .unwrap();
    assert_eq!(report.head_losses.len(), 2);
    assert!(report.self_scores.is_some() && report.final_scores.is_some());
    let reliable = report.reliable.as_ref().unwrap();
    assert!(reliable.count >= 2 && reliable.count.is_multiple_of(2));
    assert_eq!(report.semi_run.as_ref().map(|r| r.epochs.len()), Some(1));
    assert_eq!(spice.config().num_heads, 1);
    // SPICE-Self kept the backbone frozen; SPICE-Semi trained it.
    let w = |t: Tensor<4>| t.into_data().try_into_vec_as::<f32>().unwrap();
    assert_ne!(
        w(pretext.model.backbone().stem_weight()),
        w(spice.backbone().stem_weight())
    );
    let x = images.select(&[0, 1]).unwrap().to_tensor(&dev);
    assert_eq!(spice.attack_output(x).dims(), [2, 2]);
    let dir = temp_dir("spice");
    spice.save(&dir).unwrap();
    let victim = Victim::load(&dir, &dev).unwrap();
    assert_eq!(victim.kind(), VictimKind::Spice);
    assert_eq!(
        victim.memberships_host(&images, 5, &dev).unwrap(),
        spice.memberships_host(&images, 64, &dev).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);

    // SPICE-Self alone leaves the backbone exactly as the pretext's.
    let mut self_only = tiny_spice_config(53);
    self_only.semi = None;
    let (model, report) = train_spice(&self_only, &pretext, &images, None, &dev).unwrap();
    assert!(report.semi_run.is_none() && report.reliable.is_none());
    assert_eq!(
        w(pretext.model.backbone().stem_weight()),
        w(model.backbone().stem_weight())
    );
}

#[test]
fn spice_with_no_reliable_image_is_a_typed_error() {
    let dev = device();
    let (images, labels) = synthetic(32, 61);
    let pretext = tiny_pretext(&images, &labels, 62);
    let mut config = tiny_spice_config(63);
    config.reliable.score_threshold = 0.999_999;
    assert!(matches!(
        train_spice(&config, &pretext, &images, None, &dev),
        Err(ModelError::InvalidConfig {
            name: "reliable",
            ..
        })
    ));
    let mut too_many = tiny_spice_config(63);
    too_many.reliable.neighbors = 33;
    assert!(matches!(
        train_spice(&too_many, &pretext, &images, None, &dev),
        Err(ModelError::InvalidConfig { .. })
    ));
}

#[test]
fn a_resumed_spice_run_rebuilds_its_prototype_labels_and_equals_an_uninterrupted_one() {
    let dev = device();
    let (images, labels) = synthetic(32, 71);
    let pretext = tiny_pretext(&images, &labels, 72);
    let mut config = tiny_spice_config(73);
    config.prototype.run.epochs = 3;
    let (full_model, full) = train_spice(&config, &pretext, &images, None, &dev).unwrap();
    let dir = temp_dir("spice-resume");
    let mut first = config.clone();
    first.prototype.run.epochs = 2;
    first.prototype.run.checkpoint_dir = Some(dir.clone());
    first.prototype.run.checkpoint_every = 1;
    first.semi = None;
    train_spice(&first, &pretext, &images, None, &dev).unwrap();
    // Resumed with other bookkeeping (more epochs, resume on, a checkpoint directory for the
    // semi stage too): only what determines the weights is compared.
    let mut second = config.clone();
    second.prototype.run.checkpoint_dir = Some(dir.clone());
    second.prototype.run.resume = true;
    if let Some(semi) = second.semi.as_mut() {
        semi.run.checkpoint_dir = Some(dir.clone());
    }
    let (model, resumed) = train_spice(&second, &pretext, &images, None, &dev).unwrap();
    assert_eq!(resumed.self_run.resumed_after_epoch, Some(2));
    let losses = |e: &[EpochLog]| e.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(
        losses(&full.self_run.epochs),
        losses(&resumed.self_run.epochs)
    );
    assert_eq!(
        model.memberships_host(&images, 64, &dev).unwrap(),
        full_model.memberships_host(&images, 64, &dev).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
