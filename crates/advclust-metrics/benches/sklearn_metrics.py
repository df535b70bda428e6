#!/usr/bin/env python3
"""Time scikit-learn NMI + ARI and scipy-Hungarian ACC at n = 10^6, k = 100.

Same labels as benches/metrics.rs (SplitMix64 generator of
tests/reference/make_reference.py, case "bench_like_k100"). Prints the
median and minimum wall time of REPEATS runs per metric, in milliseconds.

    python3 crates/advclust-metrics/benches/sklearn_metrics.py
"""

import pathlib
import statistics
import sys
import time

import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "reference"))
from make_reference import generate  # noqa: E402

REPEATS = 7


def acc(labels_true, labels_pred):
    table = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return table[rows, cols].sum() / len(labels_true)


def nmi(t, p):
    return normalized_mutual_info_score(t, p)


def ari(t, p):
    return adjusted_rand_score(t, p)


def all_three(t, p):
    return nmi(t, p), ari(t, p), acc(t, p)


def timed(fn, t, p):
    fn(t, p)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(t, p)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def main():
    t, p = generate(1_000_000, 100, 100, 1, 2, 3, 50)
    print(f"sklearn {sklearn.__version__}, scipy {scipy.__version__}, numpy {np.__version__}")
    print(f"n = {len(t)}, k_true = {len(np.unique(t))}, k_pred = {len(np.unique(p))}")
    print(f"nmi = {nmi(t, p)!r}, ari = {ari(t, p)!r}, acc = {acc(t, p)!r}")
    for name, fn in [("nmi", nmi), ("ari", ari), ("acc", acc), ("nmi+ari+acc", all_three)]:
        median, best = timed(fn, t, p)
        print(f"{name:12} median {median:9.2f} ms   min {best:9.2f} ms")


if __name__ == "__main__":
    main()
