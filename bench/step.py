"""One training step (forward, backward, SGD momentum 0.9 update), ffnc plan vs numpy by hand
vs PyTorch eager (when importable): same model, same thread count, ratios from one run.

    python bench/step.py [--threads T [T ...]] [--configs xor,small,mnist,wide,deep]
                         [--seconds S] [--memory]

Models: relu MLPs with softmax cross-entropy, float32. Prints the machine and the threads.
"ffnc us" is one Plan.run per step (a Python call each); "epoch us" is the cost per step of
Plan.run_epoch over 256 batches in one call, as ffnc.train.fit trains. The frameworks are
timed in interleaved rounds (the order reversed every other round); the times are the median
rounds, and each ratio is the median over rounds of the two frameworks' ratio within a round
(paired_ratio), so a burst of load or a slower phase of the machine touches both sides of
every ratio alike. With several thread counts (--threads 1 2) every framework runs at each
count in the same rounds, its count set as its turn starts, so the rows of one config
compare thread counts measured under the same conditions (this host's speed drifts between
processes; a separate run per count read xor at 2.0 us on one thread and 3.7 on two, where
the two counts alternating in one process read the same). --memory runs each config's ffnc
and numpy steps in fresh processes and reports their peak resident set, and how much of it
came after the framework's imports (the step's own memory, with the benchmark's weights and data).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

CONFIGS = {
    "xor": ([2, 16, 2], 4),
    "small": ([64, 128, 128, 10], 32),
    "mnist": ([784, 512, 512, 10], 128),
    "wide": ([1024, 4096, 4096, 10], 256),
    "deep": ([256] + [256] * 8 + [10], 64),
}


def init(sizes, rng):
    return [((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
             np.zeros(b, np.float32)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def ffnc_step(sizes, batch, weights, keep_grads=False):
    import ffnc.graph as G
    from ffnc.compiler import Momentum, compile

    x = G.placeholder((None, sizes[0]), np.float32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h = x
    for i, (w, b) in enumerate(weights):
        h = h @ G.parameter(w) + G.parameter(b)
        if i < len(weights) - 1:
            h = G.relu(h)
    loss = G.softmax_cross_entropy(h, y)
    plan = compile(loss, loss=loss, optimizer=Momentum(0.01, 0.9), batch_size=batch,
                   keep_grads=keep_grads)
    return plan


def ffnc_run(plan):
    return lambda xv, yv: plan.run({"x": xv, "y": yv})


EPOCH_STEPS = 256


def ffnc_epoch(plan):
    """A step's share of one run_epoch call over EPOCH_STEPS copies of the batch."""
    def step(xs, ys):
        plan.run_epoch({"x": xs, "y": ys}, len(ys) // EPOCH_STEPS)
    return step


def numpy_step(sizes, batch, weights):
    ws = [(w.copy(), b.copy()) for w, b in weights]
    vel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in ws]

    def step(xv, yv):
        hs = [xv]
        for i, (w, b) in enumerate(ws):
            z = hs[-1] @ w + b
            hs.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
        z = hs[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(yv)), yv]).mean()
        g = p
        g[np.arange(len(yv)), yv] -= 1
        g /= len(yv)
        for i in range(len(ws) - 1, -1, -1):
            w, b = ws[i]
            gw, gb = hs[i].T @ g, g.sum(axis=0)
            if i:
                g = (g @ w.T) * (hs[i] > 0)
            for (p_, v), d in zip(((w, vel[i][0]), (b, vel[i][1])), (gw, gb), strict=True):
                v *= 0.9
                v += d
                p_ -= 0.01 * v
        return loss
    return step


def torch_step(sizes, batch, weights):
    import torch

    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()

    def step(xv, yv):
        opt.zero_grad(set_to_none=False)
        loss = lossf(model(xv), yv)
        loss.backward()
        opt.step()
        return loss
    return step


