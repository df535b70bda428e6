#!/usr/bin/env python3
"""Generate sklearn_reference.json: expected NMI / ARI / ACC from scikit-learn.

Usage (from the repository root):

    pip install "scikit-learn==1.9.*" scipy numpy
    python3 crates/advclust-metrics/tests/reference/make_reference.py

NMI is sklearn.metrics.normalized_mutual_info_score with all four
average_method values, ARI is sklearn.metrics.adjusted_rand_score, and ACC is
scipy.optimize.linear_sum_assignment(maximize=True) on
sklearn.metrics.cluster.contingency_matrix, divided by n (null for empty input,
where the Rust crate returns a typed error).

"cases" hold explicit labels. "large_cases" (n = 10^6) hold only the
parameters of the SplitMix64 label generator below, which the Rust test
reimplements:

    hash(seed, i) = splitmix64((seed * 2^32 + i) mod 2^64)
    true[i] = hash(seed_true, i) % k_true
    pred[i] = true[i] % k_pred            if hash(seed_noise, i) % 100 < keep_percent
              hash(seed_pred, i) % k_pred otherwise
"""

import json
import pathlib
import sys

import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

OUT = pathlib.Path(__file__).with_name("sklearn_reference.json")
NORMALIZATIONS = ["arithmetic", "geometric", "min", "max"]
MASK64 = (1 << 64) - 1


