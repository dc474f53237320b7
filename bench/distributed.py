"""Data-parallel scaling: training samples/s of one MNIST-sized model (784-512-512-10 relu MLP,
softmax cross-entropy, float32, momentum 0.9, global batch 128) for several ranks x threads
splits of the same cores, through ffnc.distributed (one allreduce of the gradient arena per
step) and, for reference, the plain single-process Plan.run_epoch.

    python bench/distributed.py [--configs 1x1,1x2,2x1] [--seconds 3] [--repeats 3]

Each config RxT runs ``mpiexec -n R python bench/distributed.py --worker --threads T``; the
best of `repeats` timed epochs is reported. Needs mpi4py and mpiexec (pip install "ffnc[mpi]").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

SIZES = [784, 512, 512, 10]
BATCH = 128


def build(max_batch: int):
    import ffnc.graph as G
    from ffnc import optim
    from ffnc.compiler import compile as compile_plan

    rng = np.random.default_rng(0)
    x = G.placeholder((None, SIZES[0]), np.float32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h = x
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        w = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
        h = h @ G.parameter(w) + G.parameter(np.zeros(b, np.float32))
        if i < len(SIZES) - 2:
            h = G.relu(h)
    loss = G.softmax_cross_entropy(h, y)
    return compile_plan(loss, loss=loss, optimizer=optim.Momentum(lr=0.01, momentum=0.9),
                        batch_size=max_batch)


def worker(threads: int, seconds: float, repeats: int, baseline: bool) -> None:
    import ffnc
    from ffnc import distributed

    group = distributed.init(threads=threads)
    plan = build(-(-BATCH // group.size))
    stepper = distributed.DistributedStepper(plan, group)
    rng = np.random.default_rng(1)
    # enough rows for about `seconds` of training per epoch, from a quick probe
    probe = {"x": rng.standard_normal((4 * BATCH, SIZES[0])).astype(np.float32),
             "y": rng.integers(0, SIZES[-1], 4 * BATCH)}
    group.barrier()
    tic = time.perf_counter()
    stepper.run_epoch(probe, BATCH)
    per_step = group.broadcast_object((time.perf_counter() - tic) / 4)
    steps = max(8, int(seconds / per_step))
    rows = steps * BATCH
    feed = {"x": rng.standard_normal((rows, SIZES[0])).astype(np.float32),
            "y": rng.integers(0, SIZES[-1], rows)}
    best = float("inf")
    for _ in range(repeats):
        group.barrier()
        tic = time.perf_counter()
        stepper.run_epoch(feed, BATCH)
        group.barrier()
        best = min(best, time.perf_counter() - tic)
    result = {"ranks": group.size, "threads": ffnc.get_num_threads(), "steps": steps,
              "samples_per_s": rows / best, "ms_per_step": 1e3 * best / steps}
    if baseline and group.size == 1:
        plain = build(BATCH)
        plain.run_epoch(probe, BATCH)
        best = float("inf")
        for _ in range(repeats):
            tic = time.perf_counter()
            plain.run_epoch(feed, BATCH)
            best = min(best, time.perf_counter() - tic)
        result["plain_samples_per_s"] = rows / best
    if group.is_root:
        print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="1x1,1x2,2x1",
                        help="comma-separated RANKSxTHREADS (default 1x1,1x2,2x1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.threads, args.seconds, args.repeats, baseline=True)
        return
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('bench/distributed.py: no mpiexec on PATH (pip install "ffnc[mpi]")')
    import ffnc

    print(f"# ffnc {ffnc.__version__}, ISA {ffnc.get_isa()}, {platform.processor() or '?'}, "
          f"{os.cpu_count()} CPUs; model {'-'.join(map(str, SIZES))} float32 momentum, "
          f"global batch {BATCH}")
    print(f"{'ranks x threads':>16} {'samples/s':>10} {'ms/step':>8} "
          f"{'plain run_epoch samples/s':>26}")
    for config in args.configs.split(","):
        ranks, threads = (int(v) for v in config.lower().split("x"))
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        cmd = [mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__),
               "--worker", "--threads", str(threads), "--seconds", str(args.seconds),
               "--repeats", str(args.repeats)]
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
        if run.returncode != 0 or not lines:
            sys.exit(f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
        r = json.loads(lines[0][len("RESULT "):])
        plain = f"{r['plain_samples_per_s']:.0f}" if "plain_samples_per_s" in r else "-"
        print(f"{f'{ranks} x {threads}':>16} {r['samples_per_s']:>10.0f} "
              f"{r['ms_per_step']:>8.2f} {plain:>26}", flush=True)


if __name__ == "__main__":
    main()
