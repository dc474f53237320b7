"""ffnc.diagnose: update ratios, probe steps, the Lipschitz constant and the verdict."""

import json
import math

import numpy as np
import pytest

from ffnc import datasets, diagnosis, nn, optim, train


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    y = x @ rng.standard_normal((5, 1)) + 0.1 * rng.standard_normal((200, 1))
    a = np.hstack([x, np.ones((200, 1))])
    exact = float(np.linalg.eigvalsh(2 * a.T @ a / 200).max())  # the Hessian of the MSE
    return x, y, exact


def linear(seed=0):
    return nn.Sequential([nn.Dense(1)], input_shape=(5,), dtype="float64", loss="mse",
                         seed=seed)


def test_lipschitz_is_the_largest_hessian_eigenvalue(regression):
    x, y, exact = regression
    big_l, converged, method = diagnosis.lipschitz(linear(), x, y)
    assert converged and method == "compiled plan"
    assert big_l == pytest.approx(exact, rel=1e-5)


def test_flags_a_ten_times_too_large_rate_and_proposes_one_that_trains(regression):
    x, y, exact = regression
    model = linear()
    before = model.flat.copy()
    bad_lr = 10 * 2 / exact
    report = diagnosis.diagnose(model, x, y, optimizer="sgd", lr=bad_lr)
    assert np.array_equal(model.flat, before)  # probes ran on a copy
    assert report.lr_too_large and not report.loss_decreased
    assert report.losses[-1] > 100 * report.losses[0]
    assert report.suggested_lr == pytest.approx(1 / exact, rel=1e-4)
    assert "too large" in report.verdict and f"{report.suggested_lr:.3g}" in report.verdict
    history = train.fit(model, x, y, optimizer=optim.SGD(lr=report.suggested_lr), epochs=12,
                        batch_size=None, shuffle=False, verbose=0)
    losses = np.array(history["loss"])
    assert np.all(np.diff(losses) < 0) and losses[-1] < 0.01 * losses[0]


def test_a_good_rate_is_healthy_and_a_tiny_one_is_flagged(regression):
    x, y, exact = regression
    report = diagnosis.diagnose(linear(), x, y, optimizer="sgd", lr=0.5 / exact)
    assert not report.lr_too_large and not report.lr_too_small
    assert report.loss_decreased and report.monotone
    assert report.verdict.startswith("Healthy")
    tiny = diagnosis.diagnose(linear(), x, y, optimizer="sgd", lr=1e-5 / exact)
    assert tiny.lr_too_small and "too small" in tiny.verdict
    assert tiny.suggested_lr == pytest.approx(1 / exact, rel=1e-4)


def test_ratios_are_per_parameter_tensor(regression):
    x, y, _ = regression
    model = linear()
    report = diagnosis.diagnose(model, x, y, optimizer=optim.SGD(lr=0.01))
    weight = model.named_parameters()["0.weight"]
    grad = 2 * x.T @ (x @ weight + model.named_parameters()["0.bias"] - y) / len(y)
    expected = 0.01 * np.linalg.norm(grad) / np.linalg.norm(weight)
    assert report.ratios["0.weight"] == pytest.approx(expected, rel=1e-9)
    assert report.ratios["0.bias"] == math.inf  # a zero-initialized bias that moves
    text = str(report)
    assert "0.weight" in text and "Lipschitz" in text and "Verdict" in text
    json.dumps(report.to_dict())


def test_nonlinear_model_and_adaptive_optimizer():
    x, y = datasets.two_moons(200, seed=0)
    model = nn.Sequential([nn.Dense(16, activation="relu"), nn.Dense(2)], input_shape=(2,),
                          loss="softmax_cross_entropy", seed=0)
    report = diagnosis.diagnose(model, x, y, optimizer=optim.Adam(lr=1e-3), probe_steps=3)
    assert report.lipschitz > 0 and len(report.losses) == 4
    assert report.lipschitz_method in ("compiled plan", "reference interpreter")
    assert not report.lr_too_large
    flagged = diagnosis.diagnose(model, x * np.float32(50), y, optimizer=optim.Adam(lr=10.0))
    assert flagged.lr_too_large and flagged.suggested_lr == pytest.approx(1.0)


def test_as_a_fit_callback():
    x, y = datasets.two_moons(100, seed=0)
    model = nn.Sequential([nn.Dense(8, activation="tanh"), nn.Dense(2)], input_shape=(2,),
                          loss="softmax_cross_entropy")
    callback = diagnosis.DiagnoseCallback(x, y, every=2, optimizer="sgd", lr=0.1,
                                         probe_steps=2, iterations=10)
    train.fit(model, x, y, optimizer=optim.SGD(lr=0.1), epochs=4, verbose=0,
              callbacks=[callback])
    assert [epoch for epoch, _ in callback.reports] == [2, 4]
    assert all(r.lipschitz > 0 for _, r in callback.reports)


def test_errors(regression):
    x, y, _ = regression
    with pytest.raises(TypeError, match="float64"):
        diagnosis.diagnose(linear(), x.astype(np.float32), y)
    with pytest.raises(ValueError, match="probe_steps"):
        diagnosis.diagnose(linear(), x, y, probe_steps=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        diagnosis.diagnose(linear(), x, y, optimizer="newton")
