"""A mixture density network on the inverted sinusoid (Bishop, 1994), against a Gaussian output.

The forward problem x = y + 0.3 sin(2 pi y) + noise (y uniform on [0, 1], noise uniform on
[-0.05, 0.05]) is a function; its inverse, predicting y from x, is not: for x near 0.5 three
values of y are plausible. A
Gaussian output can only put one bump at the conditional mean (which lies between the
branches, where there is little data); a mixture of K Gaussians, whose weights, means and
precisions are all functions of x, can put one on each branch. Both networks minimise their
negative log-likelihood (ffnc.nn.losses "gaussian_nll" and "mdn"). The script prints the
held-out NLL of each and, at x = 0.5, the modes of each predicted density and where samples
from it fall, against the three intervals of y where the data lie.

    PYTHONPATH=build/dev/stage python3 -P examples/mdn_sinusoid.py [--components 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import ffnc.nn as nn
from ffnc.nn import initializers
from ffnc.optim import Adam

# With noise U(-0.05, 0.05) the data at x = 0.5 lie in three separate intervals of y, one
# per branch, so p(y | x = 0.5) is truly trimodal. (With U(-0.1, 0.1) they fill all of
# [0.15, 0.85] and the conditional density there is flat: the fold's local extrema 0.593 and
# 0.407 are within 0.1 of 0.5.)
NOISE = 0.05


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) rows of the inverted sinusoid: y ~ U(0, 1), x = y + 0.3 sin(2 pi y) + noise,
    noise ~ U(-NOISE, NOISE)."""
    y = rng.uniform(0.0, 1.0, n)
    x = y + 0.3 * np.sin(2 * np.pi * y) + rng.uniform(-NOISE, NOISE, n)
    return x[:, None], y[:, None]


def branches(x: float) -> np.ndarray:
    """The y in [0, 1] with y + 0.3 sin(2 pi y) = x (the noise-free inverse): the sign changes
    on a fine grid, refined by linear interpolation."""
    grid = np.linspace(0.0, 1.0, 20001)
    f = grid + 0.3 * np.sin(2 * np.pi * grid) - x
    crossings = np.flatnonzero((f[:-1] <= 0) != (f[1:] <= 0))
    return grid[crossings] - f[crossings] * (grid[1] - grid[0]) / (f[crossings + 1]
                                                                  - f[crossings])


def support(x: float, noise: float = NOISE) -> list[tuple[float, float]]:
    """The intervals of y in [0, 1] whose data can show this x, |y + 0.3 sin(2 pi y) - x| <=
    noise: where p(y | x) is positive (uniform there, as y and the noise are uniform)."""
    grid = np.linspace(0.0, 1.0, 20001)
    inside = np.abs(grid + 0.3 * np.sin(2 * np.pi * grid) - x) <= noise
    edges = np.flatnonzero(np.diff(inside.astype(np.int8)))
    starts = [0] if inside[0] else []
    starts += [e + 1 for e in edges if not inside[e]]
    ends = [e for e in edges if inside[e]] + ([len(grid) - 1] if inside[-1] else [])
    return [(float(grid[a]), float(grid[b])) for a, b in zip(starts, ends, strict=True)]


def modes(log_density: np.ndarray, grid: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """The points of `grid` where a density sampled on it has a local maximum, leaving out
    ripples below `floor` times the highest density (a far tail's bumps are not modes of
    interest)."""
    d = log_density
    peak = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:])) + 1
    return grid[peak[d[peak] >= np.max(d) + np.log(floor)]]


def network(loss: Any, targets: np.ndarray, hidden: int, seed: int) -> nn.Sequential:
    """1-hidden-hidden-k tanh network whose output layer starts near the loss's
    initial_bias(targets): the targets' marginal distribution (for the mixture, components
    spread over it), so that training begins from a sensible density."""
    units = loss.units if isinstance(loss, nn.losses.MDN) else 2
    model = nn.Sequential([nn.Dense(hidden, activation="tanh"),
                           nn.Dense(hidden, activation="tanh"),
                           nn.Dense(units, kernel_initializer=initializers.Normal(0.0, 0.1))],
                          input_shape=(1,), dtype="float64", seed=seed, loss=loss)
    model.named_parameters()["2.bias"][:] = model.loss.initial_bias(targets)
    return model




def histogram(samples: np.ndarray, low: float = -0.2, high: float = 1.2, bins: int = 28,
              width: int = 50) -> str:
    counts, edges = np.histogram(samples, bins=bins, range=(low, high))
    scale = width / max(counts.max(), 1)
    return "\n".join(f"  {edges[i]:5.2f} | {'#' * int(round(c * scale))}"
                     for i, c in enumerate(counts))


