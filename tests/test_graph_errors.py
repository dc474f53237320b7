"""Bad graphs and bad feeds: clear errors that name the op, the node and the shapes."""

import numpy as np
import pytest

import ffnc.graph as G

F32, F64 = np.float32, np.float64


def test_shape_mismatch_names_op_and_both_shapes():
    a, b = G.placeholder((3, 4), F64), G.placeholder((5,), F64)
    with pytest.raises(ValueError, match=r"add: shapes \(3, 4\) and \(5,\) do not broadcast"):
        a + b
    w = G.placeholder((5, 2), F64)
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 2\) do not align"):
        a @ w
    with pytest.raises(ValueError, match=r"concat: .*\(3, 4\).*\(5, 2\)"):
        G.concat([a, w], 0)
    with pytest.raises(ValueError, match=r"reshape of .* \(3, 4\) to \(5, -1\)"):
        G.reshape(a, (5, -1))
    with pytest.raises(ValueError, match=r"mse: .*\(3, 4\) and \(5, 2\)"):
        G.mse(a, w)


def test_batch_dimension_rules():
    x = G.placeholder((None, 4), F64)
    with pytest.raises(ValueError, match="batch dimension None is not known"):
        x + G.constant(np.ones((3, 4)))
    assert (x + G.constant(np.ones((1, 4)))).shape == (None, 4)
    with pytest.raises(ValueError, match="only the first dimension may be None"):
        G.placeholder((3, None), F64)
    with pytest.raises(ValueError, match="batch dimension"):
        G.concat([x, x], 0)
    assert G.matmul(x, x, transpose_a=True).shape == (4, 4)


def test_dtype_mix_is_an_error_at_build_time():
    a, b = G.placeholder((3,), F32, name="a"), G.placeholder((3,), F64, name="b")
    with pytest.raises(TypeError, match="mul: dtype mismatch, a is float32 and b is float64"):
        a * b
    with pytest.raises(TypeError, match="dtype mismatch"):
        a + np.ones(3)  # a float64 array never becomes float32 silently
    assert (a + 1.5).dtype == F32  # a Python number is a literal of the node's dtype
    assert G.cast(a, F64).dtype == F64  # the explicit conversion
    labels = G.placeholder((3,), np.int64)
    with pytest.raises(TypeError, match="labels .* must be int32 or int64"):
        G.softmax_cross_entropy(G.placeholder((3, 2), F64), b)
    with pytest.raises(TypeError, match="must be float32 or float64"):
        G.exp(labels)


def test_evaluate_rejects_bad_feeds():
    x = G.placeholder((None, 2), F32, name="x")
    t = G.placeholder((None,), F32, name="t")
    y = G.sum(x, 1) + t
    good = {x: np.ones((3, 2), F32), t: np.ones(3, F32)}
    assert G.evaluate(y, good).tolist() == [3.0, 3.0, 3.0]
    with pytest.raises(TypeError, match="placeholder x expects float32, got float64"):
        G.evaluate(y, {**good, x: np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"placeholder x expects shape \(None, 2\), got \(3, 5\)"):
        G.evaluate(y, {**good, x: np.ones((3, 5), F32)})
    with pytest.raises(ValueError, match=r"placeholder t with shape \(None,\) was not fed"):
        G.evaluate(y, {x: good[x]})
    with pytest.raises(ValueError, match="batch dimension differs between placeholders"):
        G.evaluate(y, {x: good[x], t: np.ones(4, F32)})
    with pytest.raises(TypeError, match="feed keys must be placeholder or parameter nodes"):
        G.evaluate(y, {**good, y: np.ones(3, F32)})


def test_labels_out_of_range_are_reported():
    z = G.placeholder((2, 3), F64)
    y = G.placeholder((2,), np.int64)
    loss = G.softmax_cross_entropy(z, y)
    with pytest.raises(ValueError, match=r"labels\[1\] = 3 is out of range for 3 classes"):
        G.evaluate(loss, {z: np.zeros((2, 3)), y: np.array([0, 3])})


def test_bad_arguments_to_transforms():
    x = G.placeholder((3,), F64)
    with pytest.raises(ValueError, match="y must be a float scalar"):
        G.grad(G.tanh(x), x)
    with pytest.raises(ValueError, match="tangent .* must have shape"):
        G.jvp(G.tanh(x), x, G.constant(np.ones(2)))
    with pytest.raises(ValueError, match="mode must be"):
        G.hvp(G.sum(x), x, np.ones(3), mode="sideways")
    with pytest.raises(ValueError, match="open batch dimension"):
        G.hessian(G.sum(G.placeholder((None, 2), F64)), G.placeholder((None, 2), F64))
    with pytest.raises(ValueError, match="activation must be one of"):
        G.activation(x, "swish")
    with pytest.raises(ValueError, match="takes no alpha"):
        G.activation(x, "tanh", alpha=0.1)
    with pytest.raises(ValueError, match="reduction must be"):
        G.mse(x, x, reduction="max")
    with pytest.raises(TypeError, match="has 2 outputs"):
        _ = G.group_max(G.placeholder((2, 4), F64), 2)[0].inputs[0].shape
