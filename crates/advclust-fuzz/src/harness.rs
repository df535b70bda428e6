//! The fuzz loop: generate an input, run the target on it under `catch_unwind`, time it, and
//! turn panics (in any thread), slow inputs, refused allocations and target-level findings
//! into [`Failure`]s with the input saved to disk.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::alloc;
use crate::known::KnownList;
use crate::mutator::Mutator;
use crate::rng::Rng;
use crate::targets::{Outcome, Target};
use crate::{FuzzError, Result};

/// Settings of one fuzz run of one target.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Number of mutated inputs.
    pub iterations: u64,
    /// Seed of the run (with the target name and the iteration, it fixes each input).
    pub seed: u64,
    /// An input slower than this fails (after one confirming rerun).
    pub max_input: Duration,
    /// Where failing inputs are written.
    pub failures_dir: PathBuf,
    /// Keep going after a failure (saving one input per distinct failure) instead of stopping.
    pub keep_going: bool,
    /// Print each iteration before running it.
    pub trace: bool,
    /// Known failures: reported, saved, but not fatal.
    pub known: KnownList,
    /// Also run the inputs a target classifies as hitting a known issue.
    pub run_known_inputs: bool,
}

impl RunOptions {
    /// `iterations` inputs from `seed`, 1 s per input, failures into `fuzz-failures/`.
    pub fn new(iterations: u64, seed: u64) -> Self {
        RunOptions {
            iterations,
            seed,
            max_input: Duration::from_secs(1),
            failures_dir: PathBuf::from("fuzz-failures"),
            keep_going: false,
            trace: false,
            known: KnownList::default(),
            run_known_inputs: false,
        }
    }
}

/// What went wrong with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// A panic, with its message and location.
    Panic(String),
    /// Slower than the limit (milliseconds taken, twice).
    Slow(u128),
    /// An allocation past the memory limit was refused (its size).
    Memory(usize),
    /// The target's own check failed (e.g. a server answered 500).
    Finding(String),
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Panic(m) => write!(f, "panic: {m}"),
            FailureKind::Slow(ms) => write!(f, "slow: {ms} ms"),
            FailureKind::Memory(n) => write!(f, "memory: refused an allocation of {n} bytes"),
            FailureKind::Finding(m) => write!(f, "finding: {m}"),
        }
    }
}

/// A failing input.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Target name.
    pub target: String,
    /// Iteration (`None` for a corpus or replayed input).
    pub iteration: Option<u64>,
    /// What happened.
    pub kind: FailureKind,
    /// Where the input was saved.
    pub input: PathBuf,
    /// True when it matched the known list.
    pub known: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Inputs run (corpus and mutants).
    pub inputs: u64,
    /// Inputs the parser accepted.
    pub accepted: u64,
    /// Inputs skipped as hitting a known issue, by issue.
    pub skipped_known: BTreeMap<&'static str, u64>,
    /// Slowest input.
    pub slowest: Duration,
    /// The slowest input's file name.
    pub slowest_input: String,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Failures (only the first, unless `keep_going`).
    pub failures: Vec<Failure>,
    /// How often each kind of rejection happened (messages cut short, digits removed): how
    /// deep the mutants get.
    pub rejections: BTreeMap<String, u64>,
}

impl Summary {
    /// True when no failure outside the known list happened.
    pub fn passed(&self) -> bool {
        self.failures.iter().all(|f| f.known)
    }
}

static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the panic hook with one that records every panic, in any thread (a server's
/// worker too), for the loop to pick up; prints them only when `verbose`.
pub fn install_panic_hook(verbose: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let msg = match (
            info.payload().downcast_ref::<&str>(),
            info.payload().downcast_ref::<String>(),
        ) {
            (Some(s), _) => s.to_string(),
            (_, Some(s)) => s.clone(),
            _ => "(non-string panic payload)".to_string(),
        };
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let text = format!("{msg}{loc} (thread {})", thread.name().unwrap_or("unnamed"));
        if verbose {
            eprintln!(
                "panic: {text}\n{}",
                std::backtrace::Backtrace::force_capture()
            );
        }
        *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
        PANICS.fetch_add(1, Ordering::SeqCst);
    }));
}

/// Milliseconds since [`epoch`] at which the input being run started (0: none running).
static RUNNING_SINCE: AtomicU64 = AtomicU64::new(0);

