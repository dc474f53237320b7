"""Thread counts: the limit every count must stay under (MAX_THREADS = FFNC_MAX_THREADS: more
made libgomp abort the process), and ffnc.threads(n), the calling thread's own count for a
with-block."""

import ctypes
import threading

import numpy as np
import pytest

import ffnc
from ffnc import _core, cli, nn, train

LIMIT = _core.MAX_THREADS

_core_lib = ctypes.CDLL(_core.__file__)
_core_lib.ffnc_multithreaded_calls.restype = ctypes.c_size_t


@pytest.fixture(autouse=True)
def counts_as_found():
    """Leaves the process-wide count and this thread's own as the test found them."""
    process, local = _core.configured_num_threads(), _core.local_num_threads()
    yield
    ffnc.set_num_threads(process)
    _core.set_local_num_threads(local)


# ---- the limit ---------------------------------------------------------------------------------

def test_limit_is_the_c_core_limit():
    assert LIMIT == 1024 and ffnc.threads.__module__ == "ffnc._threads"


@pytest.mark.parametrize("setter", [ffnc.set_num_threads, _core.set_local_num_threads])
@pytest.mark.parametrize("n", [LIMIT + 1, 2**31 - 1, 2**31, 2**40, np.int64(2**40)])
def test_counts_above_the_limit_are_refused_and_change_nothing(setter, n):
    ffnc.set_num_threads(2)
    _core.set_local_num_threads(3)
    with pytest.raises(ValueError, match=rf"^n must be <= {LIMIT}, got {n}$"):
        setter(n)
    assert _core.configured_num_threads() == 2 and _core.local_num_threads() == 3


@pytest.mark.parametrize("setter, read", [(ffnc.set_num_threads, _core.configured_num_threads),
                                          (_core.set_local_num_threads,
                                           _core.local_num_threads)])
def test_the_limit_itself_is_a_count(setter, read):
    setter(LIMIT)  # stored only: no kernel runs on that many threads here
    assert read() == LIMIT
    setter(None)
    assert read() is None


def test_fit_refuses_threads_above_the_limit_before_changing_anything():
    model = nn.Sequential([nn.Dense(2)], input_shape=(3,), loss="mse", seed=0)
    before = model.flat.copy()
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=rf"fit: threads must be <= {LIMIT}, got {LIMIT + 1}"):
        train.fit(model, x, y, epochs=1, threads=LIMIT + 1, verbose=0)
    np.testing.assert_array_equal(model.flat, before)
    assert _core.local_num_threads() is None


