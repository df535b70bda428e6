//! n = 10^6 samples, k = 100 classes and clusters: NMI, ARI, ACC.
//!
//! Labels come from the same SplitMix64 formula as `sklearn_metrics.py`, so
//! both benchmarks score identical inputs.

use std::hint::black_box;
use std::time::Duration;

use advclust_metrics::{acc, ari, clustering_scores, nmi};
use criterion::{Criterion, criterion_group, criterion_main};

const N: u64 = 1_000_000;
const K: u64 = 100;

fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, i: u64) -> u64 {
    splitmix64(seed.wrapping_mul(1 << 32).wrapping_add(i))
}

/// True labels uniform in `0..K`; predictions keep the true label with
/// probability 1/2 and are uniform otherwise.
fn labels() -> (Vec<usize>, Vec<usize>) {
    let truth: Vec<u64> = (0..N).map(|i| hash(1, i) % K).collect();
    let pred = (0..N)
        .map(|i| {
            if hash(3, i) % 100 < 50 {
                truth[i as usize] % K
            } else {
                hash(2, i) % K
            }
        })
        .map(|x| x as usize)
        .collect();
    (truth.into_iter().map(|x| x as usize).collect(), pred)
}

fn bench(c: &mut Criterion) {
    let (truth, pred) = labels();
    let mut group = c.benchmark_group("n1e6_k100");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("nmi", |b| {
        b.iter(|| nmi(black_box(&truth), black_box(&pred)))
    });
    group.bench_function("ari", |b| {
        b.iter(|| ari(black_box(&truth), black_box(&pred)))
    });
    group.bench_function("acc", |b| {
        b.iter(|| acc(black_box(&truth), black_box(&pred)))
    });
    group.bench_function("nmi+ari+acc", |b| {
        b.iter(|| {
            let (t, p) = (black_box(&truth), black_box(&pred));
            (nmi(t, p), ari(t, p), acc(t, p))
        })
    });
    group.bench_function("clustering_scores", |b| {
        b.iter(|| clustering_scores(black_box(&truth), black_box(&pred)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