def timed(steps: dict, seconds: float, rounds: int = 7, settle: float = 0.0) -> dict:
    """us per step of each of `steps` (name -> (function, args, steps per call, setup)) in
    each of `rounds` interleaved rounds of about seconds / rounds each, the order reversed
    every other round. Each one's part of a round calls its setup (None, or a function that
    sets its thread count), then sleeps `settle` seconds (see main). Returns name -> list of
    the rounds' times."""
    for fn, args, _, setup in steps.values():
        if setup is not None:
            setup()
        for _ in range(3):
            fn(*args)
    per_round = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, args, per_call, setup = steps[name]
            if setup is not None:
                setup()
            time.sleep(settle)
            # the clock is read after runs of calls that grow to about a millisecond, so that
            # its reads and the loop (~0.3 us a call) stay out of a microsecond step's time
            n, run, start = 0, 1, time.perf_counter()
            while True:
                for _ in range(run):
                    fn(*args)
                n += run
                elapsed = time.perf_counter() - start
                if elapsed > seconds / rounds and n >= 3:
                    break
                if elapsed / n * run * 2 < 1e-3:
                    run *= 2
            per_round[name].append(elapsed / (n * per_call) * 1e6)
    return per_round


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """The median over rounds of slow / fast, each round's two times taken a moment apart.

    This machine's speed drifts by up to 1.3x over seconds (a shared host), and a ratio of
    the two medians mixes rounds from different phases; the ratio within each round cancels
    the drift that both frameworks saw."""
    return float(np.median(np.asarray(slow) / np.asarray(fast)))


