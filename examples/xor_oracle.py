"""The lecture's ReLU network solves XOR exactly, and training from random starts finds it
only sometimes.

    f(x) = w^T max{0, W^T x + c} + b,  W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0

as an ffnc model: Sequential([Dense(2, relu), Dense(1)]) with "0.weight" = W, "0.bias" = c,
"1.weight" = w (a column), "1.bias" = b. Its outputs on the four XOR points are exactly
[0, 1, 1, 0]. Then the same architecture is trained from random initializations (seeds
0..n-1, full-batch Adam on the mean squared error) and the success rate (every output within
0.1 of its target) is reported: with only two hidden units most starts end with a dead unit or
in a local minimum (about 1 in 10 succeeds), the lecture's point about non-convex training.
The same with 8 hidden units: over-parameterized, it succeeds far more often.

    python3 examples/xor_oracle.py [--seeds 20] [--quick]
"""

import argparse

import numpy as np

from ffnc import datasets, nn, optim, train


def xor_net(seed: int, hidden: int = 2) -> nn.Sequential:
    return nn.Sequential([nn.Dense(hidden, activation="relu"), nn.Dense(1)], input_shape=(2,),
                         dtype="float64", loss="mse", seed=seed)


def success_rate(x: np.ndarray, y: np.ndarray, hidden: int, seeds: int, epochs: int,
                 show: bool) -> float:
    """The share of seeds from which training reaches every output within 0.1 of XOR."""
    successes = 0
    for seed in range(seeds):
        model = xor_net(seed, hidden)
        train.fit(model, x, y, optimizer=optim.Adam(lr=0.05), epochs=epochs, batch_size=None,
                  shuffle=False, verbose=0)
        error = float(np.max(np.abs(train.predict(model, x) - y)))
        successes += error < 0.1
        if show:
            print(f"seed {seed:2d}: max |f(x) - y| = {error:.4f} "
                  f"{'solved' if error < 0.1 else 'stuck'}")
    return successes / seeds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--quick", action="store_true", help="15 seeds, 300 epochs (tests)")
    args = parser.parse_args(argv)
    seeds, epochs = (15, 300) if args.quick else (args.seeds, args.epochs)

    x, y = datasets.xor(dtype=np.float64)
    oracle = xor_net(0)
    oracle.load_state_dict({
        "0.weight": np.array([[1.0, 1.0], [1.0, 1.0]]), "0.bias": np.array([0.0, -1.0]),
        "1.weight": np.array([[1.0], [-2.0]]), "1.bias": np.array([0.0])})
    exact = train.predict(oracle, x).ravel()
    print(f"oracle network on [[0,0],[0,1],[1,0],[1,1]]: {exact.tolist()}")
    print(f"exactly XOR: {bool(np.array_equal(exact, y.ravel()))}; loss "
          f"{train.evaluate(oracle, x, y)['loss']}")

    print(f"training the 2-2-1 network from {seeds} random initializations:")
    rate = success_rate(x, y, 2, seeds, epochs, show=True)
    print(f"success rate with 2 hidden units: {rate:.0%}")
    wide = success_rate(x, y, 8, seeds, epochs, show=False)
    print(f"success rate with 8 hidden units: {wide:.0%}")
    return {"oracle": exact, "success_rate": rate, "wide_success_rate": wide}


if __name__ == "__main__":
    main()
