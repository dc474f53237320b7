"""Universal approximation in one dimension: one hidden layer, more units, a better fit.

A network with one hidden layer of tanh units can approximate any continuous function on an
interval as closely as wanted, given enough units. This fits f(x) = sin(3x) + 0.3 x^2 on
[-2, 2] with hidden widths 1, 4, 16 and 64 (Adam, mean squared error) and reports the error on
a fine grid; the error shrinks with the width.

    python3 examples/universal_approximation.py [--quick] [--plot fit.png]
"""

import argparse

import numpy as np

from ffnc import nn, optim, train


def target(x: np.ndarray) -> np.ndarray:
    return np.sin(3 * x) + 0.3 * x ** 2


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer widths and epochs (tests)")
    parser.add_argument("--plot", help="save the fits to this PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    widths, epochs = ([1, 16], 80) if args.quick else ([1, 4, 16, 64], 1500)

    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (256, 1))
    y = target(x)
    grid = np.linspace(-2, 2, 401).reshape(-1, 1)
    errors, fits = {}, {}
    for width in widths:
        model = nn.Sequential([nn.Dense(width, activation="tanh"), nn.Dense(1)],
                              input_shape=(1,), dtype="float64", loss="mse", seed=0)
        train.fit(model, x, y, optimizer=optim.Adam(lr=0.01), epochs=epochs, batch_size=64,
                  verbose=0)
        fits[width] = train.predict(model, grid)
        errors[width] = float(np.sqrt(np.mean((fits[width] - target(grid)) ** 2)))
        print(f"{width:3d} hidden units ({model.n_parameters:4d} parameters): RMS error "
              f"{errors[width]:.4f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.plot(grid, target(grid), "k", lw=2, label="f(x)")
        for width, fit in fits.items():
            plt.plot(grid, fit, label=f"{width} units")
        plt.legend()
        plt.savefig(args.plot, dpi=120)
        print(f"saved {args.plot}")
    return errors


if __name__ == "__main__":
    main()
