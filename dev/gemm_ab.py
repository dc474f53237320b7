"""A/B timing of ffnc's GEMM between builds (and OpenBLAS through numpy) in one process.

    python dev/gemm_ab.py build/old/libffnc.so build/new/libffnc.so [--shapes 1024x1024x1024 ...]

Each library is loaded with ctypes (its own copy of the symbols) and the candidates are called
in rotation, so a change of machine load hits all of them alike. With --threads 1 the time is
the calling thread's CPU time (the GEMM runs in it), which a busy machine inflates far less than
wall time; with more threads it is wall time, each call after a pause in which
the other library's idle threads stop spinning. The table prints each candidate's best GFLOP/s
over --reps calls and, in parentheses, its speed relative to the first: the median over the
rotations of the two calls' ratio (paired, so that the machine's drift cancels). This is a
development tool for deciding between kernel variants; bench/gemm.py is the benchmark.
"""

from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np

F32, F64 = 0, 1
ACT_RELU = 1


def load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    sz, dbl, ptr, i = ctypes.c_size_t, ctypes.c_double, ctypes.c_void_p, ctypes.c_int
    lib.ffnc_gemm.argtypes = [i, i, i, sz, sz, sz, dbl, ptr, sz, ptr, sz, dbl, ptr, sz]
    lib.ffnc_dense_forward.argtypes = [i, sz, sz, sz, ptr, ptr, i, ptr, i, dbl, ptr, ptr]
    lib.ffnc_set_num_threads.argtypes = [i]
    return lib


def parse_shape(text: str) -> tuple[str, int, int, int]:
    """'MxNxK', optionally prefixed 'nt:', 'tn:' (transposes) or 'dense:' (gemm + bias + relu)."""
    kind, _, dims = text.rpartition(":")
    m, n, k = (int(d) for d in dims.split("x"))
    return (kind or "nn"), m, n, k


def candidates(libs, kind, m, n, k, dtype):
    rng = np.random.default_rng(0)
    code = F32 if dtype == np.float32 else F64
    trans_a, trans_b = kind == "tn", kind == "nt"
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    c = np.zeros((m, n), dtype)
    # the pointers are taken once: each ndarray.ctypes lookup costs about a microsecond, which
    # would count against ffnc on small products (the calls hold the arrays, `keep`, so that
    # the pointers stay valid)
    keep = (a, b, bias, c)
    pa, pb, pbias, pc = (x.ctypes.data for x in keep)
    calls = []
    for lib in libs:
        if kind == "dense":
            calls.append(lambda lib=lib, keep=keep: lib.ffnc_dense_forward(
                code, m, n, k, pa, pb, 0, pbias, ACT_RELU, 0.0, None, pc))
        else:
            lda, ldb = a.shape[1], b.shape[1]
            calls.append(lambda lib=lib, lda=lda, ldb=ldb, keep=keep: lib.ffnc_gemm(
                code, trans_a, trans_b, m, n, k, 1.0, pa, lda, pb, ldb, 0.0, pc, n))
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    if kind == "dense":
        calls.append(lambda: np.maximum(opa @ opb + bias, 0))
    else:
        calls.append(lambda: np.matmul(opa, opb, out=c))
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("libs", nargs="+", help="libffnc.so of each build to compare")
    ap.add_argument("--shapes", nargs="+", default=["1024x1024x1024", "2048x2048x2048",
                                                    "dense:128x512x512", "128x1024x784",
                                                    "tn:1024x4096x128", "nt:128x1024x4096"])
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    dtype = np.float32 if args.dtype == "f32" else np.float64
    libs = [load(p) for p in args.libs]
    for lib in libs:
        lib.ffnc_set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        # without it OpenBLAS runs on every core, and with --threads 1 the thread CPU clock
        # then times only the calling thread's share of numpy's product
        raise SystemExit("dev/gemm_ab.py needs threadpoolctl to hold numpy's BLAS to --threads: "
                         "pip install 'ffnc[bench]'") from None
    threadpool_limits(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    names = [f"lib{i}" for i in range(len(libs))] + ["numpy"]
    print(f"{args.dtype}, {args.threads} thread(s), {args.reps} rotations; "
          + ", ".join(f"lib{i} = {p}" for i, p in enumerate(args.libs)))
    for shape in args.shapes:
        kind, m, n, k = parse_shape(shape)
        calls = candidates(libs, kind, m, n, k, dtype)
        times: list[list[float]] = [[] for _ in calls]
        for call in calls:
            call()  # warm: packing buffers, page faults
        for rep in range(args.reps):
            # the order rotates, so that no candidate always runs first or right after another
            for j in range(len(calls)):
                i = (j + rep) % len(calls)
                if args.threads > 1:
                    # OpenBLAS's idle workers spin for ~2^28 cycles after a call, libgomp's
                    # for a while: let them settle so no candidate runs beside them
                    time.sleep(0.15)
                start = clock()
                calls[i]()
                times[i].append(clock() - start)
        # a candidate's speed relative to lib0 is the median of the ratios within each
        # rotation, the calls a moment apart: this machine's speed drifts by up to 1.3x over
        # seconds, which a ratio of bests or of medians taken at different moments mixes in
        gflops = [2 * m * n * k / min(t) / 1e9 for t in times]
        ratios = [float(np.median(np.array(times[0]) / np.array(t))) for t in times]
        cells = "  ".join(f"{name} {g:6.1f} ({r:4.2f})"
                          for name, g, r in zip(names, gflops, ratios, strict=True))
        print(f"{shape:22s} {cells}")


if __name__ == "__main__":
    main()
