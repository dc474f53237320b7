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

# ---- fuzz tests (tests/test_fuzz_*.py) -----------------------------------------------------
# `pytest --slow` loads the "slow" profile (still derandomized) and runs SLOW_FACTOR times the
# examples of every test sized with fuzz(n). Every example a fuzz test runs is counted, and
# every generated case (a call with generated arguments: one per example, or several when a
# test runs a list of cases per example and calls count_case() for each); both totals are
# printed at the end of the session.
SLOW_FACTOR = 10
settings.register_profile("slow", derandomize=True, deadline=None, max_examples=1000)
_fuzz_scale = 1
fuzz_examples: dict[str, int] = {}
fuzz_cases: dict[str, int] = {}
_cases_in_example = [0]


def count_case() -> None:
    """Counts one generated case of the running fuzz example."""
    _cases_in_example[0] += 1


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help=f"run the fuzz tests with {SLOW_FACTOR}x their examples (hypothesis "
                          f"profile 'slow')")


def pytest_configure(config):
    global _fuzz_scale
    if config.getoption("--slow"):
        settings.load_profile("slow")
        _fuzz_scale = SLOW_FACTOR


def fuzz(n: int):
    """Decorator over a @given test: n examples (SLOW_FACTOR * n with --slow), no deadline,
    each run counted in fuzz_cases."""
    from hypothesis import HealthCheck, Phase

    def decorate(test):
        inner = test.hypothesis.inner_test
        name = test.__name__

        def counted(*args, **kwargs):
            _cases_in_example[0] = 0
            try:
                return inner(*args, **kwargs)
            finally:
                fuzz_examples[name] = fuzz_examples.get(name, 0) + 1
                fuzz_cases[name] = fuzz_cases.get(name, 0) + max(_cases_in_example[0], 1)

        test.hypothesis.inner_test = counted
        # no "explain" phase: it costs seconds per failure and adds nothing to the example
        return settings(max_examples=n * _fuzz_scale, deadline=None,
                        suppress_health_check=list(HealthCheck),
                        phases=[p for p in Phase if p != Phase.explain])(test)

    return decorate


def pytest_terminal_summary(terminalreporter):
    if fuzz_examples:
        terminalreporter.write_line(
            f"ffnc fuzz: {sum(fuzz_cases.values())} generated cases in "
            f"{sum(fuzz_examples.values())} hypothesis examples of {len(fuzz_examples)} fuzz "
            f"tests")

# ---- runs under AddressSanitizer (dev/pytest-asan.sh) ----------------------------------------


def _asan_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


# ASan keeps freed memory in a quarantine before reusing it (that is how it finds uses after
# free), so the resident set grows under it with memory that is freed: a test that bounds RSS
# growth to find leaks measures nothing there. ffnc's C code is checked for leaks by the C
# tests, which CI runs under ASan with LeakSanitizer on.
UNDER_ASAN = _asan_loaded()
rss_leak_check = pytest.mark.skipif(
    UNDER_ASAN, reason="RSS is no leak measure under ASan (its quarantine keeps freed memory)")

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
