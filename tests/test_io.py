"""ffnc.io: checkpoint format v1 (safetensors), atomic writes, clear errors."""

import json
import os
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save as st_save
from safetensors.numpy import save_file

from ffnc import io, nn, optim, train


def mlp(dtype="float32", seed=0):
    return nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(3)], input_shape=(5,),
                         dtype=dtype, seed=seed, loss="softmax_cross_entropy")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(tmp_path, dtype):
    model = mlp(dtype, seed=4)
    path = tmp_path / "m.safetensors"
    io.save(model, path)
    loaded = io.load(path)
    assert loaded.get_config() == model.get_config()
    for name, value in model.named_parameters().items():
        got = loaded.named_parameters()[name]
        assert got.dtype == value.dtype and np.array_equal(got, value)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    np.testing.assert_array_equal(train.predict(loaded, x), train.predict(model, x))


def test_layout_is_format_v1(tmp_path):
    model = mlp()
    path = tmp_path / "m.safetensors"
    io.save(model, path)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        assert sorted(f.keys()) == ["0.bias", "0.weight", "1.bias", "1.weight"]
        assert f.get_tensor("0.weight").shape == (5, 8)
    assert meta["format"] == "ffnc" and meta["format_version"] == "1"
    assert json.loads(meta["model"]) == {
        "class": "Sequential", "dtype": "float32", "input_shape": [5],
        "layers": [{"class": "Dense", "units": 8, "activation": "relu", "alpha": None,
                    "use_bias": True},
                   {"class": "Dense", "units": 3, "activation": "identity", "alpha": None,
                    "use_bias": True}],
        "loss": {"class": "softmax_cross_entropy"}}
    assert "optimizer" not in meta and "training" not in meta


def test_optimizer_state_and_step(tmp_path):
    model = mlp()
    x = np.random.default_rng(1).standard_normal((20, 5)).astype(np.float32)
    y = np.arange(20) % 3
    opt = optim.Adam(lr=0.01)
    from ffnc.compiler import compile as compile_plan

    out = model.output(True)
    target = model.loss.target_placeholder(model)
    objective = model.loss(out, target)
    plan = compile_plan([objective], batch_size=10, loss=objective, optimizer=opt,
                        params=list(model.parameter_nodes().values()),
                        inputs=list(model.inputs) + [target])
    model.bind(plan.param_arena)
    plan.run_epoch({model.inputs[0]: x, target: y}, 10)
    path = tmp_path / "m.safetensors"
    io.save(model, path, optimizer=opt, plan=plan, training={"epoch": 1})
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        assert f.get_tensor("optimizer.m").shape == (model.flat.size,)
    assert json.loads(meta["optimizer"]) == {**opt.get_config(), "step": 2}
    ck = io.load_checkpoint(path)
    assert ck.optimizer == opt and ck.step == 2 and ck.training == {"epoch": 1}
    assert set(ck.optimizer_state) == {"m", "v"}
    state = plan.optimizer_state()
    for name in ("m", "v"):
        assert np.array_equal(ck.optimizer_state[name], state[name])
    assert np.any(ck.optimizer_state["v"] != 0)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    io.save(mlp(seed=1), path)
    old = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save(mlp(seed=2), path)
    monkeypatch.undo()
    assert path.read_bytes() == old  # the old file is intact
    assert os.listdir(tmp_path) == ["m.safetensors"]  # and no temporary file is left
    io.save(mlp(seed=2), path)
    assert path.read_bytes() != old and os.listdir(tmp_path) == ["m.safetensors"]


def test_save_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.save(mlp(), tmp_path / "missing" / "m.safetensors")
    with pytest.raises(TypeError, match="ffnc.nn model"):
        io.save(object(), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="optimizer"):
        io.save(mlp(), tmp_path / "m.safetensors", plan=object())


def _valid(tmp_path, model=None):
    path = tmp_path / "ok.safetensors"
    io.save(model or mlp(), path)
    return path, path.read_bytes()


def _write(tmp_path, data, name="bad.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_truncated_files(tmp_path):
    _, data = _valid(tmp_path)
    for cut in (3, 20, len(data) - 1):
        path = _write(tmp_path, data[:cut])
        with pytest.raises(io.CheckpointError, match="truncated|too short"):
            io.load(path)


def test_not_safetensors(tmp_path):
    with pytest.raises(io.CheckpointError, match="not a safetensors"):
        io.load(_write(tmp_path, b"\x80\x04\x95hello pickle, never executed" * 4))
    with pytest.raises(io.CheckpointError, match="not JSON"):
        io.load(_write(tmp_path, struct.pack("<Q", 4) + b"\xff\xfe{}"))
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "nothing.safetensors")


def test_wrong_format_tag_and_version(tmp_path):
    tensors = {k: v.copy() for k, v in mlp().named_parameters().items()}
    save_file(tensors, str(tmp_path / "plain.safetensors"))
    with pytest.raises(io.CheckpointError, match="not an ffnc checkpoint"):
        io.load(tmp_path / "plain.safetensors")
    meta = {"format": "ffnc", "format_version": "2", "model": json.dumps(mlp().get_config())}
    with pytest.raises(io.CheckpointError, match="version '2'"):
        io.load(_write(tmp_path, st_save(tensors, metadata=meta)))
    meta["format_version"] = "1"
    meta["model"] = "{not json"
    with pytest.raises(io.CheckpointError, match="'model' metadata is not valid JSON"):
        io.load(_write(tmp_path, st_save(tensors, metadata=meta)))
    meta["model"] = json.dumps({"class": "Transformer"})
    with pytest.raises(io.CheckpointError, match="cannot be built"):
        io.load(_write(tmp_path, st_save(tensors, metadata=meta)))


def test_tensors_that_do_not_match_the_architecture(tmp_path):
    model = mlp()
    meta = {"format": "ffnc", "format_version": "1", "model": json.dumps(model.get_config())}
    good = {k: v.copy() for k, v in model.named_parameters().items()}

    def load(tensors):
        return io.load(_write(tmp_path, st_save(tensors, metadata=meta)))

    with pytest.raises(io.CheckpointError, match=r"'0.weight' has shape \(8, 5\).*\(5, 8\)"):
        load({**good, "0.weight": good["0.weight"].T.copy()})
    with pytest.raises(io.CheckpointError, match="'1.bias' of the model is missing"):
        load({k: v for k, v in good.items() if k != "1.bias"})
    with pytest.raises(io.CheckpointError, match="unexpected tensor 'extra'"):
        load({**good, "extra": np.zeros(2, np.float32)})
    with pytest.raises(io.CheckpointError, match="'0.bias' is float64"):
        load({**good, "0.bias": good["0.bias"].astype(np.float64)})
    with pytest.raises(io.CheckpointError, match="without optimizer metadata"):
        load({**good, "optimizer.m": np.zeros(model.flat.size, np.float32)})


def test_info(tmp_path):
    path, data = _valid(tmp_path)
    meta = io.info(path)
    assert meta["bytes"] == len(data)
    assert meta["parameters"] == mlp().n_parameters
    assert meta["tensors"]["0.weight"] == ("float32", [5, 8])
