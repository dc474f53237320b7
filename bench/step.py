"""One training step (forward, backward, SGD momentum 0.9 update), ffnc plan vs numpy by hand
vs PyTorch eager (when importable): same model, same thread count, ratios from one run.

    python bench/step.py [--threads T] [--configs xor,small,mnist,wide,deep] [--seconds S]

Models: relu MLPs with softmax cross-entropy, float32. Prints the machine and the threads.
"""

from __future__ import annotations

import argparse
import os
import platform
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


def ffnc_step(sizes, batch, weights):
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
    plan = compile(loss, loss=loss, optimizer=Momentum(0.01, 0.9), batch_size=batch)
    return lambda xv, yv: plan.run({"x": xv, "y": yv})


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


def torch_step(sizes, batch, weights, threads):
    import torch

    torch.set_num_threads(threads)
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


def timed(step, args, seconds):
    for _ in range(3):
        step(*args)
    n, start = 0, time.perf_counter()
    while True:
        step(*args)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed > seconds and n >= 5:
            return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass
    import ffnc
    ffnc.set_num_threads(args.threads)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} cpus; "
          f"threads: {args.threads}; ffnc isa {ffnc.get_isa()}")
    print(f"{'config':8s} {'ffnc us':>10s} {'numpy us':>10s} {'torch us':>10s} "
          f"{'numpy/ffnc':>10s} {'torch/ffnc':>10s}")
    rng = np.random.default_rng(0)
    for name in args.configs.split(","):
        sizes, batch = CONFIGS[name]
        weights = init(sizes, rng)
        xv = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        yv = rng.integers(0, sizes[-1], batch)
        t_ffnc = timed(ffnc_step(sizes, batch, weights), (xv, yv), args.seconds)
        t_np = timed(numpy_step(sizes, batch, weights), (xv, yv), args.seconds)
        t_torch = float("nan")
        if have_torch:
            import torch
            t_torch = timed(torch_step(sizes, batch, weights, args.threads),
                            (torch.from_numpy(xv), torch.from_numpy(yv)), args.seconds)
        print(f"{name:8s} {t_ffnc:10.2f} {t_np:10.2f} {t_torch:10.2f} {t_np / t_ffnc:10.2f} "
              f"{t_torch / t_ffnc:10.2f}")


if __name__ == "__main__":
    main()
