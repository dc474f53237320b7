"""ffnc GEMM and fused dense layer against numpy (OpenBLAS), in the same run, interleaved.

    PYTHONPATH=build/dev/stage python bench/gemm.py [--threads 1 2] [--dtype f32 f64] [--quick]

Each thread count runs in its own worker process with OPENBLAS_NUM_THREADS (and ffnc's thread
count) set to it, so both libraries get the same number of cores. For every shape the two
libraries alternate in blocks of reps (with a pause between blocks when threaded, so that one
library's spinning idle threads do not slow the other), and the table reports each one's
median GFLOP/s and the ratio of their speeds ffnc / numpy (> 1: ffnc is faster), the median
of the ratios within each round (_paired). Shapes: square 256 .. 2048;
the MLP shapes Y = X W with batch M in {32, 128, 512} and (K, N) in {784, 1024, 4096}^2 and
their backward products dW = X^T dY (TN) and dX = dY W^T (NT); then dense (x @ W + b, relu)
against np.maximum(x @ W + b, 0). With more than one thread count, a last table gives each
library's speedup from 1 to the largest count on the large shapes (SCALING_SHAPES), the two
counts alternating in one process, so that both see the machine in the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

MLP_BATCHES = (32, 128, 512)
MLP_WIDTHS = (784, 1024, 4096)
SQUARES = (256, 512, 1024, 2048)
# (label, m, n, k): where the thread speedup is measured (see scaling_worker)
SCALING_SHAPES = (("square 2048", 2048, 2048, 2048), ("fwd M=512 K=4096 N=4096", 512, 4096, 4096),
                  ("square 1024", 1024, 1024, 1024))
DENSE_SHAPES = ((128, 512, 512), (128, 1024, 1024), (512, 1024, 1024), (128, 4096, 4096),
                (512, 4096, 4096))


def gemm_cases(quick: bool, match: str | None = None,
               ) -> list[tuple[str, int, int, int, bool, bool]]:
    """(label, m, n, k, trans_a, trans_b) of every GEMM case (whose label matches `match`)."""
    cases = [(f"square {s}", s, s, s, False, False) for s in SQUARES]
    widths = (784, 4096) if quick else MLP_WIDTHS
    batches = (32, 512) if quick else MLP_BATCHES
    for m in batches:
        for k in widths:
            for n in widths:
                cases.append((f"fwd  X W     M={m} K={k} N={n}", m, n, k, False, False))
                cases.append((f"dW   X^T dY  M={m} K={k} N={n}", k, n, m, True, False))
                cases.append((f"dX   dY W^T  M={m} K={k} N={n}", m, k, n, False, True))
    if match is not None:
        cases = [case for case in cases if re.search(match, case[0])]
    return cases


def _timed(fn, seconds: float, min_reps: int) -> list[float]:
    """Seconds of each call of fn, for at least min_reps calls and `seconds` in all."""
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _alternating(cases: dict, seconds: float, pause: float, rounds: int = 3) -> dict:
    """Seconds per call of each case (key -> (function, context factory)) in each of `rounds`
    rounds (key -> a list, the median call of each round): the cases are timed in alternating
    blocks, the order reversed every round; each block runs in its case's context and starts
    with a pause and one untimed call.

    The pause matters with threads: OpenBLAS's idle workers spin for about 2^28 cycles after a
    call (or a change of its thread count), and libgomp's for a while too, so back-to-back
    blocks would steal each other's cores.
    """
    times: dict = {key: [] for key in cases}
    keys = list(cases)
    for r in range(rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            fn, context = cases[key]
            with context():
                time.sleep(pause)
                fn()
                times[key].append(statistics.median(_timed(fn, seconds / rounds, 1)))
    return times


def _paired(slow: list[float], fast: list[float]) -> float:
    """The median over rounds of slow / fast, the two timed a moment apart in each round: this
    machine's speed drifts over seconds (a shared host), and a ratio within a round cancels
    what both sides saw, where a ratio of medians would mix rounds of different phases."""
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


def _interleaved(ffnc_fn, numpy_fn, seconds: float, pause: float) -> dict:
    """ffnc_fn against numpy_fn in alternating blocks (_alternating): the median seconds of
    each ("ffnc_s", "numpy_s") and the paired ratio of their speeds ("ratio", > 1: ffnc is
    faster)."""
    t = _alternating({"ffnc": (ffnc_fn, nullcontext), "numpy": (numpy_fn, nullcontext)},
                     seconds, pause)
    return {"ffnc_s": statistics.median(t["ffnc"]), "numpy_s": statistics.median(t["numpy"]),
            "ratio": _paired(t["numpy"], t["ffnc"])}


def _numpy_dense_relu(x, w, bias):
    """The numpy way: three passes and two temporaries."""
    import numpy as np

    return np.maximum(x @ w + bias, 0)


def worker(threads: int, dtypes: list[str], quick: bool, seconds: float,
           match: str | None) -> None:
    """Runs every case with `threads` threads and prints one JSON object per case."""
    import numpy as np

    import ffnc
    from ffnc import kernels

    ffnc.set_num_threads(threads)
    pause = 0.15 if threads > 1 else 0.0
    rng = np.random.default_rng(0)
    for dtype_name in dtypes:
        dtype = np.float32 if dtype_name == "f32" else np.float64
        for label, m, n, k, ta, tb in gemm_cases(quick, match):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            c_ffnc = np.empty((m, n), dtype)
            c_numpy = np.empty((m, n), dtype)
            a_op, b_op = (a.T if ta else a), (b.T if tb else b)
            t = _interleaved(partial(kernels.gemm, a, b, trans_a=ta, trans_b=tb, out=c_ffnc),
                             partial(np.matmul, a_op, b_op, out=c_numpy), seconds, pause)
            flops = 2.0 * m * n * k
            print(json.dumps({"op": "gemm", "label": label, "dtype": dtype_name,
                              "threads": threads, "m": m, "n": n, "k": k,
                              "ffnc_gflops": flops / t["ffnc_s"] / 1e9,
                              "numpy_gflops": flops / t["numpy_s"] / 1e9,
                              "ratio": t["ratio"]}), flush=True)
        for m, k, n in DENSE_SHAPES[:2] if quick else DENSE_SHAPES:
            if match is not None and not re.search(match, f"dense relu M={m} K={k} N={n}"):
                continue
            x = rng.standard_normal((m, k)).astype(dtype)
            w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
            bias = rng.standard_normal(n).astype(dtype)
            out = np.empty((m, n), dtype)
            t = _interleaved(partial(kernels.dense, x, w, bias, activation="relu", out=out),
                             partial(_numpy_dense_relu, x, w, bias), seconds, pause)
            flops = 2.0 * m * n * k
            print(json.dumps({"op": "dense", "label": f"dense relu M={m} K={k} N={n}",
                              "dtype": dtype_name, "threads": threads, "m": m, "n": n, "k": k,
                              "ffnc_gflops": flops / t["ffnc_s"] / 1e9,
                              "numpy_gflops": flops / t["numpy_s"] / 1e9,
                              "ratio": t["ratio"]}), flush=True)


def scaling_worker(threads: int, dtypes: list[str], seconds: float) -> None:
    """Prints one JSON object per SCALING_SHAPES case and dtype: each library's speedup from
    1 to `threads` threads, the two counts alternating in this one process (_alternating).
    numpy's count is set through threadpoolctl; while ffnc is timed, OpenBLAS is held at one
    thread, so that no idle OpenBLAS worker spins beside ffnc's."""
    from contextlib import contextmanager

    import numpy as np
    from threadpoolctl import threadpool_limits

    import ffnc
    from ffnc import kernels

    @contextmanager
    def ffnc_threads(t):
        ffnc.set_num_threads(t)
        yield

    def numpy_threads(t):
        return threadpool_limits(t, user_api="blas")

    rng = np.random.default_rng(0)
    for dtype_name in dtypes:
        dtype = np.float32 if dtype_name == "f32" else np.float64
        for label, m, n, k in SCALING_SHAPES:
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            c = np.empty((m, n), dtype)
            row = {"op": "scaling", "label": label, "dtype": dtype_name, "threads": threads}
            with threadpool_limits(1, user_api="blas"):
                t_ffnc = _alternating({t: (partial(kernels.gemm, a, b, out=c),
                                           partial(ffnc_threads, t)) for t in (1, threads)},
                                      seconds, 0.15)
            t_numpy = _alternating({t: (partial(np.matmul, a, b, out=c),
                                        partial(numpy_threads, t)) for t in (1, threads)},
                                   seconds, 0.15)
            for name, t in (("ffnc", t_ffnc), ("numpy", t_numpy)):
                row[f"{name}_speedup"] = _paired(t[1], t[threads])
                row[f"{name}_gflops_1"] = 2.0 * m * n * k / statistics.median(t[1]) / 1e9
            print(json.dumps(row), flush=True)


