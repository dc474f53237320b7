"""ffnc's element-wise, loss and optimizer kernels against numpy and PyTorch, in one run.

    python bench/kernels.py [--threads 1 2] [--dtype f32 f64] [--quick]

For each case the peers alternate rep after rep (after a warm-up), and the table gives each
one's median time and the ratio peer / ffnc (> 1: ffnc is faster). numpy's element-wise
operations are single-threaded whatever the thread count; PyTorch (when installed) gets the
same thread count as ffnc through torch.set_num_threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import ffnc
from ffnc import kernels

try:
    import torch
    import torch.nn.functional as torch_functional
except ImportError:  # PyTorch is an optional peer
    torch = None


def interleaved_medians(fns: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Median seconds of each function, run in turn round after round for about `seconds`."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    while min(len(t) for t in times.values()) < 5 or time.perf_counter() - start < seconds:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _stable_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def cases(rng: np.random.Generator, dtype, quick: bool):
    """(label, {peer: fn}) for every benchmark case; 'ffnc' is always the first peer."""
    for rows, cols in [(128, 1024)] if quick else [(128, 1024), (1024, 4096)]:
        yield from matrix_cases(rng, dtype, rows, cols)
    yield adam_case(rng, dtype, 1 << 18 if quick else 1 << 22)


def matrix_cases(rng: np.random.Generator, dtype, rows: int, cols: int):
    """The activation, bias and softmax cases on a (rows, cols) matrix."""
    x = rng.normal(size=(rows, cols)).astype(dtype)
    g = rng.normal(size=(rows, cols)).astype(dtype)
    b = rng.normal(size=cols).astype(dtype)
    out = np.empty_like(x)
    tx, tg, tb = (torch.from_numpy(a) for a in (x, g, b)) if torch else (None,) * 3
    shape = f"{rows}x{cols}"

    def ffnc_act(name):
        return lambda: kernels.activation_forward(x, name, out=out)

    yield f"relu fwd {shape}", {
        "ffnc": ffnc_act("relu"),
        "numpy": lambda: np.maximum(x, 0, out=out),
        **({"torch": lambda: torch.relu(tx)} if torch else {}),
    }
    yield f"tanh fwd {shape}", {
        "ffnc": ffnc_act("tanh"),
        "numpy": lambda: np.tanh(x, out=out),
        **({"torch": lambda: torch.tanh(tx)} if torch else {}),
    }
    yield f"sigmoid fwd {shape}", {
        "ffnc": ffnc_act("sigmoid"),
        "numpy": lambda: _stable_sigmoid(x),
        **({"torch": lambda: torch.sigmoid(tx)} if torch else {}),
    }
    yield f"gelu fwd {shape}", {
        "ffnc": ffnc_act("gelu"),
        **({"torch": lambda: torch_functional.gelu(tx)} if torch else {}),
    }
    y = np.tanh(x)
    ty = torch.from_numpy(y) if torch else None
    yield f"tanh bwd {shape}", {
        "ffnc": lambda: kernels.activation_backward(g, y, "tanh", out=out),
        "numpy": lambda: np.multiply(g, 1 - y * y, out=out),
        **({"torch": lambda: torch.ops.aten.tanh_backward(tg, ty)} if torch else {}),
    }
    yield f"bias fwd+bwd {shape}", {
        "ffnc": lambda: (kernels.bias_forward(x, b, out=out), kernels.bias_backward(g)),
        "numpy": lambda: (np.add(x, b, out=out), g.sum(axis=0)),
        **({"torch": lambda: (tx + tb, tg.sum(dim=0))} if torch else {}),
    }
    labels = rng.integers(0, cols, size=rows)
    tl = torch.from_numpy(labels) if torch else None

    def numpy_xent():
        z = x - x.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -logp[np.arange(rows), labels].mean()

    yield f"softmax-xent fwd {shape}", {
        "ffnc": lambda: kernels.softmax_cross_entropy(x, labels, probs=out),
        "numpy": numpy_xent,
        **({"torch": lambda: torch_functional.cross_entropy(tx, tl)} if torch else {}),
    }



def adam_case(rng: np.random.Generator, dtype, n: int):
    """One Adam step over n parameters."""
    p, grad = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    pn, mn, vn = p.copy(), m.copy(), v.copy()

    def numpy_adam():
        mn[:] = 0.9 * mn + 0.1 * grad
        vn[:] = 0.999 * vn + 0.001 * grad * grad
        pn[:] -= 1e-3 * (mn / 0.1) / (np.sqrt(vn / 0.001) + 1e-8)

    peers = {
        "ffnc": lambda: kernels.adam_update(p, grad, m, v, step=1, lr=1e-3),
        "numpy": numpy_adam,
    }
    if torch:
        tp = torch.from_numpy(p.copy()).requires_grad_()
        tp.grad = torch.from_numpy(grad)
        try:
            adam = torch.optim.Adam([tp], lr=1e-3, fused=True)
        except (RuntimeError, TypeError):
            adam = torch.optim.Adam([tp], lr=1e-3, foreach=True)
        peers["torch"] = adam.step
    return f"adam update n={n}", peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--dtype", nargs="+", default=["f32"], choices=["f32", "f64"])
    parser.add_argument("--seconds", type=float, default=0.3, help="time per case and peer")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    args = parser.parse_args()

    print(f"machine: {ffnc.cpu_model()}, {os.cpu_count()} cores; ffnc {ffnc.__version__} "
          f"ISA {ffnc.get_isa()}; numpy {np.__version__}; "
          f"torch {torch.__version__ if torch else 'not installed'}")
    rng = np.random.default_rng(0)
    for threads in args.threads:
        ffnc.set_num_threads(threads)
        if torch:
            torch.set_num_threads(threads)
        for dtype_name in args.dtype:
            dtype = np.float32 if dtype_name == "f32" else np.float64
            print(f"\nthreads={threads} dtype={dtype_name}   (times in us; ratio = peer / ffnc)")
            print(f"{'case':34s} {'ffnc':>10s} {'numpy':>10s} {'ratio':>7s} {'torch':>10s} "
                  f"{'ratio':>7s}")
            for label, peers in cases(rng, dtype, args.quick):
                t = interleaved_medians(peers, args.seconds)
                row = f"{label:34s} {t['ffnc'] * 1e6:10.1f}"
                for peer in ("numpy", "torch"):
                    if peer in t:
                        row += f" {t[peer] * 1e6:10.1f} {t[peer] / t['ffnc']:7.2f}"
                    else:
                        row += f" {'-':>10s} {'-':>7s}"
                print(row)


if __name__ == "__main__":
    main()
