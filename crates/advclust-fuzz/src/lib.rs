//! # advclust-fuzz
//!
//! Fuzzing of every advclust parser of untrusted bytes, on stable Rust and with no engine
//! beyond this crate: IDX images and labels (raw, gzipped, multi-member), the CIFAR-10/100
//! and STL-10 binaries, image folders (PNG, JPEG, PGM/PPM, BMP), saved attacks
//! (`attack.json`, `generator.bpk`), saved victims of every kind (`model.json`, `model.bpk`),
//! attack reports, and the Open Inference Protocol bodies on both sides of the wire (requests
//! to `advclust-serve`, answers and metadata read by `advclust-remote`'s client).
//!
//! The idea: coverage-guided fuzzing needs nightly (`cargo-fuzz`), but most bugs of a parser
//! of a *structured* format sit behind its header fields and its JSON schema, which a
//! structure-aware mutator reaches directly. So each [target](targets) starts from a small
//! committed seed corpus of valid inputs (made by the owning crates' own encoders and savers,
//! see [`corpus`]) and, for a fixed number of iterations, picks a seed and applies a short
//! stack of seeded [mutations](mutator): bit flips, interesting bytes and 16/32/64-bit integers
//! (big and little endian) written over header positions, arithmetic, truncation, extension,
//! insertion, deletion, duplication, splicing with another seed; for JSON, replacing nodes with
//! interesting numbers (`-1`, `1e30`, `1e999`, `NaN`, `2^64`), other types or other nodes,
//! removing and duplicating keys, blowing arrays up, nesting deeply. Inputs made of several
//! files (a model's JSON and weights, a header and a body) travel in one
//! [container](mutator::parts) so that each failing input is a single file.
//!
//! Every iteration's input is a function of the run seed, the target name and the iteration
//! number alone ([`rng::Rng::for_iteration`]): same seed, same inputs, and one failure can be
//! replayed without the rest. The [harness] runs each input under `catch_unwind` with a panic
//! hook that also sees panics of other threads (a server's workers), times it (slower than the
//! limit, twice, fails), and a watchdog ends the process on a hang. The global allocator
//! ([`alloc::LimitAlloc`]) refuses allocations past a live-bytes limit and saves the input
//! first, so a parser that trusts a size field is caught with its input even when it aborts.
//! Failures are written to `fuzz-failures/<target>-<iteration>.bin`; bugs found are kept under
//! `regressions/<target>/` and known ones are listed in `known.txt`.
//!
//! ```no_run
//! use advclust_fuzz::{RunOptions, run_target, targets};
//!
//! let info = targets::find("idx-images")?;
//! let summary = run_target(info, &RunOptions::new(1_000, 42), &advclust_fuzz::corpus::default_root())?;
//! assert!(summary.passed());
//! # Ok::<(), advclust_fuzz::FuzzError>(())
//! ```

#![warn(missing_docs)]

pub mod alloc;
pub mod corpus;
mod error;
pub mod harness;
pub mod known;
pub mod mutator;
pub mod rng;
pub mod targets;

use std::path::Path;

pub use error::{FuzzError, Result};
pub use harness::{Failure, FailureKind, RunOptions, Summary};

#[global_allocator]
static GLOBAL: alloc::LimitAlloc = alloc::LimitAlloc;

/// Serialises the unit tests that use the process-wide allocator limit and panic counters.
#[cfg(test)]
pub(crate) static GLOBAL_STATE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Loads `info`'s corpus from `corpus_root`, builds the target, and fuzzes it with `opts`.
pub fn run_target(
    info: &targets::TargetInfo,
    opts: &RunOptions,
    corpus_root: &Path,
) -> Result<Summary> {
    let corpus: Vec<Vec<u8>> = corpus::load(&corpus_root.join(info.corpus))?
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    if corpus.is_empty() {
        return Err(FuzzError::Corpus(format!(
            "{}: no seed in {}",
            info.name,
            corpus_root.join(info.corpus).display()
        )));
    }
    let mutator = mutator::Mutator::new(info.layout, &corpus, info.max_len);
    let mut target = (info.build)(&targets::Setup {
        corpus_root: corpus_root.to_path_buf(),
    })?;
    harness::fuzz(target.as_mut(), &corpus, &mutator, opts)
}
