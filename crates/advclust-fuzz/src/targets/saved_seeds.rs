//! Seed corpora of the saved-artefact targets, made with the owning crates' own savers: a tiny
//! attack trained for one epoch on a brightness oracle, and a tiny victim of every kind.

use advclust_core::{ClusterOracle, ImageBatch, Memberships, ParamGuard};
use advclust_gan::{ATTACK_FILE, AttackConfig, GENERATOR_FILE, GradientSource, Stopping};
use advclust_models::{
    CcConfig, CcModel, MixtureConfig, MixtureKind, MixtureModel, MixtureParts, NnmModel,
    ResNetConfig, ScanConfig, ScanModel, SpiceConfig, SpiceModel, Victim, spice::SpiceStage,
};
use serde_json::Value;

use super::data::{Seeds, seed_error};
use super::{ScratchDir, device};
use crate::Result;
use crate::mutator::parts;

/// A black-box victim: two clusters by mean brightness.
struct Brightness {
    shape: [usize; 3],
}

impl ClusterOracle for Brightness {
    fn num_clusters(&self) -> usize {
        2
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.shape)
    }

    fn memberships(&mut self, batch: &ImageBatch) -> advclust_core::Result<Memberships> {
        let rows: Vec<f32> = (0..batch.len())
            .flat_map(|i| {
                let img = batch.image(i).unwrap_or(&[]);
                let p = img.iter().sum::<f32>() / img.len().max(1) as f32;
                [1.0 - p, p]
            })
            .collect();
        Memberships::new(rows, batch.len(), 2)
    }
}

/// The saved attack's two files, and its evaluated report.
pub struct AttackSeeds {
    /// `[attack.json, generator.bpk]` containers (the `saved-attack` corpus).
    pub containers: Seeds,
    /// `attack.json` variants (the `saved-attack-json` corpus).
    pub jsons: Seeds,
    /// Reports (the `report` corpus).
    pub reports: Seeds,
}

fn read(dir: &std::path::Path, name: &str) -> Result<Vec<u8>> {
    std::fs::read(dir.join(name)).map_err(|e| crate::FuzzError::io(dir.join(name), e))
}

/// Trains a one-epoch attack on 1 x 24 x 24 images (a few seconds) and saves it.
pub fn attack_seeds() -> Result<AttackSeeds> {
    let dev = device();
    let side = 24;
    let n = 8;
    let images: Vec<f32> = (0..n * side * side).map(|i| (i % 7) as f32 / 7.0).collect();
    let train = ImageBatch::unit(images, [n, 1, side, side]).map_err(|e| seed_error("batch", e))?;
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(4)
        .with_progress(false)
        .with_stopping(Stopping::Epochs { epochs: 1 })
        .with_gradient_source(GradientSource::Nes {
            samples: 4,
            sigma: 0.01,
        })
        .check()
        .map_err(|e| seed_error("attack config", e))?;
    let mut oracle = Brightness {
        shape: [1, side, side],
    };
    let mut attack = advclust_gan::train_query_only(&config, &mut oracle, &train, &dev)
        .map_err(|e| seed_error("training the seed attack", e))?;
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    attack
        .evaluate(&mut oracle, &train, &labels)
        .map_err(|e| seed_error("evaluating the seed attack", e))?;
    let dir = ScratchDir::new("seed-attack")?;
    attack
        .save(dir.path())
        .map_err(|e| seed_error("saving the seed attack", e))?;
    let json = read(dir.path(), ATTACK_FILE)?;
    let weights = read(dir.path(), GENERATOR_FILE)?;
    let doc: Value = serde_json::from_slice(&json).map_err(|e| seed_error("attack.json", e))?;
    let mut jsons = vec![("linf.json".to_string(), json.clone())];
    // The same attack under an L2 threat model of another radius (both places agree).
    let mut l2 = doc.clone();
    if let Some(c) = l2.get_mut("config") {
        c["norm"] = Value::from("L2");
        c["epsilon"] = Value::from(1.5);
    }
    if let Some(t) = l2.get_mut("threat_model") {
        set_all(t, "norm", Value::from("L2"));
        set_all(t, "epsilon", Value::from(1.5));
    }
    jsons.push(("l2.json".into(), to_pretty(&l2)?));
    let mut reports = vec![("evaluated.json".to_string(), to_pretty(&doc["report"])?)];
    let mut bare = doc["report"].clone();
    if let Value::Object(m) = &mut bare {
        for v in m.values_mut() {
            if let Some(a) = v.as_array_mut() {
                a.truncate(1);
            }
        }
    }
    reports.push(("short-curves.json".into(), to_pretty(&bare)?));
    Ok(AttackSeeds {
        containers: vec![("linf.bin".into(), parts::join(&[json, weights]))],
        jsons,
        reports,
    })
}

