//! Saved artefacts: attacks (`attack.json` + `generator.bpk`, loaded by
//! `TrainedAttack::load`), victims (`model.json` + `model.bpk`, loaded by `Victim::load`),
//! and attack reports (`AttackReport` from JSON).
//!
//! A loaded attack or victim is also run once on a small batch when its input is small, so
//! that a description which loads but cannot run (a validation gap) is caught here rather than
//! in the middle of an attack.

use std::path::Path;

use advclust_core::ImageBatch;
use advclust_gan::{ATTACK_FILE, AttackReport, GENERATOR_FILE, TrainedAttack};
use advclust_models::{ClusterModelExt, Victim};
use burn::tensor::Device;

use super::{Outcome, ScratchDir, Setup, Target, TargetInfo, check, device};
use crate::mutator::{Layout, PartKind, parts};
use crate::{FuzzError, Result};

/// Largest `C * H * W` a loaded model is run on.
const MAX_RUN_VALUES: usize = 3 * 64 * 64;

/// Product of dims, `None` past `usize`.
fn volume(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The first input of a corpus folder, split into `n` parts.
fn first_corpus_input(root: &Path, corpus: &str, n: usize) -> Result<Vec<Vec<u8>>> {
    let inputs = crate::corpus::load(&root.join(corpus))?;
    let (_, first) = inputs
        .into_iter()
        .next()
        .ok_or_else(|| FuzzError::Corpus(format!("{corpus}: empty corpus")))?;
    Ok(parts::split(&first, n))
}

/// A directory holding a saved artefact's two files, rewriting each only when it changes.
struct ArtefactDir {
    dir: ScratchDir,
    names: [&'static str; 2],
    written: [Option<Vec<u8>>; 2],
}

impl ArtefactDir {
    fn new(label: &str, names: [&'static str; 2]) -> Result<Self> {
        Ok(ArtefactDir {
            dir: ScratchDir::new(label)?,
            names,
            written: [None, None],
        })
    }

    fn put(&mut self, i: usize, bytes: &[u8]) {
        if self.written[i].as_deref() != Some(bytes) {
            self.dir.write(self.names[i], bytes);
            self.written[i] = Some(bytes.to_vec());
        }
    }
}

/// Loads a saved attack and, when its images are small, perturbs one: the perturbation must
/// stay inside the attack's own threat model.
fn load_attack(dir: &Path, device: &Device) -> Outcome {
    let attack = match TrainedAttack::load(dir, device) {
        Ok(a) => a,
        Err(e) => return Outcome::Rejected(e.to_string()),
    };
    let [c, h, w] = attack.image_shape();
    if volume(&[c, h, w]).is_none_or(|v| v > MAX_RUN_VALUES) {
        return Outcome::Accepted;
    }
    let b = attack.threat_model().value_box();
    let mid = b.min() / 2.0 + b.max() / 2.0;
    let clean = match ImageBatch::new(vec![mid; c * h * w], [1, c, h, w], b) {
        Ok(x) => x,
        Err(e) => return Outcome::Rejected(format!("value box: {e}")),
    };
    let adv = match attack.perturb(&clean) {
        Ok(adv) => adv,
        Err(e) => return Outcome::Rejected(format!("perturb: {e}")),
    };
    let norms = match advclust_core::ThreatModel::norms(&clean, &adv) {
        Ok(n) => n,
        Err(e) => return Outcome::Rejected(format!("norms: {e}")),
    };
    let t = attack.threat_model();
    // The radius, with the float slack of values of the box's magnitude (core's own
    // `contains` allows 1e-5 * max(eps, 1), too little for a box like [0, 65536]).
    let ulp = f32::EPSILON * b.min().abs().max(b.max().abs());
    let (size, values) = match t.norm() {
        advclust_core::NormKind::Linf => (norms[0].linf, 1.0),
        advclust_core::NormKind::L2 => (norms[0].l2, ((c * h * w) as f32).sqrt()),
    };
    let slack = 1e-5 * t.epsilon().max(1.0) + 4.0 * ulp * values;
    check(size <= t.epsilon() + slack, || {
        format!(
            "a loaded attack perturbs by {size} ({:?}), outside its own radius {}",
            t.norm(),
            t.epsilon()
        )
    })
}

struct AttackTarget {
    name: &'static str,
    /// False: the input is the whole `attack.json`; true: an `[attack.json, generator.bpk]`
    /// container.
    container: bool,
    files: ArtefactDir,
    device: Device,
}

impl Target for AttackTarget {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        if self.container {
            let p = parts::split(input, 2);
            self.files.put(0, &p[0]);
            self.files.put(1, &p[1]);
        } else {
            self.files.put(0, input);
        }
        load_attack(self.files.dir.path(), &self.device)
    }
}

fn build_attack(setup: &Setup, name: &'static str, container: bool) -> Result<Box<dyn Target>> {
    let mut files = ArtefactDir::new(name, [ATTACK_FILE, GENERATOR_FILE])?;
    if !container {
        // The JSON target keeps the corpus's valid generator weights.
        let p = first_corpus_input(&setup.corpus_root, "saved-attack", 2)?;
        files.put(1, &p[1]);
    }
    Ok(Box::new(AttackTarget {
        name,
        container,
        files,
        device: device(),
    }))
}

/// `TrainedAttack::load` with a mutated `attack.json` (valid weights).
pub const SAVED_ATTACK_JSON: TargetInfo = TargetInfo {
    name: "saved-attack-json",
    corpus: "saved-attack-json",
    layout: Layout::Json,
    max_len: 1 << 20,
    ci_iterations: 30_000,
    about: "a saved attack's attack.json (configuration, threat model, report, shape)",
    build: |s: &Setup| build_attack(s, "saved-attack-json", false),
};

/// `TrainedAttack::load` with a mutated `generator.bpk` (valid JSON).
pub const SAVED_ATTACK_WEIGHTS: TargetInfo = TargetInfo {
    name: "saved-attack-weights",
    corpus: "saved-attack",
    layout: Layout::Parts(&[PartKind::Fixed, PartKind::Bytes]),
    max_len: 1 << 20,
    ci_iterations: 15_000,
    about: "a saved attack's generator.bpk (burnpack header, CBOR metadata, tensors)",
    build: |s: &Setup| build_attack(s, "saved-attack-weights", true),
};

struct VictimTarget {
    name: &'static str,
    files: ArtefactDir,
    device: Device,
}

impl Target for VictimTarget {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = parts::split(input, 2);
        self.files.put(0, &p[0]);
        self.files.put(1, &p[1]);
        let victim = match Victim::load(self.files.dir.path(), &self.device) {
            Ok(v) => v,
            Err(e) => return Outcome::Rejected(e.to_string()),
        };
        let shape = advclust_core::DifferentiableClusterModel::input_shape(&victim);
        let k = advclust_core::DifferentiableClusterModel::num_clusters(&victim);
        let Some(d) = volume(&shape).filter(|&d| d <= MAX_RUN_VALUES) else {
            return Outcome::Accepted;
        };
        let [c, h, w] = shape;
        let batch = match ImageBatch::unit(vec![0.5; 2 * d], [2, c, h, w]) {
            Ok(b) => b,
            Err(e) => return Outcome::Rejected(format!("batch: {e}")),
        };
        match victim.memberships_host(&batch, 256, &self.device) {
            Ok(m) => check(m.len() == 2 * k, || {
                format!("memberships of {} values for 2 images and k = {k}", m.len())
            }),
            Err(e) => Outcome::Rejected(format!("memberships: {e}")),
        }
    }
}

fn build_victim(name: &'static str) -> Result<Box<dyn Target>> {
    Ok(Box::new(VictimTarget {
        name,
        files: ArtefactDir::new(name, ["model.json", "model.bpk"])?,
        device: device(),
    }))
}

/// `Victim::load` with a mutated `model.json`.
pub const SAVED_VICTIM_JSON: TargetInfo = TargetInfo {
    name: "saved-victim-json",
    corpus: "saved-victim",
    layout: Layout::Parts(&[PartKind::Json, PartKind::Fixed]),
    max_len: 1 << 18,
    ci_iterations: 120_000,
    about: "a saved victim's model.json (kind, architecture, normalisation), every kind",
    build: |_: &Setup| build_victim("saved-victim-json"),
};

/// `Victim::load` with a mutated `model.bpk`.
pub const SAVED_VICTIM_WEIGHTS: TargetInfo = TargetInfo {
    name: "saved-victim-weights",
    corpus: "saved-victim",
    layout: Layout::Parts(&[PartKind::Fixed, PartKind::Bytes]),
    max_len: 1 << 18,
    ci_iterations: 90_000,
    about: "a saved victim's model.bpk, every kind",
    build: |_: &Setup| build_victim("saved-victim-weights"),
};

struct ReportTarget;

impl Target for ReportTarget {
    fn name(&self) -> &'static str {
        "report"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        match serde_json::from_slice::<AttackReport>(input) {
            // What was read must write back and read again to the same report.
            Ok(r) => {
                let again = serde_json::to_vec(&r)
                    .map_err(|e| e.to_string())
                    .and_then(|j| {
                        serde_json::from_slice::<AttackReport>(&j).map_err(|e| e.to_string())
                    });
                match again {
                    Ok(back) => check(back == r, || "a report changes on a round trip".into()),
                    Err(e) => Outcome::Finding(format!(
                        "a report read from JSON does not round-trip: {e}"
                    )),
                }
            }
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// `AttackReport` deserialisation.
pub const REPORT: TargetInfo = TargetInfo {
    name: "report",
    corpus: "report",
    layout: Layout::Json,
    max_len: 1 << 20,
    ci_iterations: 180_000,
    about: "attack reports (curves, query counts, norms, scores) from JSON",
    build: |_: &Setup| Ok(Box::new(ReportTarget)),
};
