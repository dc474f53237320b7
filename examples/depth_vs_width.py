"""Depth against width at an equal parameter count.

A deep network can express functions with many more linear pieces than a shallow one with the
same number of parameters (the lecture's folding argument: each ReLU layer can fold the input
space). The target here is a sawtooth with 8 teeth on [0, 1], the composition of a "tent" map
three times, which a 3-hidden-layer ReLU net of width 8 can express exactly. It is compared with
one hidden layer of exactly as many parameters (width 56: 169 parameters, as the deep one)
under the same training budget (Adam, mean squared error, several seeds; the best test error
of each is reported).

    python3 examples/depth_vs_width.py [--quick]
"""

import argparse

import numpy as np

from ffnc import nn, optim, train


def sawtooth(x: np.ndarray, folds: int = 3) -> np.ndarray:
    for _ in range(folds):
        x = 1 - np.abs(2 * x - 1)  # the tent map: one fold
    return x


def mlp(hidden: list[int], seed: int) -> nn.Sequential:
    layers = [nn.Dense(h, activation="relu") for h in hidden] + [nn.Dense(1)]
    return nn.Sequential(layers, input_shape=(1,), dtype="float64", loss="mse", seed=seed)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and epochs (tests)")
    args = parser.parse_args(argv)
    seeds, epochs = (1, 100) if args.quick else (4, 1500)

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (512, 1))
    y = sawtooth(x)
    grid = np.linspace(0, 1, 1001).reshape(-1, 1)
    results = {}
    for name, hidden in (("shallow", [56]), ("deep", [8, 8, 8])):
        best = np.inf
        for seed in range(seeds):
            model = mlp(hidden, seed)
            train.fit(model, x, y, optimizer=optim.Adam(lr=0.01), epochs=epochs,
                      batch_size=64, seed=seed, verbose=0)
            rms = float(np.sqrt(np.mean((train.predict(model, grid) - sawtooth(grid)) ** 2)))
            best = min(best, rms)
        results[name] = {"hidden": hidden, "parameters": mlp(hidden, 0).n_parameters,
                         "rms": best}
        print(f"{name:8s} {str(hidden):10s} {results[name]['parameters']:4d} parameters: best "
              f"RMS error {best:.4f} over {seeds} seed(s)")
    return results


if __name__ == "__main__":
    main()
