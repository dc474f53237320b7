"""ffnc's OpenMP pool under threadpoolctl, and ffnc next to numpy/OpenBLAS, scikit-learn and
PyTorch in one process.

threadpoolctl is optional for ffnc (scikit-learn brings it): these tests skip without it.
The tests that change OpenMP settings or import torch run in a fresh interpreter, so this
process's thread settings stay as the other tests expect them.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import ffnc

threadpoolctl = pytest.importorskip("threadpoolctl")


def _ffnc_pools(info=None):
    """The pools of this extension (a libffnc.so loaded through ctypes, as the C-API tests
    do, is a second, separate ffnc pool)."""
    info = threadpoolctl.threadpool_info() if info is None else info
    extension = os.path.realpath(ffnc._core.__file__)
    return [pool for pool in info if pool["internal_api"] == "ffnc"
            and os.path.realpath(pool["filepath"]) == extension]


@pytest.fixture
def explicit_threads():
    """Sets ffnc's count to 3 for the test, then puts back what was there."""
    saved = ffnc.get_num_threads()
    ffnc.set_num_threads(3)
    yield 3
    ffnc.set_num_threads(saved)


def _run_python(code, env=None, timeout=120):
    """Runs code in a fresh interpreter with this process's sys.path; returns its last stdout
    line parsed as JSON."""
    package_root = os.path.dirname(os.path.dirname(ffnc.__file__))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + [p for p in sys.path if p]))
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(code)], env=environment,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("order", ["ffnc_first", "threadpoolctl_first"])
def test_either_import_order_registers_and_ffnc_alone_does_not_import_threadpoolctl(order):
    first, second = ("ffnc", "threadpoolctl") if order == "ffnc_first" else \
        ("threadpoolctl", "ffnc")
    result = _run_python(f"""
        import json, sys
        import {first}
        loaded_early = "threadpoolctl" in sys.modules
        import {second}
        import ffnc, threadpoolctl
        ffnc.set_num_threads(2)
        with threadpoolctl.threadpool_limits(1):
            inside = ffnc.get_num_threads()
        print(json.dumps({{
            "loaded_early": loaded_early,
            "pools": [p["internal_api"] for p in threadpoolctl.threadpool_info()],
            "inside": inside, "after": ffnc.get_num_threads(),
            "finders": [type(f).__name__ for f in sys.meta_path],
        }}))
        """)
    assert result["loaded_early"] == (order == "threadpoolctl_first")
    assert result["pools"].count("ffnc") == 1
    assert (result["inside"], result["after"]) == (1, 2)
    assert "_ThreadpoolctlFinder" not in result["finders"]  # it steps aside once done


def test_threadpool_info_lists_ffncs_pool():
    pools = _ffnc_pools()
    assert len(pools) == 1, threadpoolctl.threadpool_info()
    pool = pools[0]
    assert pool["user_api"] == "openmp"
    assert pool["version"] == ffnc._core.version()
    assert pool["openmp"] == ffnc.openmp_info()
    assert os.path.realpath(pool["filepath"]) == os.path.realpath(ffnc._core.__file__)
    assert pool["num_threads"] == ffnc.get_num_threads()


def test_limits_cap_an_explicit_count(explicit_threads):
    with threadpoolctl.threadpool_limits(1):
        assert ffnc.get_num_threads() == 1
        assert _ffnc_pools()[0]["num_threads"] == 1
    assert ffnc.get_num_threads() == 3
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert ffnc.get_num_threads() == 2
    assert ffnc.get_num_threads() == 3
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert ffnc.get_num_threads() == 3
    # a limit never raises the count
    with threadpoolctl.threadpool_limits(8, user_api="openmp"):
        assert ffnc.get_num_threads() == 3


