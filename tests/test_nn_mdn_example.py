"""examples/mdn_sinusoid.py with small settings: on the inverted sinusoid the mixture density
network reaches a held-out NLL clearly below the Gaussian output's, and its predicted density
at x = 0.5 is multimodal where the data are (one mode inside each of the three intervals of y
the data occupy there, samples on each branch), while the Gaussian's has one mode."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import ffnc

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mdn_sinusoid.py"


@pytest.fixture
def one_thread():
    """A 50-row batch is too small to share: one thread (and no waiting on a busy core)."""
    previous = ffnc.get_num_threads()
    ffnc.set_num_threads(1)
    yield
    ffnc.set_num_threads(previous)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mdn_sinusoid", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_branches_of_the_inverse(example):
    roots = example.branches(0.5)
    assert len(roots) == 3
    np.testing.assert_allclose(roots + 0.3 * np.sin(2 * np.pi * roots), 0.5, atol=1e-8)
    assert roots[1] == pytest.approx(0.5, abs=1e-9)
    assert len(example.branches(0.05)) == 1  # one branch away from the fold
    intervals = example.support(0.5)
    assert len(intervals) == 3
    for (low, high), root in zip(intervals, roots, strict=True):
        assert low < root < high
    assert intervals[1] == pytest.approx((0.44, 0.56), abs=0.005)
    assert example.support(0.5, noise=0.1) == [pytest.approx((0.1535, 0.8465), abs=1e-3)]


def test_mdn_beats_a_gaussian_output_and_is_multimodal(example, one_thread):
    r = example.main(n_train=1000, n_test=1000, epochs=150, verbose=False)
    assert r["mdn_nll"] < r["gaussian_nll"] - 0.25, (r["mdn_nll"], r["gaussian_nll"])
    roots = r["branches"]
    # the Gaussian: one mode, between the outer branches
    assert len(r["gaussian_modes"]) == 1 and roots[0] < r["gaussian_modes"][0] < roots[-1]
    # the mixture: several modes, each on a branch, with samples piling up there
    # the mixture: one mode on each branch, inside the interval where that branch's data lie
    mdn_modes = r["mdn_modes"]
    assert len(mdn_modes) == 3, (mdn_modes, r["support"])
    for m, (low, high) in zip(mdn_modes, r["support"], strict=True):
        assert low - 0.02 < m < high + 0.02, (mdn_modes, r["support"])
    # samples: the mixture's on the data, the Gaussian's largely between and beyond them
    assert min(r["mdn_in"]) > 0.1, r["mdn_in"]
    assert sum(r["mdn_in"]) > 1.5 * sum(r["gaussian_in"]), (r["mdn_in"], r["gaussian_in"])