/// The target the watchdog names, and its limit.
static WATCHED: Mutex<&'static str> = Mutex::new("");
static WATCH_LIMIT_MS: AtomicU64 = AtomicU64::new(u64::MAX);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Starts (once) a thread that ends the process when one input runs past `limit`: a parser
/// stuck in a loop never returns to be timed. The input is saved first.
fn start_watchdog(name: &'static str, limit: Duration) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    epoch();
    *WATCHED.lock().unwrap_or_else(|p| p.into_inner()) = name;
    WATCH_LIMIT_MS.store(limit.as_millis() as u64, Ordering::SeqCst);
    STARTED.call_once(|| {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let since = RUNNING_SINCE.load(Ordering::SeqCst);
                if since == 0 {
                    continue;
                }
                let now = epoch().elapsed().as_millis() as u64;
                let limit = WATCH_LIMIT_MS.load(Ordering::SeqCst);
                if now.saturating_sub(since) > limit {
                    let name = *WATCHED.lock().unwrap_or_else(|p| p.into_inner());
                    let saved = alloc::save_armed()
                        .map_or_else(|| "(not saved)".into(), |p| p.display().to_string());
                    eprintln!(
                        "FAIL {name}: hang: one input ran past {limit} ms\n  input saved to {saved}"
                    );
                    std::process::exit(3);
                }
            }
        });
    });
}

/// Runs `target` once on `input`: outcome or failure, and the time taken.
fn run_one(target: &mut dyn Target, input: &[u8]) -> (Result<Outcome, FailureKind>, Duration) {
    let panics_before = PANICS.load(Ordering::SeqCst);
    alloc::take_limit_hit();
    let t0 = Instant::now();
    RUNNING_SINCE.store(
        (epoch().elapsed().as_millis() as u64).max(1),
        Ordering::SeqCst,
    );
    let r = catch_unwind(AssertUnwindSafe(|| target.run(input)));
    RUNNING_SINCE.store(0, Ordering::SeqCst);
    let dt = t0.elapsed();
    let last_panic = || {
        LAST_PANIC
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "(no message)".into())
    };
    let refused = alloc::take_limit_hit();
    let result = if refused > 0 {
        Err(FailureKind::Memory(refused))
    } else if r.is_err() || PANICS.load(Ordering::SeqCst) != panics_before {
        Err(FailureKind::Panic(last_panic()))
    } else {
        match r {
            Ok(Outcome::Finding(m)) => Err(FailureKind::Finding(m)),
            Ok(o) => Ok(o),
            Err(_) => Err(FailureKind::Panic(last_panic())),
        }
    };
    (result, dt)
}

/// A rejection message without its digits, long ones cut in the middle (the start names the
/// file, the end says what was wrong).
fn rejection_key(m: &str) -> String {
    let c: Vec<char> = m.chars().filter(|c| !c.is_ascii_digit()).collect();
    if c.len() <= 120 {
        return c.into_iter().collect();
    }
    let mut k: String = c[..40].iter().collect();
    k.push_str(" ... ");
    k.extend(&c[c.len() - 75..]);
    k
}

/// A failure's signature for de-duplication: its kind and message with digits removed.
fn signature(kind: &FailureKind) -> String {
    let s = match kind {
        FailureKind::Slow(_) => "slow".to_string(),
        FailureKind::Memory(_) => "memory".to_string(),
        other => other.to_string(),
    };
    s.chars()
        .filter(|c| !c.is_ascii_digit())
        .take(200)
        .collect()
}

fn save(dir: &Path, name: &str, input: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| FuzzError::io(dir, e))?;
    let path = dir.join(name);
    std::fs::write(&path, input).map_err(|e| FuzzError::io(&path, e))?;
    Ok(path)
}

