//! The fuzz targets: one per parser of untrusted bytes, each calling only public APIs of the
//! crate that owns the parser, with paths into a per-process scratch directory where the API
//! reads files.

pub mod data;
pub mod defense;
pub mod http;
pub mod http_wire;
pub mod images;
pub mod saved;
pub mod saved_seeds;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mutator::Layout;
use crate::{FuzzError, Result};

/// What a target made of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The parser accepted it (and the target's checks of the result passed).
    Accepted,
    /// The parser refused it with an error: the expected answer to most mutants.
    Rejected(String),
    /// Something a parser must never do short of panicking: an answer that breaks an
    /// invariant (a dataset whose labels exceed its classes, a server answering 500).
    Finding(String),
}

impl Outcome {
    /// `Accepted` for `Ok`, `Rejected` with the error's text for `Err`.
    pub fn of<T, E: Display>(r: &std::result::Result<T, E>) -> Self {
        match r {
            Ok(_) => Outcome::Accepted,
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }

    /// The first finding of `self` and `other`, else accepted if either accepted.
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (f @ Outcome::Finding(_), _) | (_, f @ Outcome::Finding(_)) => f,
            (Outcome::Accepted, _) | (_, Outcome::Accepted) => Outcome::Accepted,
            (r, _) => r,
        }
    }
}

/// A fuzz target, ready to run inputs.
pub trait Target {
    /// Its name.
    fn name(&self) -> &'static str;
    /// Runs the parser on one input. Panics are caught by the harness.
    fn run(&mut self, input: &[u8]) -> Outcome;
    /// Names the known, filed issue an input would hit, so that the harness can skip it
    /// (inputs that abort the process, which no known list can excuse once run).
    fn known_issue(&self, _input: &[u8]) -> Option<&'static str> {
        None
    }
}

/// What a target needs to start.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The corpus root (`crates/advclust-fuzz/corpus`), for targets that keep a fixed part.
    pub corpus_root: PathBuf,
}

/// A target's static description and constructor.
#[derive(Debug, Clone, Copy)]
pub struct TargetInfo {
    /// Name, as given to `--target`.
    pub name: &'static str,
    /// Corpus folder under the corpus root (shared by targets that mutate different parts
    /// of the same inputs).
    pub corpus: &'static str,
    /// How inputs are mutated.
    pub layout: Layout,
    /// Largest mutant, in bytes (beyond the largest corpus input).
    pub max_len: usize,
    /// Iterations CI runs (10 to 20 s each in release on 2 cores).
    pub ci_iterations: u64,
    /// What it fuzzes.
    pub about: &'static str,
    /// Builds the target.
    pub build: fn(&Setup) -> Result<Box<dyn Target>>,
}

/// Every target, in CI order.
pub const TARGETS: &[TargetInfo] = &[
    data::IDX_IMAGES,
    data::IDX_LABELS,
    data::IDX_MNIST_GZ,
    data::CIFAR,
    data::STL,
    images::IMAGE_FOLDER,
    saved::SAVED_ATTACK_JSON,
    saved::SAVED_ATTACK_WEIGHTS,
    saved::SAVED_VICTIM_JSON,
    saved::SAVED_VICTIM_WEIGHTS,
    saved::REPORT,
    defense::SSD_DETECTOR,
    http::HTTP_INFER_REQUEST,
    http::HTTP_INFER_RESPONSE,
    http::HTTP_MODEL_METADATA,
];

/// The target called `name`.
pub fn find(name: &str) -> Result<&'static TargetInfo> {
    TARGETS.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        FuzzError::Usage(format!(
            "unknown target {name:?} (known: {})",
            names.join(", ")
        ))
    })
}

/// A directory under the system temporary directory, unique to this process and call, removed
/// (with its contents) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `advclust-fuzz-<pid>-<n>-<label>` in the first existing, writable directory of
    /// `ADVCLUST_FUZZ_TMP`, `/dev/shm` (memory: the targets write a file or two per input) and
    /// the temporary directory.
    pub fn new(label: &str) -> Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("advclust-fuzz-{}-{n}-{label}", std::process::id());
        let mut bases: Vec<PathBuf> = std::env::var_os("ADVCLUST_FUZZ_TMP")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        bases.extend([PathBuf::from("/dev/shm"), std::env::temp_dir()]);
        let mut last = None;
        for base in bases.into_iter().filter(|b| b.is_dir()) {
            let path = base.join(&name);
            let _ = std::fs::remove_dir_all(&path);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(e) => last = Some(FuzzError::io(&path, e)),
            }
        }
        Err(last.unwrap_or_else(|| FuzzError::Setup("no scratch directory".into())))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to `name` inside it; returns the file's path. The harness catches the
    /// panic of a failed write (a full disk is no parser's bug, but stops the run).
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).expect("scratch directory");
        }
        std::fs::write(&p, bytes).expect("scratch file");
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The CPU device every model target loads onto.
pub fn device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// A finding unless `ok`.
pub fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok {
        Outcome::Accepted
    } else {
        Outcome::Finding(what())
    }
}
