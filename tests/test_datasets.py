"""ffnc.datasets: the shipped digits, splits, generators and file loaders."""

import numpy as np
import pytest

from ffnc import datasets


def test_digits():
    x, y = datasets.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 16 and np.all(x == np.round(x))
    assert np.array_equal(np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    xn, _ = datasets.load_digits(normalize=True, dtype=np.float64)
    assert xn.dtype == np.float64 and np.allclose(xn * 16, x)
    images, _ = datasets.load_digits(images=True)
    assert images.shape == (1797, 8, 8) and np.array_equal(images.reshape(1797, 64), x)


def test_digits_are_scikit_learns():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    x, y = datasets.load_digits(dtype=np.float64)
    assert np.array_equal(x, reference.data) and np.array_equal(y, reference.target)


def test_split_is_seeded_disjoint_and_stratified():
    x, y = datasets.load_digits()
    a = datasets.train_test_split(x, y, seed=3)
    b = datasets.train_test_split(x, y, seed=3)
    c = datasets.train_test_split(x, y, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[3], c[3])
    assert len(a[1]) == round(0.2 * 1797) and len(a[0]) + len(a[1]) == 1797
    rows = {r.tobytes() for r in a[0]} & {r.tobytes() for r in a[1]}
    assert len(rows) < 5  # the digits hold a few duplicate images; the split itself is disjoint
    _, _, y_train, y_test = datasets.train_test_split(x, y, seed=0, stratify=True)
    share = np.bincount(y_test, minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.01)
    assert len(y_train) + len(y_test) == 1797
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.train_test_split(x, y, test_fraction=1.5)
    with pytest.raises(ValueError, match="same number of rows"):
        datasets.train_test_split(x, y[:10])
    with pytest.raises(ValueError, match="integer class labels"):
        datasets.train_test_split(x, x[:, 0], stratify=True)


def test_xor():
    x, y = datasets.xor()
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.ravel().tolist() == [0, 1, 1, 0]
    assert y.shape == (4, 1) and y.dtype == np.float32
    _, labels = datasets.xor(labels=True, dtype=np.float64)
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("make, shape, classes", [
    (lambda s: datasets.two_moons(101, 0.1, s), (101, 2), 2),
    (lambda s: datasets.spirals(150, 3, 0.2, s), (150, 2), 3),
    (lambda s: datasets.spirals(10, 4, 0.1, s), (10, 2), 4),
])
def test_classification_generators(make, shape, classes):
    x, y = make(7)
    assert x.shape == shape and x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(classes))
    x2, y2 = make(7)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, make(8)[0])


def test_inverted_sinusoid():
    x, t = datasets.inverted_sinusoid(500, noise=0.0, seed=0, dtype=np.float64)
    assert x.shape == t.shape == (500, 1)
    np.testing.assert_allclose(x, t + 0.3 * np.sin(2 * np.pi * t))
    assert t.min() >= 0 and t.max() <= 1
    noisy, _ = datasets.inverted_sinusoid(500, noise=0.1, seed=0, dtype=np.float64)
    assert 0 < np.max(np.abs(noisy - x)) <= 0.1


@pytest.mark.parametrize("call, words", [
    (lambda: datasets.two_moons(1), "n must be >= 2, got 1"),
    (lambda: datasets.two_moons(5.0), "n must be an int, got float"),
    (lambda: datasets.spirals(2, 3), "at least classes"),
    (lambda: datasets.spirals(10, 3, noise=-1), "noise"),
    (lambda: datasets.inverted_sinusoid(10, seed=-1), "seed"),
    (lambda: datasets.xor(dtype=np.int32), "float32 or float64"),
])
def test_generator_errors(call, words):
    with pytest.raises((ValueError, TypeError), match=words):
        call()


def test_load_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.standard_normal((10, 3)), y=np.arange(10) % 2, t=rng.random(10))
    x, y = datasets.load_npz(path)
    assert x.dtype == np.float32 and x.shape == (10, 3) and y.dtype == np.int64
    x, t = datasets.load_npz(path, y_key="t", dtype=np.float64)
    assert t.dtype == np.float64
    x, none = datasets.load_npz(path, y_key=None)
    assert none is None
    with pytest.raises(ValueError, match=r"no array named 'labels'.*\['x', 'y', 't'\]"):
        datasets.load_npz(path, y_key="labels")
    np.savez(path, x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match="3 rows"):
        datasets.load_npz(path)
    np.savez(path, x=np.array([[1.0, np.nan]]), y=np.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        datasets.load_npz(path)
    np.savez(path, x=np.array([object(), object()], dtype=object), y=np.zeros(2))
    with pytest.raises(ValueError, match="unpickling"):
        datasets.load_npz(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        datasets.load_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        datasets.load_npz(tmp_path / "missing.npz")


def test_load_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,4.5,1\n\n5,6,2\n")
    x, y = datasets.load_csv(path)
    assert x.tolist() == [[1, 2], [3, 4.5], [5, 6]] and y.tolist() == [0, 1, 2]
    assert y.dtype == np.int64
    x, y = datasets.load_csv(path, label_column="a")
    assert x.tolist() == [[2, 0], [4.5, 1], [6, 2]] and y.tolist() == [1, 3, 5]
    x, y = datasets.load_csv(path, label_column=1)
    assert y.shape == (3, 1) and y.dtype == np.float32  # not whole numbers: targets
    x, none = datasets.load_csv(path, label_column=None)
    assert x.shape == (3, 3) and none is None
    path.write_text("1,2,0\n3,x,1\n")
    with pytest.raises(ValueError, match=r"line 2, column 2: 'x' is not a number"):
        datasets.load_csv(path)
    path.write_text("1,2,0\n3,1\n")
    with pytest.raises(ValueError, match="line 2 has 2 columns"):
        datasets.load_csv(path)
    path.write_text("1,2,0\n")
    with pytest.raises(ValueError, match="no column named 'z'"):
        datasets.load_csv(path, label_column="z")
    with pytest.raises(ValueError, match="label_column"):
        datasets.load_csv(path, label_column=5)
    path.write_text("")
    with pytest.raises(ValueError, match="no data"):
        datasets.load_csv(path)