@pytest.mark.parametrize("value", [str(LIMIT + 1), "0", str(2**40)])
def test_cli_refuses_threads_out_of_range(capsys, value):
    status = cli.main(["train", "--threads", value, "--epochs", "1", "--quiet"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.strip() == (f"ffnc: error: --threads must be in [1, {LIMIT}], got {value}")


# ---- ffnc.threads ------------------------------------------------------------------------------

def test_sets_this_threads_count_for_the_block_and_restores_it():
    ffnc.set_num_threads(2)
    with ffnc.threads(1) as entered:
        assert entered is None
        assert _core.local_num_threads() == 1 and ffnc.get_num_threads() == 1
        assert _core.configured_num_threads() == 2  # the process-wide count is not touched
    assert _core.local_num_threads() is None and ffnc.get_num_threads() == 2


def test_blocks_nest_and_none_removes_the_count_inside():
    ffnc.set_num_threads(3)
    with ffnc.threads(2):
        with ffnc.threads(1):
            assert ffnc.get_num_threads() == 1
        assert ffnc.get_num_threads() == 2
        with ffnc.threads(None):
            assert _core.local_num_threads() is None
            assert ffnc.get_num_threads() == 3  # the process-wide count applies
        assert _core.local_num_threads() == 2
    assert _core.local_num_threads() is None


def test_the_count_is_restored_when_the_block_raises():
    _core.set_local_num_threads(2)
    with pytest.raises(KeyError):
        with ffnc.threads(1):
            raise KeyError("boom")
    assert _core.local_num_threads() == 2
    with pytest.raises(KeyboardInterrupt):
        with ffnc.threads(None):
            raise KeyboardInterrupt
    assert _core.local_num_threads() == 2


def test_one_object_serves_nested_and_repeated_blocks():
    one = ffnc.threads(1)
    with ffnc.threads(2):
        with one:
            assert ffnc.get_num_threads() == 1
        assert ffnc.get_num_threads() == 2
    assert _core.local_num_threads() is None


@pytest.mark.parametrize("bad, error, message", [
    (0, ValueError, "threads: n must be >= 1, got 0"),
    (-3, ValueError, "threads: n must be >= 1, got -3"),
    (LIMIT + 1, ValueError, f"threads: n must be <= {LIMIT}, got {LIMIT + 1}"),
    (1.0, TypeError, "threads: n must be an int, got float"),
    ("2", TypeError, "threads: n must be an int, got str"),
    (True, TypeError, "threads: n must be an int, got bool"),
    (np.bool_(True), TypeError, "threads: n must be an int, got bool"),
])
def test_bad_counts_are_refused_at_the_call(bad, error, message):
    _core.set_local_num_threads(2)
    with pytest.raises(error, match=f"^{message}$"):
        ffnc.threads(bad)  # before any with-block
    assert _core.local_num_threads() == 2


def test_numpy_integers_are_counts():
    with ffnc.threads(np.int32(1)):
        assert ffnc.get_num_threads() == 1


def test_kernels_run_on_the_blocks_count():
    a = np.ones((512, 256), np.float32)
    b = np.ones((256, 256), np.float32)
    with ffnc.threads(1):
        before = _core_lib.ffnc_multithreaded_calls()
        ffnc.kernels.gemm(a, b)
        assert _core_lib.ffnc_multithreaded_calls() == before
    with ffnc.threads(2):
        before = _core_lib.ffnc_multithreaded_calls()
        out = ffnc.kernels.gemm(a, b)
        assert _core_lib.ffnc_multithreaded_calls() > before
    np.testing.assert_array_equal(out, np.full((512, 256), 256, np.float32))


def test_two_python_threads_keep_their_own_counts():
    """Both threads inside their blocks at once, several times over: each sees only its own
    count, and the main thread sees neither."""
    ffnc.set_num_threads(3)
    barrier = threading.Barrier(2, timeout=30)
    seen: dict[int, list[tuple[int | None, int]]] = {1: [], 2: []}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with ffnc.threads(n):
                for _ in range(20):
                    barrier.wait()  # the other thread is inside its block too
                    seen[n].append((_core.local_num_threads(), ffnc.get_num_threads()))
            seen[n].append((_core.local_num_threads(), ffnc.get_num_threads()))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=work, args=(n,)) for n in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    for n in (1, 2):
        assert seen[n][:-1] == [(n, n)] * 20
        assert seen[n][-1] == (None, 3)  # restored in that thread: the process-wide count
    assert _core.local_num_threads() is None and ffnc.get_num_threads() == 3


def test_a_new_thread_starts_without_a_count():
    got = []
    with ffnc.threads(1):
        t = threading.Thread(target=lambda: got.append(_core.local_num_threads()))
        t.start()
        t.join()
    assert got == [None]


def test_sklearn_estimators_refuse_threads_above_the_limit():
    pytest.importorskip("sklearn")
    from ffnc.sklearn import MLPClassifier

    x, y = np.ones((6, 2)), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=rf"^threads must be <= {LIMIT}, got {LIMIT + 1}$"):
        MLPClassifier(threads=LIMIT + 1).fit(x, y)
    with pytest.warns(Warning, match="Maximum iterations"):  # sklearn's ConvergenceWarning
        model = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, threads=1).fit(x, y)
    assert model.predict_proba(x).shape == (6, 2)  # predicts inside ffnc.threads(1)