/// Sets `key` to `value` in `v` and every object below it that has the key.
fn set_all(v: &mut Value, key: &str, value: Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key(key) {
                m.insert(key.to_string(), value.clone());
            }
            m.values_mut().for_each(|x| set_all(x, key, value.clone()));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| set_all(x, key, value.clone())),
        _ => {}
    }
}

fn to_pretty(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| seed_error("JSON", e))
}

/// A tiny victim of every kind on 1 x 8 x 8 images, saved as `[model.json, model.bpk]`.
pub fn victim_seeds() -> Result<Seeds> {
    let dev = device();
    let shape = [1, 8, 8];
    let backbone = ResNetConfig::new(1, &[4, 8], 1);
    let models: Vec<(&str, Victim)> = vec![
        (
            "cc",
            CcModel::new(
                &CcConfig::new(shape, 3, &[4, 8]).with_normalization(vec![0.5], vec![0.25]),
                1,
                &dev,
            )
            .map_err(|e| seed_error("cc", e))?
            .into(),
        ),
        (
            "scan",
            ScanModel::new(&scan_config(shape, backbone.clone()), 2, &dev)
                .map_err(|e| seed_error("scan", e))?
                .into(),
        ),
        (
            "nnm",
            NnmModel::new(&scan_config(shape, backbone.clone()), 3, &dev)
                .map_err(|e| seed_error("nnm", e))?
                .into(),
        ),
        (
            "spice",
            SpiceModel::new(
                &SpiceConfig {
                    input_shape: shape,
                    num_clusters: 3,
                    backbone,
                    hidden: 8,
                    num_heads: 2,
                    selected_head: 1,
                    stage: SpiceStage::Semi,
                    mean: vec![0.5],
                    std: vec![0.25],
                },
                4,
                &dev,
            )
            .map_err(|e| seed_error("spice", e))?
            .into(),
        ),
        ("mixture", mixture(shape, MixtureKind::Gmm)?.into()),
        (
            "soft-kmeans",
            mixture(shape, MixtureKind::SoftKmeans)?.into(),
        ),
    ];
    models
        .into_iter()
        .map(|(name, victim)| {
            let dir = ScratchDir::new("seed-victim")?;
            victim
                .save(dir.path())
                .map_err(|e| seed_error("saving a seed victim", e))?;
            let json = read(dir.path(), "model.json")?;
            let weights = read(dir.path(), "model.bpk")?;
            Ok((format!("{name}.bin"), parts::join(&[json, weights])))
        })
        .collect()
}

fn scan_config(shape: [usize; 3], backbone: ResNetConfig) -> ScanConfig {
    ScanConfig {
        input_shape: shape,
        num_clusters: 3,
        backbone,
        num_heads: 2,
        selected_head: 0,
        mean: vec![0.5],
        std: vec![0.25],
    }
}

fn mixture(shape: [usize; 3], kind: MixtureKind) -> Result<MixtureModel> {
    let config = MixtureConfig::new(kind, shape, 3, 2);
    let d = config.input_dim();
    let parts = MixtureParts {
        mean: vec![0.5; d],
        basis: (0..d * 2).map(|i| ((i % 5) as f32 - 2.0) / 10.0).collect(),
        centres: vec![-1.0, 0.0, 0.0, 1.0, 1.0, -1.0],
        precisions: vec![1.0, 2.0, 0.5, 1.0, 4.0, 1.0],
        log_weights: vec![-1.1, -1.1, -1.1],
    };
    MixtureModel::from_parts(&config, parts, &device()).map_err(|e| seed_error("mixture", e))
}