def test_limits_nest_and_leave_no_cap_behind(explicit_threads):
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert ffnc.get_num_threads() == 1
        assert ffnc.get_num_threads() == 2
    assert ffnc.get_num_threads() == 3
    # restoring must not have stored the old count as a cap: a larger count takes effect
    ffnc.set_num_threads(5)
    assert ffnc.get_num_threads() == 5


def test_limits_by_filepath_and_the_controller_api(explicit_threads):
    controller = threadpoolctl.ThreadpoolController()
    mine = controller.select(filepath=_ffnc_pools()[0]["filepath"])  # this extension only
    assert len(mine) == 1
    with mine.limit(limits=1):
        assert ffnc.get_num_threads() == 1
    path = _ffnc_pools()[0]["filepath"]
    with threadpoolctl.threadpool_limits({path: 2}):
        assert ffnc.get_num_threads() == 2
    assert ffnc.get_num_threads() == 3


def test_a_limit_applies_to_the_thread_that_set_it(explicit_threads):
    limited, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            seen["worker"] = ffnc.get_num_threads()
            limited.set()
            release.wait(30)

    thread = threading.Thread(target=worker)
    thread.start()
    assert limited.wait(30)
    seen["main"] = ffnc.get_num_threads()
    release.set()
    thread.join(30)
    assert seen == {"worker": 1, "main": 3}


def test_limited_kernels_start_no_threads():
    # In a fresh process with 2 OpenMP threads: under threadpool_limits(1) a large GEMM runs
    # on the calling thread only (no OpenMP worker is created); afterwards it uses 2.
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("counts threads through /proc/self/task (Linux)")
    result = _run_python("""
        import json, os
        import numpy as np
        import ffnc
        from ffnc.kernels import gemm
        from threadpoolctl import threadpool_limits

        def threads():
            return len(os.listdir("/proc/self/task"))

        a = np.ones((384, 384), np.float32)
        out = {"default": ffnc.get_num_threads(), "before": threads()}
        with threadpool_limits(1):
            out["limited_count"] = ffnc.get_num_threads()
            ok = bool((gemm(a, a) == 384).all())
            out["limited"] = threads()
        out["restored_count"] = ffnc.get_num_threads()
        ok &= bool((gemm(a, a) == 384).all())
        out["after"] = threads()
        out["ok"] = ok
        print(json.dumps(out))
        """, env={"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"})
    assert result["ok"]
    assert result["default"] == 2 and result["limited_count"] == 1
    assert result["restored_count"] == 2
    assert result["limited"] == result["before"]
    assert result["after"] == result["before"] + 1


def test_the_default_follows_openmp_at_call_time():
    result = _run_python("""
        import json
        import ffnc
        from threadpoolctl import threadpool_limits

        out = {"env": ffnc.get_num_threads()}
        with threadpool_limits(1, user_api="openmp"):
            out["limited"] = ffnc.get_num_threads()
        out["restored"] = ffnc.get_num_threads()
        ffnc.set_num_threads(2)
        out["explicit"] = ffnc.get_num_threads()
        print(json.dumps(out))
        """, env={"OMP_NUM_THREADS": "3"})
    assert result == {"env": 3, "limited": 1, "restored": 3, "explicit": 2}


def test_threadpoolctl_is_not_imported_when_absent():
    # ffnc registers its controller only when threadpoolctl is installed; hide it and import.
    result = _run_python("""
        import json, sys
        sys.modules["threadpoolctl"] = None   # makes "import threadpoolctl" fail
        import ffnc
        print(json.dumps({"threads": ffnc.get_num_threads(),
                          "sklearn": "sklearn" in sys.modules,
                          "torch": "torch" in sys.modules}))
        """)
    assert result["threads"] >= 1
    assert not result["sklearn"] and not result["torch"]


