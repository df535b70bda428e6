//! `advclust-fuzz`: runs the fuzz targets (see the library's docs).
//!
//! ```text
//! advclust-fuzz --target <name|all> [--iterations N] [--seed S] [--corpus DIR]
//!               [--max-input-ms 1000] [--max-memory-mb 3072] [--known FILE] [--keep-going]
//! advclust-fuzz --target <name> --replay FILE...     # run saved inputs once
//! advclust-fuzz --target <name|all> --regressions    # run the saved regressions once
//! advclust-fuzz --write-corpus [--corpus DIR]        # regenerate the seed corpus
//! advclust-fuzz --list
//! ```
//!
//! Exit status: 0 when every input passed (or failed in a known way), 1 on a failure (its
//! input saved under `--failures`), 2 on a usage or setup error, 3 on a hang.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use advclust_fuzz::known::KnownList;
use advclust_fuzz::targets::{self, TARGETS, TargetInfo};
use advclust_fuzz::{FuzzError, Result, RunOptions, corpus, harness, run_target};
use clap::Parser;

/// Seeded structured fuzzing of advclust's parsers of untrusted bytes.
#[derive(Debug, Parser)]
#[command(name = "advclust-fuzz", version)]
struct Args {
    /// Target name, or `all`.
    #[arg(long, default_value = "all")]
    target: String,
    /// Mutated inputs per target (default: each target's CI count).
    #[arg(long)]
    iterations: Option<u64>,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Corpus root (default: the crate's committed `corpus/`).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where failing inputs are written.
    #[arg(long, default_value = "fuzz-failures")]
    failures: PathBuf,
    /// An input slower than this fails.
    #[arg(long, default_value_t = 1000)]
    max_input_ms: u64,
    /// Live heap limit; an allocation past it fails the input.
    #[arg(long, default_value_t = 3072)]
    max_memory_mb: usize,
    /// Known failures (`<target> <text>` lines): reported but not fatal.
    #[arg(long)]
    known: Option<PathBuf>,
    /// Also run inputs that a target classifies as hitting a known issue.
    #[arg(long)]
    run_known_inputs: bool,
    /// Save every distinct failure and go on, instead of stopping at the first.
    #[arg(long)]
    keep_going: bool,
    /// Print every iteration before running it.
    #[arg(long)]
    trace: bool,
    /// Print every panic message as it happens.
    #[arg(long)]
    verbose: bool,
    /// Run these saved inputs once each, then exit.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Run the saved regression inputs of the target(s) once, then exit.
    #[arg(long)]
    regressions: bool,
    /// Regenerate the seed corpus, then exit.
    #[arg(long)]
    write_corpus: bool,
    /// List the targets with their CI iteration counts, then exit.
    #[arg(long)]
    list: bool,
}

fn selected(name: &str) -> Result<Vec<&'static TargetInfo>> {
    if name == "all" {
        Ok(TARGETS.iter().collect())
    } else {
        name.split(',').map(targets::find).collect()
    }
}

fn replay(
    info: &TargetInfo,
    root: &std::path::Path,
    files: &[PathBuf],
    max_input: Duration,
) -> Result<bool> {
    let inputs = files
        .iter()
        .map(|p| {
            Ok((
                p.clone(),
                std::fs::read(p).map_err(|e| FuzzError::io(p, e))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut target = (info.build)(&targets::Setup {
        corpus_root: root.to_path_buf(),
    })?;
    let mut ok = true;
    for (path, what) in harness::replay(target.as_mut(), &inputs, max_input) {
        ok &= !what.starts_with("FAIL");
        println!("{} {}: {what}", info.name, path.display());
    }
    Ok(ok)
}

fn run(args: Args) -> Result<bool> {
    let root = args.corpus.clone().unwrap_or_else(corpus::default_root);
    if args.list {
        for t in TARGETS {
            println!("{:22} {:>7}  {}", t.name, t.ci_iterations, t.about);
        }
        return Ok(true);
    }
    if args.write_corpus {
        let (files, bytes) = corpus::write_all(&root)?;
        println!(
            "wrote {files} seed files ({bytes} bytes) under {}",
            root.display()
        );
        return Ok(true);
    }
    advclust_fuzz::alloc::set_limit(args.max_memory_mb.saturating_mul(1 << 20));
    harness::install_panic_hook(args.verbose);
    let chosen = selected(&args.target)?;
    let max_input = Duration::from_millis(args.max_input_ms);
    if !args.replay.is_empty() {
        let [one] = chosen.as_slice() else {
            return Err(FuzzError::Usage("--replay needs one --target".into()));
        };
        return replay(one, &root, &args.replay, max_input);
    }
    if args.regressions {
        let mut ok = true;
        for info in chosen {
            let dir = corpus::regressions_root().join(info.name);
            if !dir.is_dir() {
                continue;
            }
            let files: Vec<PathBuf> = corpus::load(&dir)?.into_iter().map(|(p, _)| p).collect();
            ok &= replay(info, &root, &files, max_input)?;
        }
        return Ok(ok);
    }
    let known = match &args.known {
        Some(p) => KnownList::read(p)?,
        None => KnownList::default(),
    };
    let mut all_ok = true;
    for info in chosen {
        let opts = RunOptions {
            iterations: args.iterations.unwrap_or(info.ci_iterations),
            seed: args.seed,
            max_input,
            failures_dir: args.failures.clone(),
            keep_going: args.keep_going,
            trace: args.trace,
            known: known.clone(),
            run_known_inputs: args.run_known_inputs,
        };
        let s = run_target(info, &opts, &root)?;
        let skipped: u64 = s.skipped_known.values().sum();
        println!(
            "{:22} {:>7} inputs in {:>6.1} s, {:>5.1}% accepted, slowest {:>4} ms, {} skipped as known, {}",
            info.name,
            s.inputs,
            s.elapsed.as_secs_f64(),
            100.0 * s.accepted as f64 / s.inputs.max(1) as f64,
            s.slowest.as_millis(),
            skipped,
            if s.passed() { "passed" } else { "FAILED" }
        );
        for (issue, n) in &s.skipped_known {
            println!("    skipped {n} input(s): {issue}");
        }
        if args.verbose {
            println!("    slowest: {}", s.slowest_input);
            let mut top: Vec<_> = s.rejections.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            for (m, n) in top.into_iter().take(12) {
                println!("    {n:>6} rejected: {m}");
            }
        }
        for f in s.failures.iter().filter(|f| f.known) {
            println!("    known: {} ({})", f.kind, f.input.display());
        }
        all_ok &= s.passed();
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("advclust-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}
