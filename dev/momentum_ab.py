"""A/B timing of a momentum training step with the weight gradients taken straight into the
velocity (compile's default) against the same step keeping every gradient (keep_grads=True).

    PYTHONPATH=build/dev/stage python dev/momentum_ab.py --configs small,mnist,deep --threads 1

Both plans train bench/step.py's model for a config, in one process, timed in alternation
(15 rounds; thread CPU time at one thread, wall time otherwise), so a change of machine load
hits both alike. Prints the medians and kept/fused (> 1: the fusion is faster). A development
tool for the choice made in ffnc/compiler/fuse_update.py; bench/step.py is the benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import step as bench_step  # noqa: E402

import ffnc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="small,mnist,deep")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=0.05, help="per plan and round")
    args = ap.parse_args()
    ffnc.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    print(f"threads {args.threads}; {'thread CPU' if args.threads == 1 else 'wall'} time, "
          f"median of {args.rounds} rounds")
    for name in args.configs.split(","):
        sizes, batch = bench_step.CONFIGS[name]
        rng = np.random.default_rng(0)
        weights = bench_step.init(sizes, rng)
        feed = {"x": rng.standard_normal((batch, sizes[0])).astype(np.float32),
                "y": rng.integers(0, sizes[-1], batch)}
        plans = {"fused": bench_step.ffnc_step(sizes, batch, weights),
                 "kept": bench_step.ffnc_step(sizes, batch, weights, keep_grads=True)}
        start = time.perf_counter()
        plans["kept"].run(feed)
        reps = max(1, int(args.seconds / max(time.perf_counter() - start, 1e-6)))
        times: dict[str, list[float]] = {k: [] for k in plans}
        for _ in range(args.rounds):
            for key, plan in plans.items():
                t0 = clock()
                for _ in range(reps):
                    plan.run(feed)
                times[key].append((clock() - t0) / reps * 1e6)
        fused, kept = (float(np.median(times[k])) for k in ("fused", "kept"))
        print(f"{name:6s} fused {fused:10.1f} us  kept {kept:10.1f} us  kept/fused "
              f"{kept / fused:.3f}")


if __name__ == "__main__":
    main()
