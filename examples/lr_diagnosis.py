"""Diagnosing a learning rate that is too large, and fixing it.

Gradient descent on a cost whose gradient is L-Lipschitz decreases it for every lr < 2/L; at
lr = 1/L each step lowers it by at least |grad|^2 / (2L). This fits a 1-D function with a tanh
MLP by plain full-batch gradient descent at a rate ten times larger than 2/L: the loss blows
up and fit stops with its NaN guard. ffnc.diagnose estimates L by power iteration on
Hessian-vector products, flags the rate, and proposes 1/L, which then trains.

    python3 examples/lr_diagnosis.py [--quick]
"""

import argparse

import numpy as np

from ffnc import diagnosis, nn, optim, train


def fresh() -> nn.Sequential:
    return nn.Sequential([nn.Dense(32, activation="tanh"), nn.Dense(1)], input_shape=(1,),
                         loss="mse", seed=0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (tests)")
    args = parser.parse_args(argv)
    epochs = 60 if args.quick else 300

    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (256, 1)).astype(np.float32)
    y = (np.sin(3 * x) + 0.3 * x ** 2).astype(np.float32)

    big_l = diagnosis.lipschitz(fresh(), x, y)[0]
    too_large = 10 * 2 / big_l
    print(f"L = {big_l:.4g}; trying lr = {too_large:.4g} (10 x 2/L)")
    report = diagnosis.diagnose(fresh(), x, y, optimizer="sgd", lr=too_large)
    print(report)
    try:
        history = train.fit(fresh(), x, y, optimizer=optim.SGD(lr=too_large), epochs=epochs,
                            batch_size=None, verbose=0)
        bad = history["loss"]
        print(f"\nwith lr {too_large:.4g}: loss {bad[0]:.4f} -> {bad[-1]:.4f}")
    except train.TrainingDiverged as exc:
        bad = None
        print(f"\nwith lr {too_large:.4g}: {str(exc).split(', with')[0]}")
    model = fresh()
    history = train.fit(model, x, y, optimizer=optim.SGD(lr=report.suggested_lr),
                        epochs=epochs, batch_size=None, verbose=0)
    good = history["loss"]
    print(f"with the proposed lr {report.suggested_lr:.4g}: loss {good[0]:.4f} -> "
          f"{good[-1]:.4f}, decreasing at every step: "
          f"{all(b < a for a, b in zip(good, good[1:], strict=False))}")
    return {"flagged": report.lr_too_large, "suggested_lr": report.suggested_lr,
            "bad": bad, "good": good, "lipschitz": big_l}


if __name__ == "__main__":
    main()
