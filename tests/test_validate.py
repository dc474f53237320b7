"""ffnc._validate: the int and bool checks the graph ops, the optimizers and schedules, and the
training functions share (they had one copy each), and their messages at those call sites."""

import numpy as np
import pytest

import ffnc.graph as G
from ffnc import _validate, diagnosis, nn, optim, train
from ffnc._validate import count, flag, int64_count


@pytest.mark.parametrize("value", [0, 3, 2**70, np.int64(5), np.uint8(7), np.int32(-0)])
def test_count_takes_python_and_numpy_ints_as_python_ints(value):
    got = count("n", value, 0)
    assert got == value and type(got) is int


@pytest.mark.parametrize("value, kind", [
    (True, "bool"), (np.bool_(False), "bool"), (1.0, "float"), (np.float64(2), "float64"),
    ("3", "str"), (None, "NoneType"), (np.array(3), "ndarray"), ([1], "list")])
def test_count_refuses_what_is_not_an_int(value, kind):
    with pytest.raises(TypeError, match=f"^fit: epochs must be an int, got {kind}$"):
        count("fit: epochs", value, 0)


def test_count_bounds():
    assert count("n", 5, 5, 5) == 5
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        count("n", 0, 1)
    with pytest.raises(ValueError, match=r"^n must be <= 4, got 5$"):
        count("n", 5, 1, 4)
    assert int64_count("size", 2**63 - 1, 0) == 2**63 - 1
    for big in (2**63, 2**64, np.uint64(2**63)):
        with pytest.raises(ValueError, match=r"^size must be < 2\*\*63, got "):
            int64_count("size", big, 0)
    with pytest.raises(ValueError, match=r"^size must be >= 1, got -1$"):
        int64_count("size", -1, 1)


def test_flag():
    assert flag("shuffle", True) is True and flag("shuffle", np.bool_(False)) is False
    for value, kind in [(1, "int"), ("yes", "str"), (None, "NoneType"),
                        (np.array(True), "ndarray")]:
        with pytest.raises(TypeError, match=f"^shuffle must be a bool, got {kind}$"):
            flag("shuffle", value)


# ---- the call sites keep naming their argument --------------------------------------------------

def test_graph_ops():
    x = G.placeholder((None, 4), np.float32, name="x")
    i = G.placeholder((None,), np.int64, name="i")
    with pytest.raises(TypeError, match=r"^one_hot: depth must be an int, got float$"):
        G.one_hot(i, 2.0)
    with pytest.raises(ValueError, match=r"^one_hot: depth must be >= 1, got 0$"):
        G.one_hot(i, 0)
    with pytest.raises(ValueError, match=rf"^group_max: size must be < 2\*\*63, got {2**64}$"):
        G.group_max(x, 2**64)
    with pytest.raises(TypeError, match=r"^sum: keepdims must be a bool, got int$"):
        G.sum(x, keepdims=1)
    with pytest.raises(TypeError, match=r"^matmul: transpose_b must be a bool, got str$"):
        G.matmul(x, x, transpose_b="yes")


def test_optimizers_and_schedules():
    with pytest.raises(TypeError, match=r"^step_size must be an int, got float$"):
        optim.StepLR(2.5)
    with pytest.raises(ValueError, match=r"^total_steps must be < 2\*\*63, got "):
        optim.CosineLR(2**63)
    with pytest.raises(ValueError, match=r"^patience must be >= 0, got -1$"):
        optim.ReduceLROnPlateau(patience=-1)
    with pytest.raises(TypeError, match=r"^nesterov must be a bool, got int$"):
        optim.Momentum(0.1, nesterov=1)


def test_training_functions():
    model = nn.Sequential([nn.Dense(2)], input_shape=(3,), loss="mse", seed=0)
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(TypeError, match=r"^fit: epochs must be an int, got bool$"):
        train.fit(model, x, y, epochs=True, verbose=0)
    with pytest.raises(TypeError, match=r"^fit: shuffle must be a bool, got int$"):
        train.fit(model, x, y, shuffle=1, verbose=0)
    with pytest.raises(ValueError, match=r"^fit: threads must be >= 1, got 0$"):
        train.fit(model, x, y, threads=0, verbose=0)
    with pytest.raises(ValueError, match=r"^predict: batch_size must be >= 1, got 0$"):
        train.predict(model, x, batch_size=0)
    with pytest.raises(TypeError, match=r"^predict: raw must be a bool, got str$"):
        train.predict(model, x, raw="no")
    with pytest.raises(ValueError, match=r"^early_stopping patience must be >= 0, got -2$"):
        train.EarlyStopping(-2)
    # seeds have no upper bound: numpy takes any int
    train.fit(model, x, y, epochs=1, seed=2**70, verbose=0)
    with pytest.raises(ValueError, match=r"^diagnose: probe_steps must be >= 1, got 0$"):
        diagnosis.diagnose(model, x, y, probe_steps=0)


def test_one_copy():
    """The modules that had their own copies use this one."""
    import ffnc.graph.ir as ir

    assert not hasattr(train, "_int_at_least") and not hasattr(train, "_flag")
    assert not hasattr(optim, "_count") and not hasattr(optim, "_flag")
    assert train.count is _validate.count and optim.int64_count is _validate.int64_count
    assert ir.int64_count is _validate.int64_count and ir.flag is _validate.flag
