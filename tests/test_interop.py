"""PyTorch interop: an ffnc Sequential exported to torch.nn.Sequential (directly and through a
safetensors file) and imported back predicts the same, both ways.

The state-dict and file tests run without torch; the torch tests skip when it is absent."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import ffnc
import ffnc.nn as nn
from ffnc import interop, train


def _mlp(dtype="float32", dropout=True):
    layers = [nn.Dense(16, activation="relu"), nn.Dense(12, activation="leaky_relu", alpha=0.2)]
    if dropout:
        layers.append(nn.Dropout(0.25))
    layers += [nn.Dense(8, activation="gelu"), nn.Tanh(), nn.Dense(5)]
    return nn.Sequential(layers, input_shape=(7,), dtype=dtype, seed=3,
                         loss="softmax_cross_entropy")


def _x(dtype, rows=33):
    return np.random.default_rng(0).standard_normal((rows, 7)).astype(dtype)


def test_the_torch_layout_and_names():
    model = _mlp()
    modules = interop.torch_layers(model)
    assert [m["module"] for m in modules] == ["Linear", "ReLU", "Linear", "LeakyReLU",
                                              "Dropout", "Linear", "GELU", "Tanh", "Linear"]
    assert modules[3]["negative_slope"] == 0.2
    state = interop.torch_state_dict(model)
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias",
                           "8.weight", "8.bias"]
    params = model.named_parameters()
    np.testing.assert_array_equal(state["2.weight"], params["1.weight"].T)
    assert state["0.weight"].shape == (16, 7) and state["0.weight"].flags.c_contiguous


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_through_a_state_dict_and_a_file(tmp_path, dtype):
    model = _mlp(dtype, dropout=False)
    x = _x(dtype)
    expected = train.predict(model, x, raw=True)
    path = tmp_path / "mlp.safetensors"
    interop.save_torch(model, path)
    assert set(load_file(path)) == set(interop.torch_state_dict(model))
    back = interop.from_torch(path, loss="softmax_cross_entropy")
    assert back.dtype == np.dtype(dtype)
    assert [type(layer).__name__ for layer in back.layers] == ["Dense", "Dense", "Dense",
                                                               "Activation", "Dense"]
    np.testing.assert_array_equal(train.predict(back, x, raw=True), expected)


def test_a_bare_state_dict_takes_its_activations_as_arguments(tmp_path):
    rng = np.random.default_rng(1)
    state = {"0.weight": rng.standard_normal((6, 4)), "0.bias": rng.standard_normal(6),
             "2.weight": rng.standard_normal((3, 6)), "2.bias": rng.standard_normal(3)}
    model = interop.from_torch(state, activations=["tanh", "identity"])
    x = rng.standard_normal((5, 4))
    expected = np.tanh(x @ state["0.weight"].T + state["0.bias"]) @ state["2.weight"].T \
        + state["2.bias"]
    np.testing.assert_allclose(train.predict(model, x), expected, rtol=1e-12, atol=1e-12)
    path = tmp_path / "plain.safetensors"
    save_file(state, path)  # as torch would write it, no ffnc metadata: relu by default
    relu = interop.from_torch(path)
    assert relu.layers[0].activation == "relu" and relu.layers[1].activation == "identity"


def test_errors_name_the_problem():
    abs_model = nn.Sequential([nn.Dense(3, activation="abs"), nn.Dense(2)], input_shape=(4,))
    with pytest.raises(ValueError, match="activation 'abs' has no torch.nn module"):
        interop.torch_state_dict(abs_model)
    with pytest.raises(ValueError, match="activations has 1 entries for 2 Linear layers"):
        interop.from_torch({"0.weight": np.ones((2, 3)), "1.weight": np.ones((1, 2))},
                           activations=["relu"])
    with pytest.raises(ValueError, match="'<index>.weight'"):
        interop.from_torch({"fc.weight": np.ones((2, 3))})
    with pytest.raises(TypeError, match="mix dtypes"):
        interop.from_torch({"0.weight": np.ones((2, 3)), "0.bias": np.ones(2, np.float32)})
    with pytest.raises(TypeError, match="source must be"):
        interop.from_torch(42)


def test_import_ffnc_does_not_import_torch():
    root = os.path.dirname(os.path.dirname(ffnc.__file__))
    code = ("import json, sys, ffnc, ffnc.interop; "
            "print(json.dumps('torch' in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + sys.path))
    result = subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is False


# ---- with torch ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason='PyTorch is not installed: pip install '
                                               '"ffnc[torch]"')


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ffnc_to_torch_predicts_the_same(torch, tmp_path, dtype):
    model = _mlp(dtype)
    x = _x(dtype)
    expected = train.predict(model, x, raw=True)
    module = interop.to_torch(model).eval()
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    # the file route: a torch module of the same layout loads save_torch's file
    from safetensors.torch import load_file as torch_load_file

    path = tmp_path / "mlp.safetensors"
    interop.save_torch(model, path)
    fresh = torch.nn.Sequential(
        torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12),
        torch.nn.LeakyReLU(0.2), torch.nn.Dropout(0.25), torch.nn.Linear(12, 8),
        torch.nn.GELU(), torch.nn.Tanh(), torch.nn.Linear(8, 5)).to(
        torch.float64 if dtype == "float64" else torch.float32).eval()
    fresh.load_state_dict(torch_load_file(path))
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.from_numpy(x)).numpy(), expected, rtol=tol,
                                   atol=tol)


def test_torch_to_ffnc_predicts_the_same(torch):
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(7, 20), torch.nn.ELU(0.5), torch.nn.Dropout(0.1),
        torch.nn.Linear(20, 10), torch.nn.Sigmoid(), torch.nn.Linear(10, 10),
        torch.nn.Softplus(), torch.nn.Linear(10, 3)).eval()
    model = interop.from_torch(module, loss="mse")
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dropout", "Dense",
                                                                "Dense", "Dense"]
    assert model.layers[0].activation == "elu" and model.layers[0].alpha == 0.5
    x = _x("float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(train.predict(model, x), expected, rtol=1e-5, atol=1e-6)
    # and back again: the same torch layout, the same weights
    again = interop.to_torch(model)
    for (name, a), (name_b, b) in zip(module.state_dict().items(),
                                      again.state_dict().items(), strict=True):
        assert name == name_b
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_torch_modules_without_an_ffnc_counterpart_are_rejected(torch):
    with pytest.raises(ValueError, match=r"module 1 \(Softmax\) has no ffnc counterpart"):
        interop.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(1)))
    with pytest.raises(ValueError, match="approximate='tanh'"):
        interop.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2),
                                               torch.nn.GELU(approximate="tanh")))


def test_a_model_trained_by_ffnc_keeps_its_accuracy_in_torch(torch):
    from ffnc import datasets

    x, y = datasets.load_digits(normalize=True)
    x, y = x[:500], y[:500]
    model = nn.Sequential([nn.Dense(32, activation="relu"), nn.Dense(10)], input_shape=(64,),
                          loss="softmax_cross_entropy", seed=0)
    train.fit(model, x, y, epochs=10, batch_size=50, verbose=0)
    assert train.evaluate(model, x, y)["accuracy"] > 0.5
    ours = train.predict(model, x).argmax(1)
    with torch.no_grad():
        theirs = interop.to_torch(model)(torch.from_numpy(x)).argmax(1).numpy()
    np.testing.assert_array_equal(theirs, ours)