def splitmix64(x):
    """Vectorised SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_labels(seed, n):
    base = np.uint64((seed << 32) & MASK64)
    return splitmix64(base + np.arange(n, dtype=np.uint64))


def generate(n, k_true, k_pred, seed_true, seed_pred, seed_noise, keep_percent):
    true = hash_labels(seed_true, n) % np.uint64(k_true)
    noise = hash_labels(seed_pred, n) % np.uint64(k_pred)
    keep = hash_labels(seed_noise, n) % np.uint64(100) < np.uint64(keep_percent)
    pred = np.where(keep, true % np.uint64(k_pred), noise)
    return true.astype(np.int64), pred.astype(np.int64)


def acc(labels_true, labels_pred):
    if len(labels_true) == 0:
        return None
    table = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(labels_true))


def scores(labels_true, labels_pred):
    return {
        "nmi": {
            m: float(normalized_mutual_info_score(labels_true, labels_pred, average_method=m))
            for m in NORMALIZATIONS
        },
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
        "acc": acc(labels_true, labels_pred),
    }


def case(name, labels_true, labels_pred):
    labels_true = [x.item() if hasattr(x, "item") else x for x in labels_true]
    labels_pred = [x.item() if hasattr(x, "item") else x for x in labels_pred]
    return {
        "name": name,
        "labels_true": labels_true,
        "labels_pred": labels_pred,
        **scores(np.asarray(labels_true), np.asarray(labels_pred)),
    }


def relabel(labels, ids):
    """Map contiguous labels 0..k-1 to the given ids."""
    return [ids[x] for x in labels]


def edge_cases(rng):
    cases = [
        case("empty", [], []),
        case("n1", [7], [3]),
        case("n1_negative", [-4], [1000]),
        case("n2_same", [0, 0], [5, 5]),
        case("n2_split_true", [0, 1], [5, 5]),
        case("n2_split_pred", [0, 0], [5, 6]),
        case("n2_both_split", [0, 1], [1, 0]),
        case("anti_correlated", [0, 0, 1, 1], [0, 1, 0, 1]),
        case("sklearn_doc_example", [0, 0, 1, 2], [0, 0, 1, 1]),
    ]
    base = rng.integers(0, 6, size=200)
    cases.append(case("identical", base, base))
    perm = rng.permutation(6)
    cases.append(case("permuted", base, perm[base]))
    cases.append(case("permuted_noncontiguous", base, relabel(perm[base], [3, 17, 1000, 42, 8, 99])))
    cases.append(case("one_cluster_true", [4] * 150, rng.integers(0, 5, size=150)))
    cases.append(case("one_cluster_pred", rng.integers(0, 5, size=150), [9] * 150))
    cases.append(case("one_cluster_both", [2] * 80, [-1] * 80))
    cases.append(case("all_singletons_both", list(range(60)), list(rng.permutation(60))))
    cases.append(case("singletons_vs_one_cluster", list(range(40)), [0] * 40))
    cases.append(case("one_cluster_vs_singletons", [3] * 40, list(range(40))))
    cases.append(case("singletons_vs_random", list(range(300)), rng.integers(0, 7, size=300)))
    cases.append(case("random_vs_singletons", rng.integers(0, 7, size=300), list(range(300))))
    t = rng.integers(0, 3, size=500)
    cases.append(case("k_pred_gt_k_true", t, t * 4 + rng.integers(0, 4, size=500)))
    t = rng.integers(0, 12, size=500)
    cases.append(case("k_pred_lt_k_true", t, t // 4))
    cases.append(case("noncontiguous_3_17_1000", relabel(base, [3, 17, 1000, 5, 6, 7]),
                      relabel(rng.integers(0, 3, size=200), [1000, 3, 17])))
    cases.append(case("negative_ids", relabel(base, [-1, -2, -30, -400, 0, 5]),
                      relabel(rng.integers(0, 4, size=200), [-7, -3, 2, -100])))
    cases.append(case("huge_ids", relabel(base, [10**12, -10**15, 3, 2**62, -(2**62), 0]),
                      relabel(rng.integers(0, 4, size=200), [-(10**18), 10**18, 1, 2])))
    cases.append(case("string_labels", relabel(base, ["cat", "dog", "emu", "gnu", "yak", "ox"]),
                      relabel(rng.integers(0, 3, size=200), ["c0", "c1", "c2"])))
    # Tables larger than max(2n, 65536) cells: the Rust crate counts these
    # sparsely and solves the matching per connected block.
    cases.append(case("sparse_singletons_vs_k40", list(rng.permutation(3000)),
                      rng.integers(0, 40, size=3000)))
    cases.append(case("sparse_k500_vs_k500", rng.integers(0, 500, size=3000),
                      rng.integers(0, 500, size=3000) * 3 - 700))
    # Labels whose first 4096 samples span a narrow range and later ones fall
    # far outside it (the Rust fast path guesses key windows from a prefix).
    t = np.concatenate([rng.integers(0, 5, size=4500), rng.integers(60, 70, size=1500)])
    p = np.concatenate([rng.integers(-3, 3, size=4500), rng.integers(-500, -490, size=1500)])
    cases.append(case("late_labels_outside_prefix_range", t, p))
    return cases


def random_cases(rng, count):
    """Random partitions of varying n, k_true, k_pred and label ids."""
    cases = []
    for i in range(count):
        n = int(rng.choice([5, 20, 100, 500, 1000, 2000, 3000]))
        k_true = int(rng.integers(1, 41))
        k_pred = int(rng.integers(1, 41))
        t = rng.integers(0, k_true, size=n)
        noise = rng.integers(0, k_pred, size=n)
        keep = rng.random(n) < rng.random()  # correlated predictions, varying strength
        p = np.where(keep, t % k_pred, noise)
        style = i % 4
        if style == 1:  # non-contiguous non-negative ids
            t = relabel(t, sorted(rng.choice(100_000, size=k_true, replace=False)))
            p = relabel(p, list(rng.choice(100_000, size=k_pred, replace=False)))
        elif style == 2:  # negative ids
            t = relabel(t, list(rng.choice(np.arange(-5000, 5000), size=k_true, replace=False)))
            p = relabel(p, list(-1 - rng.choice(3000, size=k_pred, replace=False)))
        elif style == 3:  # ids far apart (hashing path in Rust)
            t = relabel(t, list(rng.choice(2**40, size=k_true, replace=False) * 997 - 2**45))
            p = relabel(p, list(rng.choice(50, size=k_pred, replace=False)))
        cases.append(case(f"random_{i:02}_n{n}_k{k_true}x{k_pred}_style{style}", t, p))
    return cases


def large_cases():
    params = [
        ("bench_like_k100", 1_000_000, 100, 100, 1, 2, 3, 50),
        ("noisy_k10_vs_k12", 1_000_000, 10, 12, 11, 12, 13, 70),
        ("independent_k2", 1_000_000, 2, 2, 21, 22, 23, 0),
        ("one_vs_k3", 1_000_000, 1, 3, 31, 32, 33, 0),
    ]
    out = []
    for name, n, k_true, k_pred, seed_true, seed_pred, seed_noise, keep in params:
        t, p = generate(n, k_true, k_pred, seed_true, seed_pred, seed_noise, keep)
        out.append({
            "name": name, "n": n, "k_true": k_true, "k_pred": k_pred,
            "seed_true": seed_true, "seed_pred": seed_pred, "seed_noise": seed_noise,
            "keep_percent": keep,
            "first_true": t[:8].tolist(), "first_pred": p[:8].tolist(),
            **scores(t, p),
        })
    return out


def to_json(data):
    """JSON with one line per case (compact label lists, readable diffs)."""
    lines = ["{"]
    for key, value in data.items():
        if isinstance(value, list):
            items = ",\n  ".join(json.dumps(item, separators=(",", ":")) for item in value)
            lines.append(f' "{key}": [\n  {items}\n ],')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    rng = np.random.default_rng(20240611)
    data = {
        "generated_by": "crates/advclust-metrics/tests/reference/make_reference.py",
        "python_version": sys.version.split()[0],
        "sklearn_version": sklearn.__version__,
        "scipy_version": scipy.__version__,
        "numpy_version": np.__version__,
        "cases": edge_cases(rng) + random_cases(rng, 30),
        "large_cases": large_cases(),
    }
    OUT.write_text(to_json(data))
    print(f"wrote {OUT} ({len(data['cases'])} cases, {len(data['large_cases'])} large cases)")


if __name__ == "__main__":
    main()