def _bench_binary() -> str | None:
    found = shutil.which("ffnc-bench")
    if found:
        return found
    root = Path(__file__).resolve().parent.parent
    for candidate in sorted(root.glob("build/*/ffnc-bench")):
        return str(candidate)
    return None


def machine_description() -> str:
    import ffnc

    return (f"{ffnc.cpu_model()}, {os.cpu_count()} logical CPUs, "
            f"{platform.system()} {platform.machine()}")


def peak_description(threads: list[int]) -> str:
    """The FMA peak as ffnc-bench info estimates it (vector width x 2 pipes x measured clock)."""
    binary = _bench_binary()
    if binary is None:
        return "FMA peak: unknown (ffnc-bench not found)"
    parts = []
    for dtype in ("f32", "f64"):
        try:
            out = subprocess.run([binary, "info", "--dtype", dtype, "--json"], check=True,
                                 capture_output=True, text=True, timeout=60).stdout
            per_core = json.loads(out.splitlines()[-1])["peak_gflops_per_core"]
        except (subprocess.SubprocessError, OSError, ValueError, KeyError, IndexError):
            return "FMA peak: unknown (ffnc-bench info failed)"
        parts.append(f"{dtype} {per_core:.1f} GFLOP/s per core "
                     f"({', '.join(f'{per_core * t:.1f} on {t}' for t in threads)})")
    return "FMA peak: " + "; ".join(parts)


