//! ACC at large k: `acc` and the assignment solver alone, k = 10 ... 8,000.
//!
//! n = 20 k samples. True labels are uniform in `0..k`; each prediction is a
//! fixed random permutation of its true label with probability `KEEP`% (50%,
//! or `ACC_BENCH_KEEP`) and uniform otherwise, so every class has about 20 samples spread over a few
//! clusters. Labels come from the SplitMix64 formula shared with
//! `scipy_large_k.py`, which times `scipy.optimize.linear_sum_assignment` on
//! the same contingency matrices and checks the optimal totals printed here:
//!
//! ```sh
//! cargo bench -p advclust-metrics --bench acc_large_k | python3 crates/advclust-metrics/benches/scipy_large_k.py
//! ```
//!
//! Prints one line per k: the optimal total, then the median and minimum wall
//! time in seconds of `acc` (contingency table plus matching) and of
//! `max_weight_matching` on the non-zero cells.

use std::hint::black_box;
use std::time::{Duration, Instant};

use advclust_metrics::{acc, max_weight_matching};

const KS: [u64; 6] = [10, 100, 1_000, 2_000, 4_000, 8_000];
const SAMPLES_PER_CLASS: u64 = 20;
/// Default percentage of predictions that keep their (permuted) true label;
/// the environment variable `ACC_BENCH_KEEP` overrides it (0 to 100).
const KEEP: u64 = 50;

fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, i: u64) -> u64 {
    splitmix64(seed.wrapping_mul(1 << 32).wrapping_add(i))
}

/// True and predicted labels for `k` classes (see the module docs).
fn labels(k: u64, keep: u64) -> (Vec<usize>, Vec<usize>) {
    let n = SAMPLES_PER_CLASS * k;
    // Fisher-Yates with the seed-4 stream.
    let mut perm: Vec<u64> = (0..k).collect();
    for i in (1..k).rev() {
        perm.swap(i as usize, (hash(4, i) % (i + 1)) as usize);
    }
    let truth: Vec<u64> = (0..n).map(|i| hash(1, i) % k).collect();
    let pred = (0..n)
        .map(|i| {
            if hash(3, i) % 100 < keep {
                perm[truth[i as usize] as usize]
            } else {
                hash(2, i) % k
            }
        })
        .map(|x| x as usize)
        .collect();
    (truth.into_iter().map(|x| x as usize).collect(), pred)
}

/// Non-zero `(class, cluster, count)` cells of the contingency table.
fn cells(truth: &[usize], pred: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = truth.iter().copied().zip(pred.iter().copied()).collect();
    pairs.sort_unstable();
    let mut cells: Vec<(usize, usize, usize)> = Vec::new();
    for (r, c) in pairs {
        match cells.last_mut() {
            Some(last) if last.0 == r && last.1 == c => last.2 += 1,
            _ => cells.push((r, c, 1)),
        }
    }
    cells
}

/// Median and minimum seconds per call over at least 7 samples and at least
/// 1 s in all (at most 51 samples), after a warm-up. A sample repeats the call
/// until it lasts at least 10 ms, so that tiny inputs are timed accurately.
fn time<R>(mut f: impl FnMut() -> R) -> (f64, f64) {
    let start = Instant::now();
    black_box(f());
    let once = start.elapsed().as_secs_f64().max(1e-9);
    let calls = ((0.01 / once).ceil() as usize).clamp(1, 1_000_000);
    let mut times = Vec::new();
    let begin = Instant::now();
    while times.len() < 7 || (begin.elapsed() < Duration::from_secs(1) && times.len() < 51) {
        let start = Instant::now();
        for _ in 0..calls {
            black_box(f());
        }
        times.push(start.elapsed().as_secs_f64() / calls as f64);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects one k.
    let filter: Option<u64> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    let keep = match std::env::var("ACC_BENCH_KEEP") {
        Ok(value) => match value.parse() {
            Ok(keep) if keep <= 100 => keep,
            _ => panic!("ACC_BENCH_KEEP must be an integer in 0..=100, not {value:?}"),
        },
        Err(_) => KEEP,
    };
    println!("# n = {SAMPLES_PER_CLASS} k, keep {keep}%; seconds: median min");
    for k in KS.into_iter().filter(|&k| filter.is_none_or(|f| f == k)) {
        let (truth, pred) = labels(k, keep);
        let cells = cells(&truth, &pred);
        let Ok(matching) = max_weight_matching(&cells) else {
            panic!("benchmark weights are small");
        };
        let Ok(score) = acc(&truth, &pred) else {
            panic!("benchmark labels are valid");
        };
        assert_eq!(score, matching.total as f64 / truth.len() as f64);
        let (acc_median, acc_min) = time(|| acc(black_box(&truth), black_box(&pred)));
        let (lsa_median, lsa_min) = time(|| max_weight_matching(black_box(&cells)));
        println!(
            "k {k} n {} cells {} total {} acc {acc_median:.3e} {acc_min:.3e} matching {lsa_median:.3e} {lsa_min:.3e}",
            truth.len(),
            cells.len(),
            matching.total,
        );
    }
}
