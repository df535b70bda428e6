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

/// Known issue of the attack loader (filed): `TrainedAttack::load` bounds the image shape of
/// `attack.json` below (multiples of 4, at least 24) but not above, and builds a generator of
/// `image_shape[0]` channels: 2^63 panics inside burn (shape overflow), 65,536 takes 0.6 s and
/// 100 MB, larger counts abort on allocation.
pub const KNOWN_ATTACK_CHANNELS: &str =
    "advclust-gan: TrainedAttack::load does not bound image_shape[0] (generator channels)";

/// The channel count an `attack.json` asks for, if it parses that far.
fn attack_channels(json: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    v.get("image_shape")?.get(0)?.as_u64()
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

    fn known_issue(&self, input: &[u8]) -> Option<&'static str> {
        let json = if self.container {
            parts::split(input, 2).swap_remove(0)
        } else {
            input.to_vec()
        };
        attack_channels(&json)
            .filter(|&c| c > 4096)
            .map(|_| KNOWN_ATTACK_CHANNELS)
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

    fn known_issue(&self, input: &[u8]) -> Option<&'static str> {
        let json = parts::split(input, 2).swap_remove(0);
        described_values(&json)
            .filter(|&(values, _)| values > KNOWN_PARAMETERS_FROM)
            .map(|(_, issue)| issue)
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

/// Known issue of the victim loader (filed): `MixtureModel`'s `VictimModel::from_config`
/// allocates its mean, basis and centre vectors from the description before validating it, so
/// a `model.json` with a huge `num_clusters`, `components` or `input_shape` aborts the process
/// (or panics with a capacity overflow).
pub const KNOWN_MIXTURE_ALLOCATES_FIRST: &str =
    "advclust-models: MixtureModel::from_config allocates k x q and d x q before validating";

/// Known issue of the victim loader (filed): `Victim::load` builds and randomly initialises
/// the architecture `model.json` describes before checking the weights file against it, so a
/// description of a few hundred bytes within the size limits (widths up to 16,384, 2^28
/// parameters) costs up to seconds and gigabytes (`widths[0] = 4096`: 0.7 s, 600 MB) before
/// the weights are refused.
pub const KNOWN_VICTIM_BUILDS_FIRST: &str =
    "advclust-models: Victim::load builds the described architecture before checking the weights";

/// Described parameters above which an input is taken for a known issue (8 Mi: ~40 ms).
const KNOWN_PARAMETERS_FROM: u128 = 1 << 23;

/// A rough count of the values the victim loader allocates for the description in `json`
/// before it looks at the weights, and which known issue that falls under.
fn described_values(json: &[u8]) -> Option<(u128, &'static str)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let c = v.get("config")?;
    let int = |x: Option<&serde_json::Value>| x.and_then(|x| x.as_u64()).map_or(0, u128::from);
    let ints = |x: Option<&serde_json::Value>| -> Vec<u128> {
        x.and_then(|x| x.as_array())
            .map(|a| a.iter().map(|x| int(Some(x))).collect())
            .unwrap_or_default()
    };
    let d = ints(c.get("input_shape"))
        .iter()
        .fold(1u128, |a, &x| a.saturating_mul(x));
    let k = int(c.get("num_clusters"));
    if v.get("kind").and_then(|k| k.as_str()) == Some("mixture") {
        let q = int(c.get("components"));
        let values = d
            .saturating_add(d.saturating_mul(q))
            .saturating_add(k.saturating_mul(q).saturating_mul(2))
            .saturating_add(k);
        return Some((values, KNOWN_MIXTURE_ALLOCATES_FIRST));
    }
    // ResNet backbone (3 x 3 convolutions, two per block) and the heads of every kind.
    let b = c.get("backbone");
    let widths = ints(b.and_then(|b| b.get("widths")));
    let blocks = ints(b.and_then(|b| b.get("blocks")));
    let stem = int(b.and_then(|b| b.get("stem_width")));
    let mut total = stem.saturating_mul(9).saturating_mul(d.min(1 << 20));
    let mut prev = stem;
    for (i, &w) in widths.iter().enumerate() {
        let n = blocks.get(i).copied().unwrap_or(1).max(1);
        let block = w.saturating_mul(9).saturating_mul(prev.saturating_add(w));
        total = total.saturating_add(block.saturating_mul(n));
        prev = w;
    }
    let feat = prev;
    let heads = int(c.get("num_heads")).max(1);
    for hidden in [int(c.get("head_hidden")), int(c.get("hidden"))] {
        let head = hidden.saturating_mul(
            feat.saturating_add(k)
                .saturating_add(int(c.get("instance_dim"))),
        );
        total = total.saturating_add(head.saturating_mul(heads));
    }
    total = total.saturating_add(feat.saturating_mul(k).saturating_mul(heads));
    Some((total, KNOWN_VICTIM_BUILDS_FIRST))
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
