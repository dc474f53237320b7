"""Checkpoint format v1 across languages: files written by ffnc.io (and by fit's checkpoints)
load in the C model API (libffnc, through ctypes), and files the C API writes load in Python.

libffnc is found beside the staged package of a developer build (build/<name>/libffnc.so,
dev/build.sh) or at $FFNC_LIBRARY; an installed wheel does not ship it, so there the test is
skipped."""

import ctypes
import os

import numpy as np
import pytest

import ffnc
from ffnc import datasets, io, nn, optim, train


def _library():
    candidates = [os.environ.get("FFNC_LIBRARY", "")]
    stage = os.path.dirname(os.path.dirname(os.path.abspath(ffnc.__file__)))
    candidates.append(os.path.join(os.path.dirname(stage), "libffnc.so"))
    for path in candidates:
        if path and os.path.isfile(path):
            lib = ctypes.CDLL(path)
            lib.ffnc_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
            lib.ffnc_model_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
            lib.ffnc_model_predict.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                               ctypes.c_void_p, ctypes.c_void_p]
            lib.ffnc_model_destroy.argtypes = [ctypes.c_void_p]
            return lib
    pytest.skip("libffnc not found (set FFNC_LIBRARY to run the C interop test)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_checkpoints_load_in_c_and_back(tmp_path, dtype):
    lib = _library()
    x, y = datasets.two_moons(120, seed=0, dtype=dtype)
    model = nn.Sequential([nn.Dense(8, activation="tanh"), nn.Dense(2)], input_shape=(2,),
                          dtype=dtype, loss="softmax_cross_entropy", seed=2)
    path = tmp_path / "fit.safetensors"
    train.fit(model, x, y, optimizer=optim.Adam(lr=0.05), epochs=3, checkpoint=path,
              verbose=0)

    handle = ctypes.c_void_p()
    assert lib.ffnc_model_load(str(path).encode(), ctypes.byref(handle)) == 0
    try:
        got = np.empty((len(x), 2), dtype=dtype)
        assert lib.ffnc_model_predict(handle, len(x), x.ctypes.data, got.ctypes.data) == 0
        np.testing.assert_allclose(got, train.predict(model, x),
                                   rtol=1e-5 if dtype == "float32" else 1e-12)
        back = tmp_path / "from_c.safetensors"
        assert lib.ffnc_model_save(handle, str(back).encode(), 1) == 0
    finally:
        lib.ffnc_model_destroy(handle)
    ck = io.load_checkpoint(back)
    # C keeps no seed (it only drew initial weights, which the tensors replace)
    expected = {k: v for k, v in model.get_config().items() if k != "seed"}
    assert ck.model.get_config() == expected
    assert np.array_equal(ck.model.flat, model.flat)
    saved = io.load_checkpoint(path)
    assert ck.optimizer == saved.optimizer == optim.Adam(lr=0.05)
    assert ck.step == saved.step
    for name in ("m", "v"):
        assert np.array_equal(ck.optimizer_state[name], saved.optimizer_state[name])


def test_c_rejects_what_python_rejects(tmp_path):
    lib = _library()
    path = tmp_path / "t.safetensors"
    io.save(nn.Sequential([nn.Dense(3)], input_shape=(2,), loss="mse"), path)
    path.write_bytes(path.read_bytes()[:-3])
    handle = ctypes.c_void_p()
    assert lib.ffnc_model_load(str(path).encode(), ctypes.byref(handle)) != 0
    with pytest.raises(io.CheckpointError, match="truncated"):
        io.load(path)


def test_c_and_python_writers_clean_up_each_others_stale_temporary_files(tmp_path):
    """Both writers name their temporary files ".<name>.ffnc-<random>.tmp" and flock them
    while writing; a save removes the unlocked ones of earlier saves to the same target (a
    writer killed mid-write leaves one), whichever language wrote them, and no locked one."""
    import fcntl
    import tempfile

    lib = _library()
    path = tmp_path / "m.safetensors"
    io.save(nn.Sequential([nn.Dense(3)], input_shape=(2,), loss="mse", seed=1), path)
    handle = ctypes.c_void_p()
    assert lib.ffnc_model_load(str(path).encode(), ctypes.byref(handle)) == 0

    def temp(random: str | None = None) -> str:
        """A writer's leftover: Python's name (mkstemp's random part), or C's (`random`)."""
        if random is None:
            fd, name = tempfile.mkstemp(prefix=".m.safetensors.ffnc-", suffix=".tmp",
                                        dir=tmp_path)
            os.close(fd)
            return name
        name = str(tmp_path / f".m.safetensors.ffnc-{random}.tmp")
        open(name, "wb").close()
        return name

    try:
        stale_python, stale_c, live = temp(), temp("k3j9x0a8b7c6"), temp()
        held = os.open(live, os.O_RDWR)
        fcntl.flock(held, fcntl.LOCK_EX)  # a writer still writing
        assert lib.ffnc_model_save(handle, str(path).encode(), 0) == 0
        assert not os.path.exists(stale_python) and not os.path.exists(stale_c)
        assert os.path.exists(live)
        os.close(held)  # its writer died: the next save, from Python, removes it
        stale_c = temp("z1y2x3w4v5u6")
        io.save(io.load(path), path)
        assert not os.path.exists(live) and not os.path.exists(stale_c)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    finally:
        lib.ffnc_model_destroy(handle)
