"""The ffnc command (ffnc.cli.main), run in-process with small settings."""

import builtins
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ffnc import cli, io


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_train_small_settings_reaches_096_on_digits(capsys, tmp_path):
    path = tmp_path / "d.safetensors"
    status, out, err = run(capsys, "train", "--epochs", "15", "--threads", "1", "--json",
                           "--output", str(path), "--quiet")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["test_accuracy"] >= 0.96
    assert {"test_accuracy", "test_loss", "epochs", "seconds"} <= set(summary)
    assert summary["epochs"] == 15 and summary["checkpoint"] == str(path)
    model = io.load(path)
    assert model.get_config()["layers"][0]["units"] == 256

    status, out, _ = run(capsys, "evaluate", str(path), "--json")
    assert status == 0
    assert json.loads(out)["accuracy"] == pytest.approx(summary["test_accuracy"])

    status, out, _ = run(capsys, "info", str(path))
    assert status == 0 and "ffnc checkpoint v1" in out and "0.weight: float32 [64, 256]" in out

    npy = tmp_path / "p.npy"
    status, out, _ = run(capsys, "predict", str(path), "--output", str(npy))
    assert status == 0
    assert np.load(npy).shape == (round(0.2 * 1797), 10)


def test_train_profile_reports_each_instruction(capsys, tmp_path):
    path = str(tmp_path / "p.safetensors")
    status, out, err = run(capsys, "train", "--epochs", "1", "--quiet", "--json", "--output",
                           path, "--profile", "3")
    assert status == 0, err
    profile = json.loads(out)["profile"]
    assert profile["steps"] == 3 and profile["batch"] > 0 and profile["us_per_step"] > 0
    ops = [ins["opcode"] for ins in profile["instructions"]]
    assert "dense_forward" in ops and "dense_backward" in ops
    for ins in profile["instructions"]:
        assert ins["us_per_step"] >= 0
        # GFLOP/s exactly where the instruction multiplies matrices
        assert (ins["gflops"] is not None) == (ins["opcode"].startswith("dense") or
                                                ins["opcode"] == "gemm")
    status, out, err = run(capsys, "train", "--epochs", "1", "--quiet", "--output", path,
                           "--profile")
    assert status == 0, err
    table = out.split("the training step, instruction by instruction:\n")[1]
    assert "GFLOP/s" in table and "mean of 20 steps" in table


def test_default_train_prints_accuracy_and_saves(capsys, tmp_path, monkeypatch):
    """The real default `ffnc train` (the README's main job)."""
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys)
    assert status == 2  # no command: help
    status, out, err = run(capsys, "train")
    assert status == 0, err
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.96
    assert os.path.exists(tmp_path / cli.DEFAULT_CHECKPOINT)
    assert str(tmp_path / cli.DEFAULT_CHECKPOINT) in out
    # its time is measured, not asserted: wall time on a shared machine says little
    assert "trained 30 epochs in" in out


def test_user_data_files(capsys, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.savetxt(tmp_path / "d.csv", np.hstack([x, y[:, None]]), delimiter=",")
    for name in ("d.npz", "d.csv"):
        out_path = tmp_path / f"{name}.safetensors"
        status, out, err = run(capsys, "train", "--data", str(tmp_path / name), "--hidden",
                               "8", "--epochs", "20", "--json", "--output", str(out_path))
        assert status == 0, err
        assert json.loads(out)["test_accuracy"] > 0.85
        status, out, _ = run(capsys, "evaluate", str(out_path), str(tmp_path / name))
        assert status == 0 and "accuracy" in out
    status, out, _ = run(capsys, "predict", str(out_path), str(tmp_path / "d.npz"), "--json")
    assert len(json.loads(out)["classes"]) == 120
    t = (x @ np.array([1.0, 2.0, -1.0], np.float32)).astype(np.float32)
    np.savez(tmp_path / "r.npz", x=x, y=t)
    status, out, err = run(capsys, "train", "--data", str(tmp_path / "r.npz"), "--epochs",
                           "3", "--json", "--output", str(tmp_path / "r.safetensors"),
                           "--optimizer", "momentum", "--lr", "0.01", "--batch-size", "0")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["test_accuracy"] is None and summary["test_mae"] > 0


def test_diagnose_flags_a_large_rate(capsys):
    status, out, err = run(capsys, "diagnose", "--lr", "50", "--hidden", "16", "--rows",
                           "200", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["lr_too_large"] and report["suggested_lr"] < 50


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "missing.npz"], "no such file"),
    (["train", "--data", "data.txt.gz"], ".npz"),
    (["train", "--hidden", "64,x"], "--hidden"),
    (["train", "--hidden", "64,0"], "--hidden"),
    (["train", "--epochs", "-1"], "epochs"),
    (["train", "--batch-size", "-3"], "batch_size"),
    (["train", "--lr", "-1"], "lr"),
    (["train", "--threads", "0"], "threads"),
    (["train", "--profile", "0"], "--profile"),
    (["train", "--loss", "mse"], "float targets"),
    (["evaluate", "missing.safetensors"], "no such checkpoint"),
    (["info", os.path.abspath(__file__)], "not a safetensors"),
])
def test_user_mistakes_exit_2_with_one_line(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert err.startswith("ffnc: error:") and words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_plot_without_matplotlib_names_the_extra(capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    status, _, err = run(capsys, "train", "--plot", "curves.png")
    assert status == 2 and 'pip install "ffnc[plot]"' in err


def test_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    status, out, err = run(capsys, "train", "--epochs", "2", "--hidden", "16", "--quiet",
                           "--output", str(tmp_path / "m.safetensors"), "--plot", str(png),
                           "--validation-split", "0.1")
    assert status == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_module_entry_point(tmp_path):
    import ffnc

    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(ffnc.__file__))}
    proc = subprocess.run([sys.executable, "-m", "ffnc.cli", "train", "--help"],
                          capture_output=True, text=True, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 0 and "--hidden" in proc.stdout
