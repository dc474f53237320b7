"""The simplifier: node counts before and after, and the values never change."""

import numpy as np
import pytest

import ffnc.graph as G

F64 = np.float64


def _same_values(before, after, feed):
    for a, b in zip(G.evaluate(before, feed), G.evaluate(after, feed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_algebraic_identities_remove_nodes():
    x = G.placeholder((3,), F64)
    cases = [x * 1.0, 1.0 * x, x + 0.0, 0.0 + x, x - 0.0, x / 1.0, G.neg(G.neg(x)),
             G.reshape(G.reshape(x, (3, 1)), (3,)), G.transpose(G.transpose(x)),
             G.where(G.greater(x, 0.0), x, x)]
    for expr in cases:
        assert G.simplify(expr) is x, expr
    assert G.simplify(0.0 - x).op == "neg"
    assert G.simplify(x * -1.0).op == "neg"
    assert G.simplify(x - (-x)).op == "add"
    assert G.simplify(x + (-x)).op == "sub"


def test_identities_keep_broadcast_shapes():
    x = G.placeholder((3,), F64)
    ones = G.constant(np.ones((2, 3)))
    y = G.simplify(x * ones)  # broadcasting to (2, 3): must not collapse to x
    assert y.shape == (2, 3) and y.op == "mul"


def test_common_subexpressions_and_dead_nodes():
    x = G.placeholder((4,), F64)
    a = G.tanh(x) * G.exp(x)
    b = G.tanh(x) * G.exp(x)  # the same expression built twice
    G.sqrt(G.square(x))  # a dead node: not an ancestor of the outputs
    y = G.sum(a + b)
    before = G.count_nodes(y)
    after = G.simplify(y)
    assert (before, G.count_nodes(after)) == (9, 6)
    _same_values([y], [after], {x: np.linspace(-1, 1, 4)})


def test_constant_folding():
    x = G.placeholder((2,), F64)
    c = G.exp(G.constant(np.array([0.0, 1.0]))) * 2.0 + 1.0
    y = x * c
    simple = G.simplify(y)
    assert G.count_nodes(y) == 8 and G.count_nodes(simple) == 3
    folded = [n for n in G.topo_order([simple]) if n.op == "constant"]
    np.testing.assert_allclose(folded[0].value, np.exp([0.0, 1.0]) * 2 + 1, rtol=1e-15)
    # a count over static dimensions is a constant; over the batch it is not
    z = G.placeholder((None, 5), F64)
    m = G.simplify(G.count(z, 1))
    assert m.op == "constant" and m.value == 5
    assert G.simplify(G.count(z, 0)).op == "count"


def test_grad_graphs_shrink_and_keep_their_values():
    rng = np.random.default_rng(2)
    x = G.placeholder((None, 3), F64)
    W1 = G.parameter(rng.standard_normal((3, 8)))
    b1 = G.parameter(np.zeros(8))
    W2 = G.parameter(rng.standard_normal((8, 2)))
    labels = G.placeholder((None,), np.int64)
    loss = G.softmax_cross_entropy(G.relu(x @ W1 + b1) @ W2, labels)
    grads = G.grad(loss, [W1, b1, W2])
    before = G.count_nodes(grads)
    simple = G.simplify(grads)
    after = G.count_nodes(simple)
    assert after <= before, (before, after)  # grad builds no redundant first-order nodes
    feed = {x: rng.standard_normal((6, 3)), labels: rng.integers(0, 2, 6)}
    _same_values(grads, simple, feed)
    # second order: the Hessian-vector product graph shrinks the most
    hv = G.hvp(loss, W2, np.ones((8, 2)), mode="rev_rev")
    hv_before, hv_simple = G.count_nodes(hv), G.simplify(hv)
    assert G.count_nodes(hv_simple) < hv_before
    np.testing.assert_allclose(G.evaluate(hv_simple, feed), G.evaluate(hv, feed), rtol=1e-14)


def test_simplify_keeps_placeholders_and_parameters():
    x = G.placeholder((2,), F64)
    w = G.parameter(np.array([1.0, 2.0]))
    y = G.simplify(x * 1.0 + w * 1.0)
    assert set(G.topo_order([y])) == {x, w, y}


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_no_unsafe_rewrites(value):
    """x * 0 is not folded to 0: it is NaN for infinite or NaN x."""
    x = G.placeholder((1,), F64)
    y = G.simplify(x * 0.0)
    assert np.isnan(G.evaluate(y, {x: np.array([value])}))[0]
