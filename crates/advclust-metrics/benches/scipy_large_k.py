#!/usr/bin/env python3
"""Time scipy.optimize.linear_sum_assignment on the ACC matrices of acc_large_k.rs.

Regenerates the labels of benches/acc_large_k.rs (same SplitMix64 formula,
n = 20 k, KEEP percent of predictions a fixed permutation of the true label,
the rest uniform), builds the dense k x k contingency matrix and times
linear_sum_assignment(table, maximize=True) on it: median and minimum time
per call over at least REPEATS samples (each sample repeats the call until it
lasts 10 ms) after one warm-up run. Reference only: Python is never a
runtime dependency of the crate.

It also times ACC the way scikit-learn users compute it (and as
sklearn_metrics.py does): contingency_matrix from the labels, then
linear_sum_assignment. ACC_BENCH_KEEP (default 50) sets KEEP, as for the Rust
side. With the Rust benchmark's output on stdin, it also checks that both
optimal totals (and the tables' numbers of non-zero cells) agree and prints a
Markdown table of all timings:

    cargo bench -p advclust-metrics --bench acc_large_k | python3 crates/advclust-metrics/benches/scipy_large_k.py

Alone (a terminal on stdin), it only times scipy.
"""

import math
import os
import statistics
import sys
import time

import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.metrics.cluster import contingency_matrix

KS = [10, 100, 1_000, 2_000, 4_000, 8_000]
SAMPLES_PER_CLASS = 20
KEEP = int(os.environ.get("ACC_BENCH_KEEP", "50"))
REPEATS = 7
MIN_SECONDS = 1.0
MASK64 = (1 << 64) - 1


def splitmix64(x):
    """Vectorised SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_stream(seed, start, stop):
    base = np.uint64((seed << 32) & MASK64)
    return splitmix64(base + np.arange(start, stop, dtype=np.uint64))


def labels(k, keep):
    n = SAMPLES_PER_CLASS * k
    # Fisher-Yates with the seed-4 stream, as in acc_large_k.rs.
    draws = [int(x) for x in hash_stream(4, 0, k)]
    perm = list(range(k))
    for i in range(k - 1, 0, -1):
        j = draws[i] % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    perm = np.array(perm, dtype=np.uint64)
    truth = hash_stream(1, 0, n) % np.uint64(k)
    noise = hash_stream(2, 0, n) % np.uint64(k)
    keep = hash_stream(3, 0, n) % np.uint64(100) < np.uint64(keep)
    pred = np.where(keep, perm[truth.astype(np.int64)], noise)
    return truth.astype(np.int64), pred.astype(np.int64)


def table(truth, pred, k):
    return np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)


def timed(fn):
    """Median and minimum seconds per call, as `time` in acc_large_k.rs."""
    start = time.perf_counter()
    fn()  # warm-up
    once = max(time.perf_counter() - start, 1e-9)
    calls = min(max(math.ceil(0.01 / once), 1), 1_000_000)
    times = []
    begin = time.perf_counter()
    while len(times) < REPEATS or (time.perf_counter() - begin < MIN_SECONDS and len(times) < 51):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times), min(times)


def read_rust(stream):
    """k -> (cells, total, acc median, acc min, matching median, matching min)."""
    rust = {}
    for line in stream:
        fields = line.split()
        if fields and fields[0] == "k":
            k = int(fields[1])
            at = fields.index("total")
            acc_at = fields.index("acc")
            lsa_at = fields.index("matching")
            rust[k] = (
                int(fields[fields.index("cells") + 1]),
                int(fields[at + 1]),
                float(fields[acc_at + 1]),
                float(fields[acc_at + 2]),
                float(fields[lsa_at + 1]),
                float(fields[lsa_at + 2]),
            )
    return rust


def sklearn_acc(truth, pred):
    """ACC as sklearn_metrics.py computes it: table, then assignment."""
    counts = contingency_matrix(truth, pred)
    r, c = linear_sum_assignment(counts, maximize=True)
    return counts[r, c].sum() / len(truth)


def ratio(x):
    return f"{x:.2g}x" if x < 10 else f"{x:,.0f}x"


def main():
    rust = {} if sys.stdin.isatty() else read_rust(sys.stdin)
    if not sys.stdin.isatty() and not rust:
        sys.exit("no results of benches/acc_large_k.rs on stdin (run from a terminal to time scipy alone)")
    ks = [k for k in KS if k in rust] if rust else KS
    print(f"# scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"# n = {SAMPLES_PER_CLASS} k, keep {KEEP}%; seconds: median min")
    rows = []
    for k in ks:
        truth, pred = labels(k, KEEP)
        counts = table(truth, pred, k)
        r, c = linear_sum_assignment(counts, maximize=True)
        total = int(counts[r, c].sum())
        lsa = timed(lambda: linear_sum_assignment(counts, maximize=True))
        full = timed(lambda: sklearn_acc(truth, pred))
        cells = int(np.count_nonzero(counts))
        print(f"k {k} n {len(truth)} cells {cells} total {total} "
              f"scipy {lsa[0]:.3e} {lsa[1]:.3e} sklearn+scipy {full[0]:.3e} {full[1]:.3e}")
        if k in rust:
            if rust[k][0] != cells:
                sys.exit(f"k = {k}: {rust[k][0]} non-zero cells in Rust, {cells} here: different labels")
            if rust[k][1] != total:
                sys.exit(f"k = {k}: Rust total {rust[k][1]} != scipy total {total}")
            rows.append((k, cells, rust[k], lsa, full))
    if rows:
        print()
        print("| k | non-zero cells | scipy `linear_sum_assignment` (s) | advclust `max_weight_matching` (s) "
              "| speed-up | `contingency_matrix` + `linear_sum_assignment` (s) | advclust `acc` (s) | speed-up |")
        print("|---|---|---|---|---|---|---|---|")
        for k, cells, (_, _, acc_med, acc_min, lsa_med, lsa_min), lsa, full in rows:
            print(f"| {k:,} | {cells:,} | {lsa[0]:.3g} ({lsa[1]:.3g}) | {lsa_med:.3g} ({lsa_min:.3g}) "
                  f"| {ratio(lsa[0] / lsa_med)} | {full[0]:.3g} ({full[1]:.3g}) "
                  f"| {acc_med:.3g} ({acc_min:.3g}) | {ratio(full[0] / acc_med)} |")
        print(f"\nOptimal totals agree for every k ({', '.join(f'{k:,}' for k, *_ in rows)}).")


if __name__ == "__main__":
    main()
