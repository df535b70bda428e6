//! Every target on its committed corpus: the corpus is there and small, the mutator is
//! deterministic on it, and a short run of each target passes.

use std::time::Duration;

use advclust_fuzz::known::KnownList;
use advclust_fuzz::mutator::Mutator;
use advclust_fuzz::rng::Rng;
use advclust_fuzz::targets::TARGETS;
use advclust_fuzz::{RunOptions, corpus, harness, run_target};

fn corpus_of(name: &str) -> Vec<Vec<u8>> {
    corpus::load(&corpus::default_root().join(name))
        .unwrap_or_else(|e| panic!("corpus {name}: {e}"))
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

#[test]
fn corpus_is_committed_and_small() {
    let mut total = 0;
    for t in TARGETS {
        let c = corpus_of(t.corpus);
        assert!(!c.is_empty(), "{}: empty corpus", t.name);
        total += c.iter().map(Vec::len).sum::<usize>();
    }
    // Shared folders count once per target here: still well under the 2 MB budget.
    assert!(total < 2 << 20, "corpus of {total} bytes");
}

#[test]
fn same_seed_same_inputs_for_every_target() {
    for t in TARGETS {
        let m = Mutator::new(t.layout, &corpus_of(t.corpus), t.max_len);
        for i in 0..40 {
            let a = m.generate(&mut Rng::for_iteration(11, t.name, i));
            let b = m.generate(&mut Rng::for_iteration(11, t.name, i));
            assert_eq!(a, b, "{} iteration {i}", t.name);
            assert!(
                a.len() <= t.max_len.max(1 << 20) + (1 << 20),
                "{}: {} bytes",
                t.name,
                a.len()
            );
        }
    }
}

#[test]
fn every_target_survives_a_short_run() {
    harness::install_panic_hook(false);
    advclust_fuzz::alloc::set_limit(2 << 30);
    let failures = std::env::temp_dir().join(format!("advclust-fuzz-test-{}", std::process::id()));
    let known = KnownList::read(&corpus::default_root().join("../known.txt")).expect("known.txt");
    for t in TARGETS {
        // Model loads are the slow inputs in a debug build: fewer of them.
        let iterations = if t.name.starts_with("saved-attack") {
            60
        } else {
            200
        };
        let opts = RunOptions {
            max_input: Duration::from_secs(10),
            failures_dir: failures.clone(),
            known: known.clone(),
            ..RunOptions::new(iterations, 1)
        };
        let s = run_target(t, &opts, &corpus::default_root()).expect("target starts");
        assert!(s.passed(), "{}: {:?}", t.name, s.failures);
        assert!(
            s.inputs > iterations / 2,
            "{}: only {} inputs ran",
            t.name,
            s.inputs
        );
    }
    let _ = std::fs::remove_dir_all(&failures);
}

/// Every saved regression input (bugs the fuzzer found, since fixed) replays without a failure
/// and quickly, in each target it belongs to.
#[test]
fn every_regression_replays_without_failure() {
    harness::install_panic_hook(false);
    advclust_fuzz::alloc::set_limit(2 << 30);
    let mut replayed = 0;
    for t in TARGETS {
        let dir = corpus::regressions_root().join(t.name);
        if !dir.is_dir() {
            continue;
        }
        let inputs = corpus::load(&dir).expect("regressions load");
        let mut target = (t.build)(&advclust_fuzz::targets::Setup {
            corpus_root: corpus::default_root(),
        })
        .expect("target starts");
        for (path, what) in harness::replay(target.as_mut(), &inputs, Duration::from_secs(2)) {
            assert!(!what.starts_with("FAIL"), "{}: {what}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 8, "only {replayed} regression inputs");
}
