"""Hessian-vector products: reverse-over-reverse against forward-over-reverse.

Builds the HVP of a softmax cross-entropy MLP loss with respect to all weights both ways and
reports, for each mode, the graph size (raw and simplified), the time to build the graph and
the time to evaluate it with the reference interpreter (best and median of --repeat
runs; the best is the one compared, being the least disturbed by other load). The faster
mode is ffnc.graph.HVP_DEFAULT.

    PYTHONPATH=build/dev/stage python3 -P bench/hvp.py [--batch 256] [--widths 64,256,256,10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import ffnc.graph as G


def mlp_loss(widths: list[int], batch: int, activation: str, rng: np.random.Generator):
    x = G.placeholder((None, widths[0]), np.float64, name="x")
    labels = G.placeholder((None,), np.int64, name="labels")
    weights, h = [], x
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        W = G.parameter(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), name=f"W{i}")
        b = G.parameter(np.zeros(n_out), name=f"b{i}")
        weights += [W, b]
        h = h @ W + b
        if i < len(widths) - 2:
            h = G.activation(h, activation)
    loss = G.softmax_cross_entropy(h, labels)
    feed = {x: rng.standard_normal((batch, widths[0])),
            labels: rng.integers(0, widths[-1], batch)}
    return loss, weights, feed


def measure(mode: str, loss, weights, vs, feed, repeat: int) -> dict:
    start = time.perf_counter()
    raw = G.hvp(loss, weights, vs, mode=mode)
    built = time.perf_counter() - start
    simple = G.simplify(raw)
    G.evaluate(simple, feed)  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        G.evaluate(simple, feed)
        times.append(time.perf_counter() - start)
    return {"mode": mode, "nodes": G.count_nodes(raw), "simplified": G.count_nodes(simple),
            "build_ms": built * 1e3, "eval_ms": min(times) * 1e3,
            "median_ms": statistics.median(times) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--widths", default="64,256,256,10")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    widths = [int(w) for w in args.widths.split(",")]
    loss, weights, feed = mlp_loss(widths, args.batch, args.activation, rng)
    vs = [rng.standard_normal(w.shape) for w in weights]
    rows = [measure(mode, loss, weights, vs, feed, args.repeat) for mode in G.HVP_MODES]
    print(f"HVP of a {args.widths} {args.activation} MLP, batch {args.batch}, float64, "
          f"reference interpreter (best of {args.repeat})")
    print(f"{'mode':8} {'nodes':>6} {'simplified':>10} {'build ms':>9} {'eval ms':>9} "
          f"{'median':>9}")
    for r in rows:
        print(f"{r['mode']:8} {r['nodes']:6d} {r['simplified']:10d} {r['build_ms']:9.2f} "
              f"{r['eval_ms']:9.2f} {r['median_ms']:9.2f}")
    fastest = min(rows, key=lambda r: r["eval_ms"])["mode"]
    print(f"faster: {fastest}; default: {G.HVP_DEFAULT}")


if __name__ == "__main__":
    main()
