"""ffnc.train: fit, predict, evaluate; validation of arguments; resume; the NaN guard."""

import numpy as np
import pytest

import ffnc.graph as G
from ffnc import datasets, diagnosis, nn, optim, train


def moons_model(seed=0, dtype="float32", hidden=16, dropout=None):
    layers = [nn.Dense(hidden, activation="tanh")]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(2))
    return nn.Sequential(layers, input_shape=(2,), dtype=dtype, seed=seed,
                         loss="softmax_cross_entropy")


@pytest.fixture(scope="module")
def moons():
    x, y = datasets.two_moons(300, noise=0.1, seed=1)
    return datasets.train_test_split(x, y, test_fraction=0.25, seed=0)


def test_fit_trains_in_place_and_reports(moons):
    x_train, x_test, y_train, y_test = moons
    model = moons_model()
    before = model.flat.copy()
    history = train.fit(model, x_train, y_train, optimizer=optim.Adam(lr=0.05), epochs=60,
                        batch_size=32, validation_data=(x_test, y_test), verbose=0)
    assert history.epoch == list(range(1, 61))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.95
    assert not np.array_equal(model.flat, before)
    # the model owns its weights again after fit, and predict/evaluate see them
    assert model.flat.flags.owndata
    result = train.evaluate(model, x_test, y_test)
    assert result["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-6)
    probabilities = train.predict(model, x_test)
    assert probabilities.shape == (len(x_test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(probabilities.argmax(1) == y_test) == pytest.approx(result["accuracy"])


def test_evaluate_and_predict_match_the_reference_interpreter(moons):
    x_train, _, y_train, _ = moons
    model = moons_model(dtype="float64")
    x = x_train.astype(np.float64)
    logits = model.forward(x)
    np.testing.assert_allclose(train.predict(model, x, raw=True), logits, rtol=1e-12)
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = -log_p[np.arange(len(y_train)), y_train].mean()
    # batches of 7 rows: the exact mean over all rows is recombined from the batch means
    result = train.evaluate(model, x, y_train, batch_size=7)
    assert result["loss"] == pytest.approx(expected, rel=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y_train))


def test_inference_plan_sees_the_current_weights(moons):
    x = moons[0][:5]
    model = moons_model()
    first = train.predict(model, x, raw=True)
    state = model.state_dict()
    state["1.bias"] = state["1.bias"] + np.float32(1.0)
    model.load_state_dict(state)
    np.testing.assert_allclose(train.predict(model, x, raw=True), first + 1, rtol=1e-5)


def test_regression_metrics_and_column_targets():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
    model = nn.Sequential([nn.Dense(1)], input_shape=(3,), loss="mse")
    history = train.fit(model, x, y, metrics=["mae"], optimizer=optim.SGD(lr=0.1),
                        epochs=30, batch_size=16, verbose=0)
    assert history["mae"][-1] < history["mae"][0]
    result = train.evaluate(model, x, y.reshape(-1, 1), metrics="mae")
    pred = train.predict(model, x)
    assert result["mae"] == pytest.approx(np.mean(np.abs(pred[:, 0] - y)), rel=1e-5)


def test_gradient_descent_below_one_over_l_decreases_the_loss_at_every_step():
    """The lecture's theorem on a convex problem: least squares, lr = 0.9 / L."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 4))
    y = x @ rng.standard_normal((4, 1)) + 0.3 * rng.standard_normal((100, 1))
    model = nn.Sequential([nn.Dense(1)], input_shape=(4,), dtype="float64", loss="mse", seed=1)
    big_l, converged, _ = diagnosis.lipschitz(model, x, y)
    assert converged
    a = np.hstack([x, np.ones((100, 1))])
    assert big_l == pytest.approx(np.linalg.eigvalsh(2 * a.T @ a / 100).max(), rel=1e-5)
    # 12 steps: the loss is still well above its minimum, where rounding takes over
    history = train.fit(model, x, y, optimizer=optim.SGD(lr=0.9 / big_l), epochs=12,
                        batch_size=None, shuffle=False, verbose=0)
    losses = np.array(history["loss"])
    assert np.all(np.diff(losses) < 0) and losses[-1] > losses.min() - 1e-12
    # the same problem at 1.1 * 2/L goes up: the bound is the real boundary
    model = nn.Sequential([nn.Dense(1)], input_shape=(4,), dtype="float64", loss="mse", seed=1)
    history = train.fit(model, x, y, optimizer=optim.SGD(lr=2.2 / big_l), epochs=50,
                        batch_size=None, shuffle=False, verbose=0)
    assert history["loss"][-1] > history["loss"][0]


def test_nan_guard_names_the_epoch_and_step_and_keeps_the_epoch_start(moons):
    x_train, _, y_train, _ = moons
    model = moons_model()
    train.fit(model, x_train, y_train, optimizer=optim.SGD(lr=0.1), epochs=2, verbose=0)
    with pytest.raises(train.TrainingDiverged) as info:
        train.fit(model, x_train * np.float32(1e4), y_train, optimizer=optim.SGD(lr=1e30),
                  epochs=5, batch_size=25, verbose=0)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.epoch == 1 and err.step is not None and err.step >= 1
    message = str(err)
    assert "epoch 1" in message and f"step {err.step}" in message
    assert "learning rate" in message and "diagnose" in message
    assert np.all(np.isfinite(model.flat))


def _resumable_fit(model, x, y, path, epochs, callbacks=(), **extra):
    return train.fit(model, x, y, optimizer=optim.Adam(lr=0.01), epochs=epochs, batch_size=16,
                     validation_split=0.2, checkpoint=path, callbacks=callbacks, verbose=0,
                     schedule=[optim.CosineLR(total_steps=150, min_scale=0.1),
                               optim.ReduceLROnPlateau(factor=0.5, patience=1)],
                     **extra)


class Kill(Exception):
    pass


def test_interrupted_and_resumed_run_is_bit_identical(moons, tmp_path):
    x_train, _, y_train, _ = moons
    full = moons_model(seed=3, dropout=0.2)
    h_full = _resumable_fit(full, x_train, y_train, tmp_path / "full.safetensors", 8)

    def kill_after_three(epoch, logs):
        if epoch == 3:
            raise Kill  # the process dies after the checkpoint of epoch 3 was written

    path = tmp_path / "run.safetensors"
    with pytest.raises(Kill):
        _resumable_fit(moons_model(seed=3, dropout=0.2), x_train, y_train, path, 8,
                       callbacks=[kill_after_three])
    resumed = moons_model(seed=3, dropout=0.2)  # a fresh process builds the same model
    h_resumed = _resumable_fit(resumed, x_train, y_train, path, 8)
    assert np.array_equal(resumed.flat, full.flat)
    assert h_resumed.history == h_full.history
    assert h_resumed.epoch == list(range(1, 9))


def test_resume_after_early_stop_request_and_with_early_stopping(moons, tmp_path):
    x_train, _, y_train, _ = moons
    kw = {"early_stopping": train.EarlyStopping(patience=2)}
    full = moons_model(seed=5)
    h_full = _resumable_fit(full, x_train, y_train, tmp_path / "a.safetensors", 10, **kw)
    path = tmp_path / "b.safetensors"
    part = moons_model(seed=5)
    _resumable_fit(part, x_train, y_train, path, 10,
                   callbacks=[lambda epoch, logs: epoch == 4],
                   early_stopping=train.EarlyStopping(patience=2))
    resumed = moons_model(seed=5)
    h_resumed = _resumable_fit(resumed, x_train, y_train, path, 10,
                               early_stopping=train.EarlyStopping(patience=2))
    assert np.array_equal(resumed.flat, full.flat)
    assert h_resumed.history == h_full.history


def test_resume_refuses_a_different_run(moons, tmp_path):
    x_train, _, y_train, _ = moons
    path = tmp_path / "c.safetensors"
    train.fit(moons_model(), x_train, y_train, epochs=1, checkpoint=path, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(moons_model(), x_train, y_train, epochs=2, batch_size=8, checkpoint=path,
                  verbose=0)
    with pytest.raises(ValueError, match="different model"):
        train.fit(moons_model(hidden=8), x_train, y_train, epochs=2, checkpoint=path,
                  verbose=0)
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(moons_model(), x_train, y_train, epochs=2, optimizer="sgd",
                  checkpoint=path, verbose=0)


def test_early_stopping_restores_the_best_weights(moons):
    x_train, x_test, y_train, y_test = moons
    model = moons_model(hidden=32)
    # a small noisy training set and a large rate: the validation loss goes up and down
    history = train.fit(model, x_train[:40], y_train[:40], optimizer=optim.Adam(lr=0.1),
                        epochs=60, batch_size=8, validation_data=(x_test, y_test),
                        early_stopping=train.EarlyStopping(patience=3), verbose=0)
    best = min(history["val_loss"])
    assert history.best_epoch == history["val_loss"].index(best) + 1
    assert train.evaluate(model, x_test, y_test)["loss"] == pytest.approx(best, rel=1e-6)
    if history.stopped_early:
        assert len(history.epoch) == history.best_epoch + 4


def test_batch_callbacks_give_the_same_bits_as_whole_epochs(moons):
    x_train, _, y_train, _ = moons
    seen = []

    class Steps(train.Callback):
        def on_batch_end(self, step, logs):
            seen.append((step, logs["loss"]))

    a, b = moons_model(), moons_model()
    ha = train.fit(a, x_train, y_train, epochs=3, batch_size=50, verbose=0,
                   schedule=optim.StepLR(step_size=4, gamma=0.5))
    hb = train.fit(b, x_train, y_train, epochs=3, batch_size=50, verbose=0,
                   schedule=optim.StepLR(step_size=4, gamma=0.5), callbacks=[Steps()])
    assert np.array_equal(a.flat, b.flat)
    assert ha.history == hb.history
    steps = -(-len(y_train) // 50)
    assert [s for s, _ in seen] == list(range(1, steps + 1)) * 3


def test_schedule_sets_the_logged_rate_and_callbacks_stop(moons):
    x_train, _, y_train, _ = moons
    history = train.fit(moons_model(), x_train, y_train, optimizer=optim.SGD(lr=0.5),
                        epochs=10, batch_size=len(y_train), verbose=0,
                        schedule=optim.StepLR(step_size=2, gamma=0.1),
                        callbacks=[lambda epoch, logs: epoch == 5])
    assert history.epoch == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(history["lr"], [0.5, 0.5, 0.05, 0.05, 0.005], rtol=1e-12)


def test_thread_counts_give_identical_results(moons):
    x_train, _, y_train, _ = moons
    a, b = moons_model(hidden=64), moons_model(hidden=64)
    train.fit(a, x_train, y_train, epochs=2, verbose=0, threads=1)
    train.fit(b, x_train, y_train, epochs=2, verbose=0, threads=2)
    assert np.array_equal(a.flat, b.flat)


def test_profile_times_the_training_plan_and_leaves_the_training_as_without_it(moons):
    x_train, _, y_train, _ = moons
    a, b = moons_model(), moons_model()
    opt = {"optimizer": "adam", "epochs": 3, "batch_size": 40, "verbose": 0}
    plain = train.fit(a, x_train, y_train, **opt)
    profiled = train.fit(b, x_train, y_train, profile=4, **opt)
    assert plain.profile is None
    # the profiled steps ran on a copy of the state: same weights, same Adam moments and step
    assert np.array_equal(a.flat, b.flat)
    assert plain.history == profiled.history
    p = profiled.profile
    assert p.steps == 4 and p.batch == 40
    assert len(p.opcodes) == len(p.notes) == len(p.seconds) == len(p.flops)
    assert (p.seconds >= 0).all() and p.total > 0
    assert "dense_forward" in p.opcodes and "adam" in p.opcodes
    # two dense layers of 2 -> 16 -> 2 over 40 rows: forward 2 m n k each, and the products
    # of their backward (dW of both, dX of the second only)
    forward = 2 * 40 * (2 * 16 + 16 * 2)
    backward = 2 * 40 * (2 * 16 + 2 * 16 * 2)
    assert sum(p.flops) == forward + backward
    assert "instruction" in str(p)


def test_profile_is_refused_with_distributed(moons):
    x_train, _, y_train, _ = moons
    with pytest.raises(ValueError, match="profile.*distributed"):
        train.fit(moons_model(), x_train, y_train, epochs=1, verbose=0, profile=2,
                  distributed=True)


def test_full_batch_and_validation_split_takes_the_last_rows(moons):
    x_train, _, y_train, _ = moons
    model = moons_model()
    history = train.fit(model, x_train, y_train, epochs=2, batch_size=None,
                        validation_split=0.25, verbose=0)
    n_val = round(0.25 * len(y_train))
    expected = train.evaluate(model, x_train[-n_val:], y_train[-n_val:])
    assert history["val_loss"][-1] == pytest.approx(expected["loss"], rel=1e-6)


def test_epochs_zero_runs_nothing(moons):
    model = moons_model()
    before = model.flat.copy()
    history = train.fit(model, moons[0], moons[2], epochs=0, verbose=0)
    assert history.epoch == [] and np.array_equal(model.flat, before)


def test_model_methods_delegate(moons):
    x_train, x_test, y_train, y_test = moons
    model = moons_model()
    history = model.fit(x_train, y_train, epochs=2, verbose=0)
    assert len(history.epoch) == 2
    assert model.predict(x_test).shape == (len(x_test), 2)
    assert set(model.evaluate(x_test, y_test)) == {"loss", "accuracy"}


def test_verbose_two_prints_one_line_per_epoch(moons, capsys):
    train.fit(moons_model(), moons[0], moons[2], epochs=2, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("epoch 1/2") and "loss" in out[0]


@pytest.mark.parametrize("change, error, words", [
    ({"x": "f64"}, TypeError, ["x", "float32", "float64"]),
    ({"x": "nan"}, ValueError, ["x", "NaN", "row 3"]),
    ({"x": "shape"}, ValueError, ["x", "shape"]),
    ({"x": "empty"}, ValueError, ["x", "empty"]),
    ({"x": "list"}, TypeError, ["x", "numpy array"]),
    ({"y": "range"}, ValueError, ["y", "out of range", "row 2"]),
    ({"y": "negative"}, ValueError, ["y", "out of range"]),
    ({"y": "float"}, TypeError, ["y", "integer"]),
    ({"y": "short"}, ValueError, ["y", "shape"]),
    ({"batch_size": 0}, ValueError, ["batch_size", ">= 1"]),
    ({"batch_size": 2.5}, TypeError, ["batch_size", "int"]),
    ({"epochs": -1}, ValueError, ["epochs", ">= 0"]),
    ({"validation_split": 1.0}, ValueError, ["validation_split"]),
    ({"optimizer": "adagrad"}, ValueError, ["optimizer", "adagrad"]),
    ({"metrics": ["f1"]}, ValueError, ["metric", "f1"]),
    ({"metrics": ["mae"]}, ValueError, ["mae", "regression"]),
    ({"threads": 0}, ValueError, ["threads"]),
    ({"schedule": 0.5}, TypeError, ["schedule"]),
    ({"profile": -1}, ValueError, ["profile", ">= 0"]),
    ({"profile": 1.5}, TypeError, ["profile", "int"]),
])
def test_fit_rejects_bad_arguments_naming_them(moons, change, error, words):
    x = moons[0][:20].copy()
    y = moons[2][:20].copy()
    kwargs = {"epochs": 1, "verbose": 0}
    for key, value in change.items():
        if key == "x":
            x = {"f64": x.astype(np.float64), "shape": x[:, :1].copy(), "empty": x[:0],
                 "list": x.tolist(), "nan": x}[value]
            if value == "nan":
                x[3, 1] = np.nan
            if value == "empty":
                y = y[:0]
        elif key == "y":
            y = {"range": y, "negative": y, "float": y.astype(np.float32), "short": y[:5]}[value]
            if value == "range":
                y[2] = 2
            if value == "negative":
                y[0] = -1
        else:
            kwargs[key] = value
    model = moons_model()
    before = model.flat.copy()
    with pytest.raises(error) as info:
        train.fit(model, x, y, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert np.array_equal(model.flat, before)


def test_a_model_without_loss_needs_one():
    model = nn.Sequential([nn.Dense(1)], input_shape=(2,))
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="no loss"):
        train.fit(model, x, np.zeros((4, 1), np.float32), epochs=1, verbose=0)
    history = train.fit(model, x, np.zeros((4, 1), np.float32), loss="mse", epochs=1,
                        verbose=0)
    assert model.loss.name == "mse" and len(history.epoch) == 1
    assert train.predict(nn.Sequential([nn.Dense(3)], input_shape=(2,)), x).shape == (4, 3)


def test_bce_accuracy_and_target_range():
    x, y = datasets.two_moons(100, seed=2)
    target = y.astype(np.float32).reshape(-1, 1)
    model = nn.Sequential([nn.Dense(16, activation="tanh"), nn.Dense(1)], input_shape=(2,),
                          loss="bce")
    history = train.fit(model, x, target, optimizer=optim.Adam(lr=0.05), epochs=30,
                        batch_size=20, verbose=0)
    assert history["accuracy"][-1] > 0.85
    p = train.predict(model, x)
    assert np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train.fit(model, x, target * 2, epochs=1, verbose=0)


def test_functional_model_with_two_inputs():
    a = nn.Input((2,), name="a")
    b = nn.Input((3,), name="b")
    h = nn.Concat()([nn.Dense(4, activation="relu")(a), b])
    model = nn.Model([a, b], nn.Dense(1)(h), loss="mse")
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((30, 2)).astype(np.float32)
    xb = rng.standard_normal((30, 3)).astype(np.float32)
    y = (xa[:, :1] + xb[:, 1:2]).astype(np.float32)
    history = train.fit(model, [xa, xb], y, optimizer=optim.Adam(lr=0.05), epochs=20,
                        batch_size=10, verbose=0)
    assert history["loss"][-1] < history["loss"][0]
    assert train.predict(model, [xa, xb]).shape == (30, 1)
    with pytest.raises(ValueError, match="rows"):
        train.predict(model, [xa, xb[:10]])


def test_advice_mentions_the_lecture_points():
    assert "2/L" in train.ADVICE and "diagnose" in train.ADVICE
    assert G.argmax is not None  # accuracy compiles through argmax


def test_inference_plans_are_cached_per_power_of_two_batch(moons):
    model = moons_model()
    x = moons[0]
    for rows in (3, 4, 5, 7, 8, 100):
        assert train.predict(model, x[:rows]).shape == (rows, 2)
    batches = sorted(key[1] for key in model._ffnc_plans if key[0] == "predict")
    assert batches == [4, 8, 128]
