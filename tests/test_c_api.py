"""Checkpoints cross between Python and the C model API (format v1), both ways.

These tests drive the C example programs built against the installed C package by
examples/c/run.sh (which CI runs), found through environment variables:

- FFNC_C_PREDICT: examples/c/predict, which loads any checkpoint with ffnc_model_load and
  writes its predictions (ffnc_model_predict) for a tensor "x";
- FFNC_C_DIGITS_MODEL, FFNC_C_DIGITS_DATA: the checkpoint examples/c/digits wrote with
  ffnc_model_save (Adam state included) and the digits data it trained on.

Without them (a plain `pytest` with no C build) they are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ffnc import io as fio
from ffnc import nn

safetensors_numpy = pytest.importorskip("safetensors.numpy")

PREDICT = os.environ.get("FFNC_C_PREDICT")
DIGITS_MODEL = os.environ.get("FFNC_C_DIGITS_MODEL")
DIGITS_DATA = os.environ.get("FFNC_C_DIGITS_DATA")

needs_predict = pytest.mark.skipif(
    not PREDICT, reason="FFNC_C_PREDICT is not set (examples/c/run.sh sets it)")
needs_digits = pytest.mark.skipif(
    not (PREDICT and DIGITS_MODEL and DIGITS_DATA),
    reason="FFNC_C_DIGITS_MODEL / FFNC_C_DIGITS_DATA are not set (examples/c/run.sh sets them)")

ACTIVATIONS = {
    "identity": lambda z, a: z,
    "relu": lambda z, a: np.maximum(z, 0),
    "leaky_relu": lambda z, a: np.where(z > 0, z, (0.01 if a is None else a) * z),
    "tanh": lambda z, a: np.tanh(z),
    "sigmoid": lambda z, a: 1 / (1 + np.exp(-z)),
    "elu": lambda z, a: np.where(z > 0, z, (1.0 if a is None else a) * np.expm1(z)),
}


def numpy_predict(tensors: dict[str, np.ndarray], config: dict, x: np.ndarray) -> np.ndarray:
    """The forward pass of a checkpoint's Sequential of Dense layers, in float64 numpy, then
    the loss's prediction (softmax / sigmoid probabilities)."""
    h = x.astype(np.float64)
    for i, layer in enumerate(config["layers"]):
        label = layer.get("name") or str(i)
        z = h @ tensors[f"{label}.weight"].astype(np.float64) + tensors[f"{label}.bias"]
        h = ACTIVATIONS[layer["activation"]](z, layer["alpha"])
    loss = (config.get("loss") or {}).get("class")
    if loss == "softmax_cross_entropy":
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if loss == "bce":
        return 1 / (1 + np.exp(-h))
    return h


def c_predict(model_path: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    inputs, outputs = tmp_path / "x.safetensors", tmp_path / "pred.safetensors"
    safetensors_numpy.save_file({"x": np.ascontiguousarray(x)}, str(inputs))
    run = subprocess.run([PREDICT, str(model_path), str(inputs), str(outputs)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return safetensors_numpy.load_file(str(outputs))["pred"]


@needs_predict
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "bce", "mse"])
def test_python_checkpoint_predicts_the_same_in_c(tmp_path, dtype, loss):
    model = nn.Sequential([nn.Dense(24, "relu"), nn.Dense(16, "leaky_relu", alpha=0.2),
                           nn.Dense(16, "tanh", name="third"), nn.Dense(5)],
                          input_shape=(12,), dtype=dtype, loss=loss, seed=3)
    # trained-looking biases, not the zeros of a fresh model
    rng = np.random.default_rng(0)
    for name, value in model.named_parameters().items():
        if name.endswith(".bias"):
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    path = tmp_path / "py.safetensors"
    fio.save(model, path)
    x = rng.uniform(-2, 2, (300, 12)).astype(dtype)  # more rows than one C inference step
    got = c_predict(path, x, tmp_path)
    assert got.dtype == np.dtype(dtype) and got.shape == (300, 5)
    expected = model.predict(x)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    tensors = safetensors_numpy.load_file(str(path))
    np.testing.assert_allclose(got, numpy_predict(tensors, model.get_config(), x),
                               rtol=tol * 10, atol=tol * 10)


@needs_predict
def test_c_rejects_python_models_it_cannot_run(tmp_path):
    model = nn.Sequential([nn.Dense(4, "relu"), nn.Dropout(0.5), nn.Dense(2)],
                          input_shape=(3,), loss="softmax_cross_entropy")
    path = tmp_path / "dropout.safetensors"
    fio.save(model, path)
    inputs = tmp_path / "x.safetensors"
    safetensors_numpy.save_file({"x": np.zeros((1, 3), np.float32)}, str(inputs))
    run = subprocess.run([PREDICT, str(path), str(inputs), str(tmp_path / "out.safetensors")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "does not support" in run.stderr


@needs_digits
def test_c_checkpoint_loads_in_python(tmp_path):
    data = safetensors_numpy.load_file(DIGITS_DATA)
    x, y = data["x_test"], data["y_test"]
    # the file as the safetensors package sees it: format v1 metadata, the parameters, Adam
    from safetensors import safe_open

    with safe_open(DIGITS_MODEL, framework="numpy") as f:
        meta = f.metadata()
        names = set(f.keys())
    assert meta["format"] == "ffnc" and meta["format_version"] == "1"
    config = json.loads(meta["model"])
    assert config == {"class": "Sequential", "dtype": "float32", "input_shape": [64],
                      "layers": [{"class": "Dense", "units": 128, "activation": "relu",
                                  "alpha": None, "use_bias": True},
                                 {"class": "Dense", "units": 10, "activation": "identity",
                                  "alpha": None, "use_bias": True}],
                      "loss": {"class": "softmax_cross_entropy"}}
    optimizer = json.loads(meta["optimizer"])
    assert optimizer["class"] == "adam" and optimizer["step"] > 0
    assert names == {"0.weight", "0.bias", "1.weight", "1.bias", "optimizer.m", "optimizer.v"}
    tensors = safetensors_numpy.load_file(DIGITS_MODEL)
    assert tensors["0.weight"].shape == (64, 128) and tensors["optimizer.m"].shape == (9610,)

    c_probs = c_predict(Path(DIGITS_MODEL), x, tmp_path)
    np.testing.assert_allclose(c_probs, numpy_predict(tensors, config, x), rtol=1e-4, atol=1e-5)
    assert (c_probs.argmax(axis=1) == y).mean() >= 0.96

    # and through ffnc.io: the model, its predictions, the optimizer state
    checkpoint = fio.load_checkpoint(DIGITS_MODEL)
    np.testing.assert_allclose(checkpoint.model.predict(x), c_probs, rtol=1e-5, atol=1e-6)
    assert checkpoint.optimizer.get_config() == {
        "class": "adam", "lr": 0.003, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08,
        "weight_decay": 0.0, "clip_norm": None}
    assert checkpoint.step == optimizer["step"] == 40 * -(-len(data["x_train"]) // 32)
    np.testing.assert_array_equal(checkpoint.optimizer_state["v"], tensors["optimizer.v"])
    # saved back from Python, C reads it again and predicts the same
    again = tmp_path / "again.safetensors"
    fio.save(checkpoint.model, again)
    np.testing.assert_array_equal(c_predict(again, x, tmp_path), c_probs)
