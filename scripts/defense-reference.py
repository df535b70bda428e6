#!/usr/bin/env python3
"""Reference cases for advclust-defense's metrics, computed by scikit-learn and NumPy.

Writes crates/advclust-defense/tests/data/sklearn-metrics.json: for each case the labels
(1 = adversarial / out-of-distribution, the positive class), the scores, and
roc_auc_score, average_precision_score, SSD's get_fpr (the fraction of positive scores below
the 95th percentile of the negative ones) and numpy.percentile(negatives, 95). Cases cover
random scores, heavy ties, all-equal scores, perfect and reversed rankings and tiny sets;
single-class cases record which metrics scikit-learn refuses.

    python3 scripts/defense-reference.py   # needs scikit-learn and numpy (pip install scikit-learn)
"""
import json
import os
import warnings

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score

rng = np.random.default_rng(12)
cases = []


def add(name, labels, scores):
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    case = {"name": name, "labels": labels.tolist(), "scores": scores.tolist()}
    # scikit-learn raised on one class up to 1.5 and warns (returning nan) since: both are
    # recorded as undefined, which advclust reports as a typed error.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            case["roc_auc"] = float(roc_auc_score(labels, scores))
        except Exception as e:
            case["roc_auc"] = None
            case["roc_auc_error"] = str(e)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            case["average_precision"] = float(average_precision_score(labels, scores))
        except Exception as e:  # scikit-learn warns (no positive) and returns 0
            case["average_precision"] = None
            case["average_precision_error"] = str(e)
    neg, pos = scores[labels == 0], scores[labels == 1]
    if len(neg) and len(pos):
        threshold = np.percentile(neg, 95)
        case["percentile95_negatives"] = float(threshold)
        case["fpr95"] = float(np.sum(pos < threshold) / len(pos))
    cases.append(case)


for n in (10, 101, 1000, 5000):
    labels = rng.integers(0, 2, n)
    labels[0], labels[1] = 0, 1
    add(f"random-{n}", labels, rng.normal(size=n) + 0.7 * labels)
for n in (50, 777, 4000):
    labels = rng.integers(0, 2, n)
    labels[0], labels[1] = 0, 1
    add(f"ties-{n}", labels, np.round(rng.normal(size=n) + 0.5 * labels, 1))
    add(f"ties-int-{n}", labels, rng.integers(0, 4, n).astype(float))
add("all-equal", [0, 1, 0, 1, 1, 0, 0], [0.3] * 7)
add("perfect", [0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.5])
add("reversed", [1, 1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5])
add("two", [0, 1], [1.0, 0.0])
add("imbalanced", [0] * 97 + [1] * 3, list(rng.normal(size=100)))
add("heavy-scores", [0, 1] * 50, list(rng.exponential(1e6, size=100)))
add("only-negatives", [0, 0, 0], [0.1, 0.5, 0.2])
add("only-positives", [1, 1, 1], [0.1, 0.5, 0.2])

out = os.path.join(os.path.dirname(__file__), "..", "crates", "advclust-defense", "tests",
                   "data", "sklearn-metrics.json")
with open(out, "w") as f:
    json.dump({"sklearn": sklearn.__version__, "numpy": np.__version__, "cases": cases}, f, allow_nan=False)
print(f"{len(cases)} cases -> {out}")
