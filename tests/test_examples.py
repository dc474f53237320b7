"""Every example runs (with its --quick settings) and shows what it claims."""

import importlib.util
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_least_squares(capsys):
    result = example("xor_least_squares").main(["--quick"])
    np.testing.assert_allclose(result["w"], [0, 0], atol=1e-12)
    assert result["b"] == pytest.approx(0.5, abs=1e-12)
    assert result["decreasing"]
    np.testing.assert_allclose(result["gd_w"], [0, 0], atol=0.05)
    assert result["gd_b"] == pytest.approx(0.5, abs=0.05)
    assert "w = [0.0, 0.0], b = 0.5" in capsys.readouterr().out


def test_xor_oracle(capsys):
    result = example("xor_oracle").main(["--quick"])
    assert result["oracle"].tolist() == [0, 1, 1, 0]
    assert 0 < result["success_rate"] < result["wide_success_rate"] <= 1
    out = capsys.readouterr().out
    assert "exactly XOR: True" in out and "success rate" in out


def test_universal_approximation():
    errors = example("universal_approximation").main(["--quick"])
    assert errors[16] < errors[1]


def test_depth_vs_width(capsys):
    results = example("depth_vs_width").main(["--quick"])
    shallow, deep = results["shallow"], results["deep"]
    assert shallow["parameters"] == deep["parameters"] == 169
    assert np.isfinite(shallow["rms"]) and np.isfinite(deep["rms"])


def test_lr_diagnosis():
    result = example("lr_diagnosis").main(["--quick"])
    assert result["flagged"]
    assert result["suggested_lr"] == pytest.approx(1 / result["lipschitz"], rel=1e-4)
    good = result["good"]
    assert good[-1] < 0.5 * good[0]
    assert result["bad"] is None  # the too-large rate diverges: fit's NaN guard stops it


def test_xor_graph_runs(capsys):
    example("xor_graph").main()
    assert capsys.readouterr().out