MIXED = """
    import json, sys, threading
    import numpy as np
    IMPORT_ORDER

    import ffnc
    from ffnc.kernels import dense
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 192))
    w = rng.standard_normal((192, 160))
    b = rng.standard_normal(160)
    expected = np.maximum(x @ w + b, 0)
    errors = []

    def check(name, fn, rounds=4):
        def run():
            try:
                for _ in range(rounds):
                    fn()
            except Exception as exc:  # reported below, the test fails on it
                errors.append(f"{name}: {exc!r}")
        return threading.Thread(target=run, name=name)

    def ffnc_dense():
        got = dense(x, w, b, activation="relu")
        assert np.allclose(got, expected, rtol=1e-12, atol=1e-12), "ffnc dense"

    def numpy_matmul():
        assert np.allclose(np.maximum(x @ w + b, 0), expected), "numpy matmul"

    workers = [check("ffnc", ffnc_dense), check("ffnc2", ffnc_dense), check("numpy", numpy_matmul)]
    have = {"torch": False, "sklearn": False}
    try:
        import torch
        have["torch"] = True
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))

        def torch_linear():
            got = torch.relu(tx @ tw + tb).numpy()
            assert np.allclose(got, expected), "torch"
        workers.append(check("torch", torch_linear))
    except ImportError:
        pass
    try:
        from sklearn.cluster import KMeans
        have["sklearn"] = True
        blobs = np.concatenate([rng.normal(c, 0.1, (200, 4)) for c in (-5.0, 0.0, 5.0)])

        def sklearn_kmeans():
            km = KMeans(3, n_init=1, random_state=0).fit(blobs)
            centers = np.sort(km.cluster_centers_[:, 0])
            assert np.allclose(centers, [-5, 0, 5], atol=0.1), "sklearn kmeans"
        workers.append(check("sklearn", sklearn_kmeans, rounds=2))
    except ImportError:
        pass

    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    free = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    with threadpool_limits(1):
        limited = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
        torch_limited = torch.get_num_threads() if have["torch"] else None
        workers = [check("ffnc", ffnc_dense, 2), check("numpy", numpy_matmul, 2)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(120)
    apis = sorted({api for api, _ in free})
    print(json.dumps({"errors": errors, "have": have, "apis": apis, "limited": limited,
                      "torch_limited": torch_limited,
                      "openmp_libraries": sorted(p["filepath"] for p in threadpool_info()
                                                 if p["internal_api"] == "openmp")}))
"""


@pytest.mark.parametrize("order", ["ffnc_first", "torch_first"])
def test_ffnc_numpy_torch_sklearn_in_one_process(order):
    """ffnc kernels, numpy matmul, torch and scikit-learn (when installed) run concurrently in
    threads, results checked; then threadpool_limits(1) limits every pool, ffnc's included.
    torch's wheel bundles a libgomp whose soname is libgomp.so.1, so whichever of ffnc and
    torch loads first provides the one libgomp both use: both orders are run."""
    first = "import torch" if order == "torch_first" else "import ffnc"
    if order == "torch_first":
        pytest.importorskip("torch")
    result = _run_python(MIXED.replace("IMPORT_ORDER", first), timeout=300)
    assert result["errors"] == []
    assert "ffnc" in result["apis"] and "openmp" in result["apis"]
    assert all(n == 1 for _, n in result["limited"]), result["limited"]
    assert any(api == "ffnc" for api, _ in result["limited"])
    if result["have"]["torch"]:
        assert result["torch_limited"] == 1


def test_limits_hold_while_training_concurrently(explicit_threads):
    # Threads that each limit themselves run ffnc's kernels concurrently; every result is
    # exact (the kernels' sums do not depend on the thread count).
    from ffnc.kernels import gemm

    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 300))
    b = rng.standard_normal((300, 100))
    reference = gemm(a, b)
    results, errors = [], []

    def worker(limit):
        try:
            with threadpoolctl.threadpool_limits(limit, user_api="openmp"):
                assert ffnc.get_num_threads() == min(limit, 3)
                for _ in range(5):
                    results.append(np.array_equal(gemm(a, b), reference))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2, 1, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 20 and all(results)
