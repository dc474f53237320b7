"""Builds ffnc/datasets/digits.npz from scikit-learn's bundled copy of the UCI digits.

Run once (scikit-learn is needed here, not at runtime):  python3 dev/build_digits.py
The .npz holds "images" (1797, 8, 8) uint8 in [0, 16] and "labels" (1797,) uint8; the data
and its licence are described in ffnc/datasets/README.md.
"""

import gzip
import os

import numpy as np
import sklearn

source = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")
with gzip.open(source, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
images, labels = table[:, :64], table[:, 64]
assert table.shape == (1797, 65) and images.min() >= 0 and images.max() <= 16
assert set(np.unique(labels)) == set(range(10))
target = os.path.join(os.path.dirname(__file__), "..", "ffnc", "datasets", "digits.npz")
np.savez_compressed(target, images=images.reshape(-1, 8, 8).astype(np.uint8),
                    labels=labels.astype(np.uint8))
print(f"wrote {os.path.normpath(target)} ({os.path.getsize(target)} bytes)")