def _status_kib(field: str) -> int:
    """A memory figure of this process in KiB from /proc/self/status (Linux): VmRSS now, VmHWM
    its peak (ru_maxrss would include the parent's memory, inherited over exec)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def peak_rss_child(framework: str, config: str, threads: int, seconds: float) -> None:
    """(--child) imports one framework, then builds and runs its step on one config for
    `seconds`; prints the resident set right after the imports and the peak, in KiB."""
    if framework == "ffnc":
        import ffnc
        import ffnc.compiler  # noqa: F401 (what ffnc_step uses, imported before the baseline)
        import ffnc.graph  # noqa: F401
        ffnc.set_num_threads(threads)
    elif framework not in ("numpy", "none"):
        raise SystemExit(f"unknown framework {framework!r}")
    imported = _status_kib("VmRSS")
    sizes, batch = CONFIGS[config]
    rng = np.random.default_rng(0)
    weights = init(sizes, rng)
    xv = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    yv = rng.integers(0, sizes[-1], batch)
    if framework == "ffnc":
        step = ffnc_run(ffnc_step(sizes, batch, weights))
    elif framework == "numpy":
        step = numpy_step(sizes, batch, weights)
    else:  # the harness alone: its imports, weights and data
        step = None
    del weights
    start = time.perf_counter()
    while step is not None and time.perf_counter() - start < seconds:
        step(xv, yv)
    print(imported, _status_kib("VmHWM"))


def memory_table(configs: list[str], threads: int) -> None:
    import shutil
    import subprocess
    import sys
    import tempfile

    if not os.path.exists("/proc/self/status"):
        raise SystemExit("--memory reads the children's VmRSS and VmHWM in /proc (Linux)")
    # The children import from bytecode compiled once here, as from an installed wheel:
    # without it (PYTHONDONTWRITEBYTECODE in a source checkout) each child would compile
    # ffnc's modules from source and count the compiler's memory as ffnc's.
    pycache = tempfile.mkdtemp(prefix="ffnc-bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache

    def child(framework: str, config: str) -> tuple[float, float]:
        """(RSS after the imports, peak RSS) of a child, in MiB."""
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", framework,
                              "--configs", config, "--threads", str(threads)],
                             check=True, capture_output=True, text=True, env=env).stdout
        imported, peak = (int(v) / 1024 for v in out.split()[-2:])
        return imported, peak

    try:
        for framework in ("ffnc", "numpy", "none"):  # writes the bytecode
            child(framework, configs[0])
        print(f"{'config':8s} {'ffnc MiB':>9s} {'+step':>6s} {'numpy MiB':>10s} {'+step':>6s} "
              f"{'harness':>8s} {'numpy/ffnc':>10s}")
        imports = {}
        for name in configs:
            peaks = {}
            for framework in ("ffnc", "numpy", "none"):
                imports[framework], peaks[framework] = child(framework, name)
            f, n = peaks["ffnc"], peaks["numpy"]
            print(f"{name:8s} {f:9.1f} {f - imports['ffnc']:6.1f} {n:10.1f} "
                  f"{n - imports['numpy']:6.1f} {peaks['none'] - imports['none']:8.1f} "
                  f"{n / f:10.2f}")
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    print(f"MiB: peak RSS of a fresh process running the step; +step: peak minus the RSS after "
          f"importing the framework (numpy {imports['numpy']:.1f}, ffnc {imports['ffnc']:.1f} "
          f"MiB); harness: the +step of the benchmark's own weights and data alone")


def thread_setters(threads: int, have_torch: bool) -> dict:
    """framework -> a function that sets its thread count to `threads`. numpy's is its BLAS
    (threadpoolctl); ffnc's and torch's their own counts."""
    from threadpoolctl import threadpool_limits

    import ffnc

    setters = {"ffnc": lambda: ffnc.set_num_threads(threads),
               "numpy": lambda: threadpool_limits(threads, user_api="blas")}
    if have_torch:
        import torch

        setters["torch"] = lambda: torch.set_num_threads(threads)
    return setters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="thread counts, each framework timed at all of them in the same rounds")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--memory", action="store_true", help="peak RSS of each step's process")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if any(t < 1 for t in args.threads):
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    most = max(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(most))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        # numpy's BLAS would run on every core whatever --threads says, and the ratios would
        # compare ffnc on T threads with numpy on all of them
        raise SystemExit("bench/step.py needs threadpoolctl to hold numpy's BLAS to --threads: "
                         "pip install 'ffnc[bench]'") from None
    threadpool_limits(most)
    if args.child:
        peak_rss_child(args.child, args.configs, most, args.seconds)
        return
    import ffnc
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    configs = args.configs.split(",")
    counts = ", ".join(map(str, args.threads))
    print(f"machine: {ffnc.cpu_model()}, {os.cpu_count()} cpus; threads: {counts}; "
          f"ffnc isa {ffnc.get_isa()}")
    if args.memory:
        for threads in args.threads:
            if len(args.threads) > 1:
                print(f"threads: {threads}")
            memory_table(configs, threads)
        return
    print(f"{'config':8s} {'threads':>7s} {'ffnc us':>10s} {'epoch us':>10s} {'numpy us':>10s} "
          f"{'torch us':>10s} {'numpy/ffnc':>10s} {'torch/ffnc':>10s}")
    rng = np.random.default_rng(0)
    setters = {t: thread_setters(t, have_torch) for t in args.threads}
    for name in configs:
        sizes, batch = CONFIGS[name]
        weights = init(sizes, rng)
        xv = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        yv = rng.integers(0, sizes[-1], batch)
        # one plan (and one numpy and torch model) for every thread count: each reads the
        # count when it runs, and their weights all train on from where the last round left
        plan = ffnc_step(sizes, batch, weights)
        frameworks = {"ffnc": (ffnc_run(plan), (xv, yv), 1),
                      "numpy": (numpy_step(sizes, batch, weights), (xv, yv), 1)}
        if batch * sizes[0] * EPOCH_STEPS <= 1 << 24:  # the epoch's copies fit in 64 MiB
            frameworks["epoch"] = (ffnc_epoch(plan), (np.tile(xv, (EPOCH_STEPS, 1)),
                                                      np.tile(yv, EPOCH_STEPS)), EPOCH_STEPS)
        if have_torch:
            import torch
            frameworks["torch"] = (torch_step(sizes, batch, weights),
                                   (torch.from_numpy(xv), torch.from_numpy(yv)), 1)
        steps = {}
        for threads in args.threads:
            for framework, (fn, fn_args, per_call) in frameworks.items():
                setter = setters[threads]["ffnc" if framework == "epoch" else framework]
                steps[framework, threads] = (fn, fn_args, per_call, setter)
        # With several threads, the previous framework's idle workers spin for a while after
        # its last call (OpenBLAS's for ~2^28 cycles, about 0.1 s): a framework timed right
        # after another shares the cores with them. Measured here, mnist at 2 threads: ffnc
        # 8.5 ms per step timed right after numpy, 4.0 ms alone.
        rounds = timed(steps, args.seconds * len(frameworks),
                       settle=0.2 if most > 1 else 0.0)
        nan = float("nan")
        for threads in args.threads:
            t = {framework: float(np.median(rounds[framework, threads]))
                 for framework in frameworks}
            vs_numpy = paired_ratio(rounds["numpy", threads], rounds["ffnc", threads])
            vs_torch = (paired_ratio(rounds["torch", threads], rounds["ffnc", threads])
                        if "torch" in t else nan)
            print(f"{name:8s} {threads:7d} {t['ffnc']:10.2f} {t.get('epoch', nan):10.2f} "
                  f"{t['numpy']:10.2f} {t.get('torch', nan):10.2f} {vs_numpy:10.2f} "
                  f"{vs_torch:10.2f}", flush=True)


if __name__ == "__main__":
    main()