def main(n_train: int = 3000, n_test: int = 3000, components: int = 5, hidden: int = 24,
         epochs: int = 300, batch_size: int = 50, lr: float = 0.01, probe: float = 0.5,
         seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    """Trains both networks; returns their held-out NLLs, and at x = probe the true branches,
    the support of p(y | x) (intervals of y), the modes of each predicted density and the
    fraction of its samples in each interval."""
    rng = np.random.default_rng(seed)
    x_train, y_train = make_data(n_train, rng)
    x_test, y_test = make_data(n_test, rng)
    center, scale = x_train.mean(), x_train.std()  # standardized inputs train faster

    def standardize(x: np.ndarray) -> np.ndarray:
        return (x - center) / scale

    mdn_loss = nn.losses.MDN(components)
    mdn = network(mdn_loss, y_train, hidden, seed)
    gauss = network(nn.losses.GaussianNLL(), y_train, hidden, seed)
    results: dict[str, Any] = {}
    for name, model in (("gaussian", gauss), ("mdn", mdn)):
        start = time.perf_counter()
        # minibatch Adam on the model's NLL: one compiled plan, one C call per epoch
        model.fit(standardize(x_train), y_train, optimizer=Adam(lr), epochs=epochs,
                  batch_size=batch_size, seed=seed, verbose=0)
        results[f"{name}_seconds"] = time.perf_counter() - start
        # the held-out loss is the mean NLL of the test points under the predicted density
        results[f"{name}_nll"] = model.evaluate(standardize(x_test), y_test)["loss"]

    roots = branches(probe)
    results["branches"] = roots
    results["support"] = support(probe)
    grid = np.linspace(-0.5, 1.5, 2001)
    sample_rng = np.random.default_rng(seed + 1)
    outputs = {}
    for name, model in (("gaussian", gauss), ("mdn", mdn)):
        out = model.forward(standardize(np.array([[probe]])))
        outputs[name] = out
        density = model.loss.log_density(out, grid[None, :, None])[0]
        results[f"{name}_modes"] = modes(density, grid)
        s = model.loss.sample(out, 4000, sample_rng)[0, :, 0]
        results[f"{name}_samples"] = s
        results[f"{name}_in"] = [float(np.mean((s >= a) & (s <= b)))
                                 for a, b in results["support"]]

    if verbose:
        print(f"inverted sinusoid: {n_train} training and {n_test} held-out points; networks "
              f"1-{hidden}-{hidden}-k (tanh), Adam lr {lr}, {epochs} epochs of batches of "
              f"{batch_size}")
        print(f"held-out NLL, Gaussian output (learned mean and precision): "
              f"{results['gaussian_nll']:8.4f}   (trained in {results['gaussian_seconds']:.2f} s)")
        print(f"held-out NLL, MDN with {components} components:               "
              f"{results['mdn_nll']:8.4f}   (trained in {results['mdn_seconds']:.2f} s)")
        pi, mu, beta = mdn_loss.mixture(outputs["mdn"])
        print(f"\nat x = {probe}: true branches y = {np.round(roots, 3).tolist()}; the data "
              f"lie (uniformly) in y in " + " and ".join(f"[{a:.2f}, {b:.2f}]"
                                                         for a, b in results["support"]))
        print("  MDN components: " + ", ".join(
            f"pi={p:.2f} mu={m:.3f} sd={1 / np.sqrt(b):.3f}"
            for p, m, b in sorted(zip(pi[0], mu[0, :, 0], beta[0, :, 0], strict=True),
                                  key=lambda t: t[1]) if p > 0.01))
        for name in ("mdn", "gaussian"):
            inside = results[f"{name}_in"]
            print(f"  {name:8s} density modes at y = "
                  f"{np.round(results[f'{name}_modes'], 3).tolist()}; samples in each "
                  f"interval: {[round(f, 2) for f in inside]} (outside: "
                  f"{1 - sum(inside):.2f})")
        print(f"  MDN mean {mdn_loss.mean(outputs['mdn'])[0, 0]:.3f}, mode "
              f"{mdn_loss.mode(outputs['mdn'])[0, 0]:.3f}; Gaussian mean "
              f"{gauss.loss.predict(outputs['gaussian'])[0, 0]:.3f}")
        for name in ("mdn", "gaussian"):
            print(f"\n{name} samples of y at x = {probe}:\n{histogram(results[name + '_samples'])}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(components=args.components, epochs=args.epochs, hidden=args.hidden, seed=args.seed)
