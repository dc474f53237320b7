"""The lecture's XOR network as a raw computational graph, and its gradient as another graph.

    f(x; W, c, w, b) = w^T max{0, W^T x + c} + b

With the oracle's parameters W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0 the network
computes XOR exactly. The loss J = 1/4 sum (y - f(x))^2 is then 0; the script also shows the
gradient graph that back-propagation builds (symbol to symbol) and its values at a perturbed
point, checked against finite differences.

    PYTHONPATH=build/dev/stage python3 -P examples/xor_graph.py
"""

import numpy as np

import ffnc.graph as G


def main() -> None:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    Y = np.array([0, 1, 1, 0], dtype=np.float64)

    x = G.placeholder((None, 2), np.float64, name="x")
    y = G.placeholder((None,), np.float64, name="y")
    W = G.parameter(np.array([[1.0, 1.0], [1.0, 1.0]]), name="W")
    c = G.parameter(np.array([0.0, -1.0]), name="c")
    w = G.parameter(np.array([1.0, -2.0]), name="w")
    b = G.parameter(np.array(0.0), name="b")

    h = G.maximum(0, x @ W + c)  # the hidden layer: max{0, XW + 1c}
    f = h @ w + b
    loss = G.mean(G.square(y - f))

    print("XW + 1c =\n", G.evaluate(x @ W + c, {x: X}))
    print("max{0, XW + 1c} =\n", G.evaluate(h, {x: X}))
    print("f(X) =", G.evaluate(f, {x: X}), " (XOR of the rows of X)")

    params = [W, c, w, b]
    grads = G.simplify(G.grad(loss, params))
    print(f"\nforward graph: {G.count_nodes(loss)} nodes; forward + gradient: "
          f"{G.count_nodes([loss, *grads])} nodes")
    for n in G.topo_order(grads):
        if not n.is_leaf:
            print(f"  {n.label:>20} = {n.op}({', '.join(i.label for i in n.inputs)})")

    print("\nat the oracle's parameters the loss is", G.evaluate(loss, {x: X, y: Y}),
          "and every gradient is zero:")
    for p, g in zip(params, G.evaluate(grads, {x: X, y: Y}), strict=True):
        print(f"  dJ/d{p.label} = {g.tolist()}")

    rng = np.random.default_rng(0)
    moved = {p: p.value + 0.1 * rng.standard_normal(p.shape) for p in params}
    feed = {x: X, y: Y, **moved}
    print("\nat a perturbed point:")
    for p, g in zip(params, G.evaluate(grads, feed), strict=True):
        print(f"  dJ/d{p.label} = {np.round(g, 6).tolist()}")
    report = G.gradcheck(lambda *ps: G.mean(G.square(
        G.constant(Y) - (G.maximum(0, G.constant(X) @ ps[0] + ps[1]) @ ps[2] + ps[3]))),
        [moved[p] for p in params])
    print("gradient against finite differences:", report.errors)


if __name__ == "__main__":
    main()