/// Fuzzes `target`: first every corpus input as is, then `opts.iterations` mutants.
pub fn fuzz(
    target: &mut dyn Target,
    corpus: &[Vec<u8>],
    mutator: &Mutator,
    opts: &RunOptions,
) -> Result<Summary> {
    let name = target.name();
    let start = Instant::now();
    let mut summary = Summary::default();
    let mut seen = BTreeMap::<String, ()>::new();
    start_watchdog(name, (opts.max_input * 10).max(Duration::from_secs(10)));
    let total = corpus.len() as u64 + opts.iterations;
    for step in 0..total {
        let (iteration, input) = if step < corpus.len() as u64 {
            (None, corpus[step as usize].clone())
        } else {
            let i = step - corpus.len() as u64;
            (
                Some(i),
                mutator.generate(&mut Rng::for_iteration(opts.seed, name, i)),
            )
        };
        let label = match iteration {
            Some(i) => format!("{name}-{i}.bin"),
            None => format!("{name}-corpus{step}.bin"),
        };
        if !opts.run_known_inputs
            && let Some(issue) = target.known_issue(&input)
        {
            *summary.skipped_known.entry(issue).or_default() += 1;
            continue;
        }
        if opts.trace {
            eprintln!(
                "trace: {name} step {step} iteration {iteration:?} seed {} ({} bytes)",
                opts.seed,
                input.len()
            );
        }
        alloc::arm(Some((opts.failures_dir.join(&label), input.clone())));
        let (mut result, mut dt) = run_one(target, &input);
        if result.is_ok() && dt > opts.max_input {
            // One rerun, so that a stall of the machine is not taken for a slow parser.
            let (again, dt2) = run_one(target, &input);
            result = again;
            dt = dt.min(dt2);
            if result.is_ok() && dt > opts.max_input {
                result = Err(FailureKind::Slow(dt.as_millis()));
            }
        }
        alloc::arm(None);
        summary.inputs += 1;
        if dt > summary.slowest {
            summary.slowest = dt;
            summary.slowest_input = label.clone();
        }
        match result {
            Ok(Outcome::Accepted) => summary.accepted += 1,
            Ok(Outcome::Rejected(m)) => {
                let key = rejection_key(&m);
                if summary.rejections.len() < 1000 || summary.rejections.contains_key(&key) {
                    *summary.rejections.entry(key).or_default() += 1;
                }
            }
            Ok(Outcome::Finding(_)) => {}
            Err(kind) => {
                let known = opts.known.matches(name, &kind.to_string());
                let sig = signature(&kind);
                let fresh = seen.insert(sig, ()).is_none();
                if fresh {
                    let path = save(&opts.failures_dir, &label, &input)?;
                    eprintln!(
                        "{} {name} iteration {} seed {}: {kind}\n  input saved to {}\n  replay: \
                         cargo run --release -p advclust-fuzz -- --target {name} --replay {}",
                        if known { "KNOWN" } else { "FAIL" },
                        iteration.map_or_else(|| format!("corpus#{step}"), |i| i.to_string()),
                        opts.seed,
                        path.display(),
                        path.display()
                    );
                    summary.failures.push(Failure {
                        target: name.to_string(),
                        iteration,
                        kind,
                        input: path,
                        known,
                    });
                }
                if !known && !opts.keep_going {
                    break;
                }
            }
        }
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Runs `target` on each of `inputs` once (replay of saved failures or regressions); an input
/// slower than `max_input` fails like in a run.
pub fn replay(
    target: &mut dyn Target,
    inputs: &[(PathBuf, Vec<u8>)],
    max_input: Duration,
) -> Vec<(PathBuf, String)> {
    inputs
        .iter()
        .map(|(path, input)| {
            let (r, dt) = run_one(target, input);
            let ms = dt.as_millis();
            let what = match r {
                Ok(_) if dt > max_input => format!("FAIL slow: {ms} ms"),
                Ok(Outcome::Accepted) => format!("accepted ({ms} ms)"),
                Ok(Outcome::Rejected(e)) => format!("rejected ({ms} ms): {e}"),
                Ok(Outcome::Finding(m)) | Err(FailureKind::Finding(m)) => {
                    format!("FAIL finding: {m}")
                }
                Err(k) => format!("FAIL {k} ({ms} ms)"),
            };
            (path.clone(), what)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutator::Layout;

    /// Panics on inputs starting with 0xAA, is slow on 0x55, finds something on 0x11.
    struct Picky;

    impl Target for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }

        fn run(&mut self, input: &[u8]) -> Outcome {
            match input.first() {
                Some(0xaa) => panic!("picky panics"),
                Some(0x55) => {
                    std::thread::sleep(Duration::from_millis(30));
                    Outcome::Accepted
                }
                Some(0x11) => Outcome::Finding("picky found".into()),
                _ => Outcome::Rejected("no".into()),
            }
        }

        fn known_issue(&self, input: &[u8]) -> Option<&'static str> {
            (input.first() == Some(&0x22)).then_some("picky known")
        }
    }

    #[test]
    fn failures_are_caught_saved_and_matched_against_the_known_list() {
        let _serial = crate::GLOBAL_STATE_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        install_panic_hook(false);
        let dir =
            std::env::temp_dir().join(format!("advclust-fuzz-harness-{}", std::process::id()));
        let corpus: Vec<Vec<u8>> = vec![vec![0], vec![0x22], vec![0xaa], vec![0x55], vec![0x11]];
        let mutator = Mutator::new(Layout::Bytes, &corpus, 64);
        let opts = RunOptions {
            max_input: Duration::from_millis(10),
            failures_dir: dir.clone(),
            keep_going: true,
            known: KnownList::parse("picky picky panics").unwrap(),
            ..RunOptions::new(0, 0)
        };
        let s = fuzz(&mut Picky, &corpus, &mutator, &opts).unwrap();
        assert_eq!(s.inputs, 4, "the known-issue input is skipped");
        assert_eq!(s.skipped_known.get("picky known"), Some(&1));
        let kinds: Vec<&FailureKind> = s.failures.iter().map(|f| &f.kind).collect();
        assert!(matches!(kinds[0], FailureKind::Panic(m) if m.contains("picky panics")));
        assert!(matches!(kinds[1], FailureKind::Slow(ms) if *ms >= 30));
        assert_eq!(kinds[2], &FailureKind::Finding("picky found".into()));
        assert!(s.failures[0].known && !s.failures[1].known);
        assert!(!s.passed());
        for f in &s.failures {
            assert_eq!(std::fs::read(&f.input).unwrap().len(), 1);
        }
        let stop_at_first = RunOptions {
            keep_going: false,
            known: KnownList::default(),
            ..opts
        };
        let s = fuzz(&mut Picky, &corpus, &mutator, &stop_at_first).unwrap();
        assert_eq!(s.failures.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
