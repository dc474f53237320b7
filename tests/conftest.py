"""Shared fixtures: every kernel test runs on each ISA path this machine supports and on both
dtypes, with the tolerances stated here."""

import os

import numpy as np
import pytest
from hypothesis import settings

import ffnc

# CI must not go red on a draw: the default profile replays the same examples every run. Set
# FFNC_HYPOTHESIS_PROFILE=explore to search with fresh random examples (and more of them).
settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("FFNC_HYPOTHESIS_PROFILE", "default"))

ALL_ISAS = ("generic", "avx2", "avx512")

# Relative tolerance of a kernel against its float64 numpy reference. float64 kernels do the
# same operations as the reference up to evaluation order; float32 ones lose ~1e-7 per op and
# accumulate over reductions.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-14}


@pytest.fixture(params=ALL_ISAS)
def isa(request):
    """Forces each ISA path in turn; a path this CPU lacks is reported as skipped."""
    name = request.param
    if name not in ffnc.supported_isas():
        pytest.skip(f"this CPU/build cannot run the {name} path")
    previous = ffnc.get_isa()
    ffnc.set_isa(name)
    yield name
    ffnc.set_isa(previous)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_close(actual, expected, dtype, scale=1.0):
    """actual (dtype) against a float64 reference, at the tolerance for dtype."""
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        expected,
        rtol=RTOL[dtype] * scale,
        atol=ATOL[dtype] * scale,
    )
