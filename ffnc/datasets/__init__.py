"""ffnc.datasets: the small real dataset that ships with ffnc, the lecture's toy problems,
and loaders for your own .npz and .csv files.

    >>> from ffnc import datasets
    >>> x, y = datasets.load_digits(normalize=True)   # (1797, 64) float32, (1797,) int64
    >>> x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, seed=0)

Every function returns float arrays in the dtype asked for (float32 by default: the dtype
of an ffnc model unless it says otherwise) and class labels as int64. The loaders convert
file data to `dtype` explicitly, as their documented job; ffnc's training functions never
convert anything themselves.
"""

from __future__ import annotations

import csv
import os
import zipfile
from importlib import resources
from typing import Any

import numpy as np

from ffnc._validate import count

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _FLOATS:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def _noise(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
            or value < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {value!r}")
    return float(value)


def _seed(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or value < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {value!r}")
    return value


# ---- the shipped dataset ------------------------------------------------------------------

def load_digits(*, dtype: Any = np.float32, normalize: bool = False,
                images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The UCI handwritten digits: 1797 images of 8x8 pixels and their labels 0..9.

    Returns (x, y): x of shape (1797, 64) (or (1797, 8, 8) with images=True) in `dtype`, values
    in [0, 16] (divided by 16, so in [0, 1], with normalize=True); y int64 of shape (1797,).
    The data ("Optical Recognition of Handwritten Digits", E. Alpaydin and C. Kaynak, UCI
    Machine Learning Repository) is licensed CC BY 4.0; see ffnc/datasets/README.md.
    """
    dt = _float_dtype(dtype)
    with resources.files(__name__).joinpath("digits.npz").open("rb") as f, \
            np.load(f, allow_pickle=False) as data:
        pixels, labels = data["images"], data["labels"]
    x = pixels.astype(dt)
    if normalize:
        x /= dt.type(16)
    if not images:
        x = x.reshape(len(x), 64)
    return x, labels.astype(np.int64)


def train_test_split(x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2,
                     seed: int | None = 0, stratify: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random split: (x_train, x_test, y_train, y_test).

    test_fraction of the rows (rounded, at least one, at most all but one) go to the test
    set. stratify=True (integer labels) keeps every class's share in both parts: each class
    contributes round(test_fraction * its count) rows to the test set. The same seed gives
    the same split.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"x and y must have the same number of rows, got shapes {x.shape} "
                         f"and {y.shape}")
    n = len(x)
    if n < 2:
        raise ValueError(f"a split needs at least 2 rows, got {n}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(_seed(seed))
    if stratify:
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"stratify=True needs integer class labels of shape (n,), got "
                             f"{y.dtype} {y.shape}")
        test_parts = []
        for label in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == label))
            test_parts.append(rows[:int(round(test_fraction * len(rows)))])
        test = np.sort(np.concatenate(test_parts))
        test = rng.permutation(test)
        mask = np.ones(n, dtype=bool)
        mask[test] = False
        train = rng.permutation(np.flatnonzero(mask))
        if len(test) == 0 or len(train) == 0:
            raise ValueError(f"test_fraction {test_fraction} leaves one part empty")
    else:
        n_test = min(max(int(round(test_fraction * n)), 1), n - 1)
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test:]
    return x[train], x[test], y[train], y[test]


# ---- generated problems -------------------------------------------------------------------

def xor(*, dtype: Any = np.float32, labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: x = [[0,0],[0,1],[1,0],[1,1]] and y = [0, 1, 1, 0], as a (4, 1)
    column of `dtype` (regression targets, the lecture's least-squares view) or, with
    labels=True, int64 class labels of shape (4,)."""
    dt = _float_dtype(dtype)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dt)
    y = np.array([0, 1, 1, 0])
    return (x, y.astype(np.int64)) if labels else (x, y.reshape(4, 1).astype(dt))


def two_moons(n: int = 200, noise: float = 0.1, seed: int | None = 0, *,
              dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: x (n, 2), labels y (n,) int64 in {0, 1} (n // 2 rows of
    class 0 first, then the rest; shuffle or split before use). Gaussian noise of standard
    deviation `noise` is added to the coordinates."""
    n, noise, dt = count("n", n, 2), _noise(noise), _float_dtype(dtype)
    rng = np.random.default_rng(_seed(seed))
    n0 = n // 2
    a0 = np.linspace(0, np.pi, n0)
    a1 = np.linspace(0, np.pi, n - n0)
    upper = np.stack([np.cos(a0), np.sin(a0)], axis=1)
    lower = np.stack([1 - np.cos(a1), 0.5 - np.sin(a1)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n - n0, np.int64)])
    return x.astype(dt), y


def spirals(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int | None = 0, *,
            dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """`classes` interleaved spiral arms in the plane (cs231n's classic): x (n, 2) within
    about [-1, 1]^2, labels y (n,) int64, arm k holding rows [k n / classes, (k+1) n /
    classes). The angle of each point gets Gaussian noise of standard deviation `noise`."""
    n, classes = count("n", n, 1), count("classes", classes, 1)
    noise, dt = _noise(noise), _float_dtype(dtype)
    if n < classes:
        raise ValueError(f"n ({n}) must be at least classes ({classes})")
    rng = np.random.default_rng(_seed(seed))
    bounds = np.linspace(0, n, classes + 1).round().astype(int)
    xs, ys = [], []
    for k in range(classes):
        m = bounds[k + 1] - bounds[k]
        radius = np.linspace(0.0, 1.0, m)
        angle = np.linspace(k * 4.0, (k + 1) * 4.0, m) + noise * rng.standard_normal(m)
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        ys.append(np.full(m, k, dtype=np.int64))
    return np.concatenate(xs).astype(dt), np.concatenate(ys)


def inverted_sinusoid(n: int = 1000, noise: float = 0.1, seed: int | None = 0, *,
                      dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Bishop's inverse problem, the mixture density network's classic: t ~ U(0, 1) and
    x = t + 0.3 sin(2 pi t) + U(-noise, noise); returns (x, t) as (n, 1) columns, so the
    target t is a multi-valued function of the input x (a least-squares fit averages the
    branches; an MDN models them)."""
    n, noise, dt = count("n", n, 1), _noise(noise), _float_dtype(dtype)
    rng = np.random.default_rng(_seed(seed))
    t = rng.uniform(0.0, 1.0, n)
    x = t + 0.3 * np.sin(2 * np.pi * t) + rng.uniform(-noise, noise, n)
    return x.reshape(n, 1).astype(dt), t.reshape(n, 1).astype(dt)


# ---- user files ---------------------------------------------------------------------------

def _labels_or_targets(y: np.ndarray, dt: np.dtype, where: str) -> np.ndarray:
    """Integer data -> int64 labels; float data -> `dt` targets (non-finite values rejected)."""
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.floating):
        raise TypeError(f"{where}: targets must be numbers, got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: the targets contain NaN or infinite values")
    return y.astype(dt)


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    return path


def load_npz(path: str | os.PathLike, x_key: str = "x", y_key: str | None = "y", *,
             dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs and targets from a numpy .npz archive (np.savez): arrays `x_key` and `y_key`
    (y_key=None: inputs only, y is None).

    x becomes `dtype` (an explicit conversion, the loader's job); integer y becomes int64
    class labels, float y targets of `dtype`. Errors name the file and the problem (missing
    key, non-numeric data, row counts that differ, NaN inputs). Never unpickles objects.
    """
    path = _check_path(path)
    dt = _float_dtype(dtype)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        archive_type = type(archive).__name__
        raise ValueError(f"{path}: expected an .npz archive of named arrays (np.savez), got a "
                         f"single {archive_type}")
    with archive:
        keys = list(archive.keys())
        for key in (x_key, y_key):
            if key is not None and key not in keys:
                raise ValueError(f"{path}: no array named {key!r}; the archive holds {keys} "
                                 f"(choose with x_key= / y_key=)")
        try:
            x = archive[x_key]
            y = archive[y_key] if y_key is not None else None
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise ValueError(f"{path}: cannot read the arrays without unpickling ({exc})") \
                from None
    return _finish(x, y, dt, path, x_key, y_key)


def _finish(x: np.ndarray, y: np.ndarray | None, dt: np.dtype, path: str, x_name: str,
            y_name: str) -> tuple[np.ndarray, np.ndarray | None]:
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise TypeError(f"{path}: {x_name} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{path}: {x_name} must have one row per sample (at least 2-D), got "
                         f"shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{path}: {x_name} has no rows")
    if y is not None and (y.ndim == 0 or len(y) != len(x)):
        raise ValueError(f"{path}: {x_name} has {len(x)} rows but {y_name} has shape {y.shape}")
    x = x.astype(dt)
    bad = np.flatnonzero(~np.all(np.isfinite(x.reshape(len(x), -1)), axis=1))
    if len(bad):
        raise ValueError(f"{path}: {x_name} has NaN or infinite values in {len(bad)} row(s), "
                         f"the first at row {bad[0]}")
    if y is None:
        return x, None
    return x, _labels_or_targets(y, dt, f"{path}: {y_name}")


def load_csv(path: str | os.PathLike, label_column: int | str | None = -1, *,
             delimiter: str = ",", dtype: Any = np.float32
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs and targets from a delimited text file, one sample per line.

    label_column: the target column, by index (negative counts from the end) or by name
    when the first line is a header (a first line that is not all numbers is a header);
    None: every column is an input and y is None.
    The other columns are the inputs, converted to `dtype`. A target column of whole numbers
    gives int64 class labels, otherwise targets of `dtype` with shape (n, 1). Errors name
    the file, the line and the column of a value that is not a number.
    """
    path = _check_path(path)
    dt = _float_dtype(dtype)
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f, delimiter=delimiter) if row and any(
            c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path}: the file has no data")
    header = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise ValueError(f"{path}: the file has a header but no data rows")
    width = len(rows[0])
    if width < 2 and label_column is not None:
        raise ValueError(f"{path}: need at least 2 columns (inputs and a label), got {width}; "
                         f"is the delimiter {delimiter!r} right?")
    if label_column is None:
        col = None
    elif isinstance(label_column, str):
        if header is None or label_column not in header:
            known = f"the header has {header}" if header else "the file has no header"
            raise ValueError(f"{path}: no column named {label_column!r} ({known})")
        col = header.index(label_column)
    elif isinstance(label_column, bool) or not isinstance(label_column, (int, np.integer)) \
            or not -width <= label_column < width:
        raise ValueError(f"{path}: label_column must be a column name or an index in "
                         f"[{-width}, {width}), got {label_column!r}")
    else:
        col = int(label_column) % width
    table = np.empty((len(rows), width), dtype=np.float64)
    first_line = 2 if header is not None else 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: line {first_line + i} has {len(row)} columns, the first "
                             f"data line has {width}")
        for j, cell in enumerate(row):
            try:
                table[i, j] = float(cell)
            except ValueError:
                raise ValueError(f"{path}: line {first_line + i}, column {j + 1}: {cell!r} is "
                                 f"not a number") from None
    if col is None:
        return _finish(table, None, dt, path, "inputs", "")
    y = table[:, col]
    x = np.delete(table, col, axis=1)
    if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    else:
        y = y.reshape(-1, 1)
    return _finish(x, y, dt, path, "inputs", f"label column {col}")


__all__ = ["inverted_sinusoid", "load_csv", "load_digits", "load_npz", "spirals",
           "train_test_split", "two_moons", "xor"]
