"""Fits the third-party victim that MLServer serves in advclust's tests.

A scikit-learn soft clustering model of the embedded MNIST test images: PCA to 50 components,
then a 10-component Gaussian mixture (full covariances), whose `predict_proba` gives the
memberships. Writes `model.joblib` and MLServer's `model-settings.json` (declaring the input as
FP32 [-1, 784] and the output as FP64 [-1, 10], so a client discovers both from the metadata)
into the folder given, and prints the model's clean NMI. Seeded: the same model every time.

Usage: python fit_victim.py <mnist-t10k-images-idx3-ubyte.gz> <labels.gz> <out-dir>
"""

import gzip
import json
import struct
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    images, labels, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    x = read_idx(images).reshape(-1, 784).astype(np.float32) / 255.0
    y = read_idx(labels)
    model = Pipeline(
        [
            ("pca", PCA(n_components=50, random_state=0)),
            ("gmm", GaussianMixture(n_components=10, covariance_type="full", random_state=0)),
        ]
    ).fit(x)
    nmi = normalized_mutual_info_score(y, model.predict(x))
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    settings = {
        "name": "gmm",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 10]}],
    }
    (out / "model-settings.json").write_text(json.dumps(settings, indent=2))
    print(json.dumps({"clean_nmi": nmi, "images": int(x.shape[0])}))


if __name__ == "__main__":
    main()