def scaling_table(threads: int, dtypes: list[str], seconds: float) -> None:
    """Runs scaling_worker in a process whose OpenBLAS may use `threads` threads and prints
    its table."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        print("\n(thread speedup: needs threadpoolctl, pip install '.[bench]')")
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--scaling-worker", str(threads), "--dtype", *dtypes,
           "--seconds", str(2 * seconds)]
    print(f"\nspeedup from 1 to {threads} threads (the two alternating in one process)")
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            row = json.loads(line)
            print(f"{row['dtype']} {row['label']:<34} ffnc {row['ffnc_speedup']:5.2f}x "
                  f"({row['ffnc_gflops_1']:6.1f} GFLOP/s on 1)  numpy "
                  f"{row['numpy_speedup']:5.2f}x ({row['numpy_gflops_1']:6.1f} on 1)", flush=True)
    if proc.returncode != 0:
        sys.exit(f"scaling worker failed with exit code {proc.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", nargs="+", choices=["f32", "f64"], default=["f32", "f64"])
    parser.add_argument("--quick", action="store_true", help="a subset of the MLP shapes")
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="time per case and library (at least 3 reps each)")
    parser.add_argument("--match", metavar="REGEX",
                        help="only the cases whose label matches, e.g. 'square|M=32 '")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scaling-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.dtype, args.quick, args.seconds, args.match)
        return
    if args.scaling_worker is not None:
        scaling_worker(args.scaling_worker, args.dtype, args.seconds)
        return

    import numpy as np

    import ffnc

    print(f"machine: {machine_description()}")
    print(f"ffnc {ffnc.__version__} isa={ffnc.get_isa()}; numpy {np.__version__}")
    print(peak_description(args.threads))
    rows = []
    for threads in args.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(variable, None)
        cmd = [sys.executable, __file__, "--worker", str(threads), "--dtype", *args.dtype,
               "--seconds", str(args.seconds)] + (["--quick"] if args.quick else [])
        if args.match is not None:
            cmd += ["--match", args.match]
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:
                row = json.loads(line)
                rows.append(row)
                print(f"{row['dtype']} t={row['threads']} {row['label']:<34} "
                      f"ffnc {row['ffnc_gflops']:7.1f}  numpy {row['numpy_gflops']:7.1f} GFLOP/s"
                      f"  ratio {row['ratio']:5.2f}", flush=True)
        if proc.returncode != 0:
            sys.exit(f"worker for {threads} threads failed with exit code {proc.returncode}")
    if max(args.threads) > 1 and args.match is None:
        scaling_table(max(args.threads), args.dtype, args.seconds)
    print("\nsummary: ffnc / numpy speed ratio (median, min over cases)")
    for dtype in args.dtype:
        for threads in args.threads:
            for op in ("gemm", "dense"):
                ratios = [r["ratio"] for r in rows
                          if r["dtype"] == dtype and r["threads"] == threads and r["op"] == op]
                if ratios:
                    print(f"  {dtype} {threads} thread(s) {op:<5}: median "
                          f"{statistics.median(ratios):.2f}, min {min(ratios):.2f} "
                          f"over {len(ratios)} cases")


if __name__ == "__main__":
    main()
