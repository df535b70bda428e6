#!/usr/bin/env python3
"""scikit-learn's PCA on the images benches/pca.rs times: the CIFAR-10 test JPEGs (a folder per
class) flattened to 10,000 x 3,072 values in [0, 1], 3 components, the randomised solver
(n_oversamples 10, 4 power iterations: as advclust's) and the full SVD. Best of 5 runs.

    python3 benches/pca_sklearn.py ../shared/data/cifar10-jpg/test [--threads 2]
"""
import argparse
import glob
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("folder")
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

files = sorted(glob.glob(os.path.join(args.folder, "*", "*")))
x = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32).transpose(2, 0, 1).ravel()
              for f in files]) / 255.0
x = x.astype(np.float64)
print(f"{x.shape[0]} x {x.shape[1]} values")
for solver, kw in (("randomized", dict(n_oversamples=10, iterated_power=4)), ("full", {})):
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        PCA(n_components=3, svd_solver=solver, random_state=0, **kw).fit(x)
        best = min(best, time.perf_counter() - t)
    print(f"sklearn PCA {solver}: {best:.3f} s (best of 5)")
