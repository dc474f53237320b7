"""XOR by least squares: the best linear model predicts 1/2 everywhere.

The lecture's first attempt at XOR: fit f(x) = x^T w + b to the four points by minimising the
mean squared error. The normal equations A^T A theta = A^T y (A = [X | 1], theta = [w; b]) give
w = [0, 0] and b = 1/2: a linear model cannot represent XOR. Gradient descent on the same cost
(an ffnc Dense(1) layer trained full-batch with lr below 1/L) converges to the same point.

    python3 examples/xor_least_squares.py [--quick]
"""

import argparse

import numpy as np

from ffnc import datasets, diagnosis, nn, optim, train


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (for tests)")
    args = parser.parse_args(argv)

    x, y = datasets.xor(dtype=np.float64)
    a = np.hstack([x, np.ones((4, 1))])
    theta = np.linalg.solve(a.T @ a, a.T @ y)
    w, b = theta[:2, 0], theta[2, 0]
    print(f"normal equations: w = {np.round(w, 12).tolist()}, b = {b:.12g}")
    print(f"predictions: {(a @ theta).ravel().round(12).tolist()} (1/2 for every input)")

    model = nn.Sequential([nn.Dense(1)], input_shape=(2,), dtype="float64", loss="mse", seed=0)
    report = diagnosis.diagnose(model, x, y, optimizer="sgd", lr=0.1)
    lr = report.safe_lr
    print(f"gradient descent with lr = 1/L = {lr:.4g} (L = {report.lipschitz:.4g})")
    history = train.fit(model, x, y, optimizer=optim.SGD(lr=lr), epochs=60 if args.quick else 400,
                        batch_size=None, shuffle=False, verbose=0)
    params = model.named_parameters()
    gd_w, gd_b = params["0.weight"].ravel(), float(params["0.bias"][0])
    losses = history["loss"]
    print(f"gradient descent: w = {np.round(gd_w, 6).tolist()}, b = {gd_b:.6f}, "
          f"loss {losses[0]:.4f} -> {losses[-1]:.6f} (least squares: 0.25)")
    # at the minimum the loss stops moving; steps there may differ by rounding (1e-16)
    decreasing = all(b2 <= b1 + 1e-15 for b1, b2 in zip(losses, losses[1:], strict=False))
    print(f"the loss decreased at every step (to rounding at the minimum): {decreasing}")
    return {"w": w, "b": b, "gd_w": gd_w, "gd_b": gd_b, "decreasing": decreasing}


if __name__ == "__main__":
    main()
