"""Lowering: a simplified graph becomes plan instructions, with the fusions that pay.

- matmul + bias (+ activation) -> one dense instruction (the GEMM epilogue applies them);
  the pre-activation is stored only when an activation derivative needs it;
- softmax + cross-entropy -> one fused kernel whose saved probabilities the backward reuses;
- gradient accumulation: where an add sums contributions (the reverse pass's way of adding
  the cotangents of a value with several consumers), GEMMs and column sums write straight
  into the sum's buffer with beta = 1 and other terms are added into it, never materialised
  and summed;
- gradients of the trained parameters are computed in place in the gradient arena.

Everything else maps one op to one instruction. An op without a plan instruction raises
CompileError naming it.
"""

from __future__ import annotations

import numpy as np

from ffnc import _core
from ffnc.compiler.program import ONE, CompileError, Instr, Program, Size, Value, size_product
from ffnc.graph.ir import Node, format_shape, topo_order
from ffnc.graph.ops import ACTIVATIONS

_ACT_CODES = {name: _core._ACTIVATIONS[name] for name in ACTIVATIONS}
_ACT_GRADS = {f"{name}_grad": name for name in ACTIVATIONS}
_BINARY = {"add", "sub", "mul", "div", "maximum", "minimum"}
_UNARY = {"neg": "neg", "exp": "exp", "log": "log", "square": "square", "sqrt": "sqrt"}
_LOSS_OPS = {"softmax_cross_entropy": "xent", "bce_with_logits": "bce", "mse": "mse", "l1": "l1"}
_LOSS_GRADS = {f"{k}_grad": v for k, v in _LOSS_OPS.items()}
SUPPORTED_OPS = sorted(
    {"placeholder", "parameter", "constant", "matmul", "sum", "mean", "count", "broadcast_to",
     "reshape", "transpose"} | _BINARY | set(_UNARY) | set(_ACT_CODES) | set(_ACT_GRADS)
    | set(_LOSS_OPS) | set(_LOSS_GRADS))


def dim_size(d: int | None) -> Size:
    return (0, 1) if d is None else (int(d), 0)


def shape_size(shape: tuple, what: str = "value") -> Size:
    total = ONE
    for d in shape:
        total = size_product(total, dim_size(d), what)
    return total


def _split_strides(out: tuple, operand: tuple, split: int) -> tuple | None:
    """Strides (row, col) of `operand` broadcast to `out` viewed as rows = out[:split],
    cols = out[split:], or None when that view cannot express the broadcast."""
    padded = (1,) * (len(out) - len(operand)) + tuple(operand)
    rows_match = all(p == o for p, o in zip(padded[:split], out[:split], strict=True))
    rows_bcast = all(p == 1 for p in padded[:split])
    cols_match = all(p == o for p, o in zip(padded[split:], out[split:], strict=True))
    cols_bcast = all(p == 1 for p in padded[split:])
    if not (rows_match or rows_bcast) or not (cols_match or cols_bcast):
        return None
    col_extent = shape_size(padded[split:]) if cols_match else ONE
    if rows_match and col_extent[1]:
        return None  # a row stride that grows with the batch
    row_stride = col_extent[0] if rows_match else 0
    # a broadcast row part of size 1 in out too reads the same element either way
    return (row_stride, 1 if cols_match else 0)


def broadcast_view(node: Node, operands: list[Node]) -> tuple[Size, Size, list[tuple]]:
    """node's shape as rows x cols and each operand's (row, col) strides into it."""
    out = node.shape
    for split in range(len(out) + 1):
        strides = [_split_strides(out, x.shape, split) for x in operands]
        if all(s is not None for s in strides):
            rows = shape_size(out[:split], node.label)
            cols = shape_size(out[split:], node.label)
            if rows[1] and cols[1]:
                continue
            return rows, cols, strides
    shapes = ", ".join(format_shape(x.shape) for x in operands)
    raise CompileError(f"{node.op} {node.label}: broadcasting {shapes} to "
                       f"{format_shape(out)} is not a row/column pattern plans support")


class Lowering:
    """Turns the nodes of `roots` into instructions appended to `program`.

    values: node id -> Value for the leaves and the pinned results (gradients in the gradient
    arena); other results get activation values. leaf_data collects (Value, array) pairs of
    constants whose contents the plan must be given.
    """

    def __init__(self, roots: list[Node], values: dict[int, Value], dtype: np.dtype,
                 program: Program) -> None:
        self.dtype = dtype
        self.program = program
        self.values = values
        self.leaf_data: list[tuple[Value, np.ndarray]] = []
        self.order = topo_order(roots)
        self.position = {n.id: i for i, n in enumerate(self.order)}
        self.roots = {r.id for r in roots}
        self.consumers: dict[int, list[Node]] = {n.id: [] for n in self.order}
        for n in self.order:
            for x in n.inputs:
                self.consumers[x.id].append(n)
        self.probs: dict[tuple, tuple[Value, Value]] = {}
        self.skipped: set[int] = set()
        self.dense_heads: dict[int, tuple] = {}
        self._find_dense()
        self.deferred: set[int] = set()
        self._find_accumulations()

    # ---- analysis ---------------------------------------------------------------------------

    def _only_consumer(self, node: Node) -> Node | None:
        users = self.consumers[node.id]
        if node.id in self.roots or len(users) != 1:
            return None
        return users[0]

    def _after(self, node: Node, head: Node) -> bool:
        """Every consumer of node other than the head comes after the head."""
        return all(self.position[u.id] > self.position[head.id]
                   for u in self.consumers[node.id] if u is not head)

    def _find_dense(self) -> None:
        for a in self.order:
            if a.op != "matmul" or a.attrs["transpose_a"] or a.inputs[0].ndim != 2 \
                    or a.inputs[1].ndim != 2:
                continue
            pre, bias = a, None
            user = self._only_consumer(a)
            if user is not None and user.op == "add" and user.shape == a.shape:
                other = user.inputs[1] if user.inputs[0] is a else user.inputs[0]
                if other is not a and other.shape == (a.shape[1],):
                    pre, bias = user, other
            act = None
            users = self.consumers[pre.id]
            acts = [u for u in users if u.op in _ACT_CODES]
            if len(acts) == 1:
                c = acts[0]
                rest = [u for u in users if u is not c]
                # the pre-activation may also feed the derivative of this activation
                if all(u.op == f"{c.op}_grad" and u.inputs[1] is pre for u in rest) \
                        and self._after(pre, c):
                    act = c
            if bias is None and act is None:
                continue  # a plain matmul: a GEMM
            head = act if act is not None else pre
            keep_pre = act is not None and (pre.id in self.roots or len(users) > 1)
            members = [a] + ([pre] if pre is not a else [])
            self.skipped.update(m.id for m in members if m is not head)
            self.dense_heads[head.id] = (a, bias, pre if keep_pre else None, act)

    def _intoable(self, node: Node, into: dict[int, bool]) -> bool:
        if node.op == "matmul" and node.id not in self.skipped and node.id not in \
                self.dense_heads:
            return True
        if node.op == "sum" and node.inputs[0].ndim == 2 and node.attrs["axes"] == (0,):
            return True
        if node.op == "add" and all(x.shape == node.shape for x in node.inputs):
            return any(into.get(x.id, False) for x in node.inputs)
        return False

    def _find_accumulations(self) -> None:
        into: dict[int, bool] = {}
        for n in self.order:
            if not n.is_leaf:
                into[n.id] = self._intoable(n, into)
        for n in self.order:
            user = self._only_consumer(n)
            if into.get(n.id) and user is not None and user.op == "add" \
                    and all(x.shape == user.shape for x in user.inputs) \
                    and user.id not in self.skipped and user.id not in self.dense_heads:
                self.deferred.add(n.id)

    # ---- values -----------------------------------------------------------------------------

    def value(self, node: Node) -> Value:
        v = self.values.get(node.id)
        if v is None:
            v = Value(node.label, shape_size(node.shape, node.label))
            self.values[node.id] = v
        return v

    def scratch(self, name: str, size: Size) -> Value:
        return Value(name, size)

    def emit(self, instr: Instr) -> None:
        self.program.instrs.append(instr)

    # ---- lowering ---------------------------------------------------------------------------

    def run(self) -> None:
        for node in self.order:
            if node.is_leaf:
                self._leaf(node)
            elif node.id in self.skipped or node.id in self.deferred:
                continue
            elif node.id in self.dense_heads:
                self._dense(node, *self.dense_heads[node.id])
            else:
                self._op(node)

    def _leaf(self, node: Node) -> None:
        if node.id in self.values:
            return
        if node.op == "constant":
            if node.dtype != self.dtype:
                raise CompileError(f"constant {node.label} has dtype {node.dtype.name} but the "
                                   f"plan computes in {self.dtype.name}; plans hold one float "
                                   f"dtype (cast the constant when building the graph)")
            v = Value(node.label, (max(int(node.value.size), 1), 0), arena="state")
            self.values[node.id] = v
            self.leaf_data.append((v, node.value))
            return
        raise CompileError(f"{node.op} {node.label} is used by the graph but is not an input "
                           f"or a parameter of the plan")

    def _dense(self, head: Node, a: Node, bias: Node | None, pre: Node | None,
               act: Node | None) -> None:
        x, w = a.inputs
        tb = a.attrs["transpose_b"]
        m, k = dim_size(x.shape[0]), dim_size(x.shape[1])
        n = dim_size(w.shape[0] if tb else w.shape[1])
        code = _ACT_CODES[act.op] if act is not None else _core._ACTIVATIONS["identity"]
        alpha = act.attrs["alpha"] if act is not None else 0.0
        self.emit(Instr(
            "dense_forward",
            [(self.value(x), 0), (self.value(w), 0),
             (self.value(bias), 0) if bias is not None else None,
             (self.value(pre), 0) if pre is not None else None, (self.value(head), 0)],
            m=m, n=n, k=k, subop=code, alpha=alpha,
            flags=frozenset({"trans_b"} if tb else ()), note=head.label))

    def _gemm(self, node: Node, dst: Value, accumulate: bool) -> None:
        a, b = node.inputs
        ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
        a_shape = a.shape if a.ndim == 2 else (1, a.shape[0])
        b_shape = b.shape if b.ndim == 2 else (b.shape[0], 1)
        m = dim_size(a_shape[1] if ta else a_shape[0])
        k = dim_size(a_shape[0] if ta else a_shape[1])
        n = dim_size(b_shape[0] if tb else b_shape[1])
        flags = {f for f, on in (("trans_a", ta), ("trans_b", tb), ("accumulate", accumulate))
                 if on}
        self.emit(Instr("gemm", [(self.value(a), 0), (self.value(b), 0), (dst, 0)],
                        m=m, n=n, k=k, alpha=1.0, flags=frozenset(flags), note=node.label))

    def _reduce(self, node: Node, dst: Value, accumulate: bool) -> None:
        (x,), axes = node.inputs, node.attrs["axes"]
        flags = {"accumulate"} if accumulate else set()
        if node.op == "mean":
            flags.add("mean")
        src = [(self.value(x), 0), (dst, 0)]
        nd = x.ndim
        if len(axes) == nd:
            self.emit(Instr("sum_all", src, n=shape_size(x.shape, node.label),
                            flags=frozenset(flags), note=node.label))
        elif axes == tuple(range(len(axes))):
            self.emit(Instr("colsum", src, m=shape_size(x.shape[:len(axes)], node.label),
                            n=shape_size(x.shape[len(axes):], node.label),
                            flags=frozenset(flags), note=node.label))
        elif axes == tuple(range(nd - len(axes), nd)):
            self.emit(Instr("rowsum", src, m=shape_size(x.shape[:nd - len(axes)], node.label),
                            n=shape_size(x.shape[nd - len(axes):], node.label),
                            flags=frozenset(flags), note=node.label))
        else:
            raise CompileError(f"{node.op} {node.label}: reducing axes {axes} of shape "
                               f"{format_shape(x.shape)} (not a leading or trailing block) is "
                               f"not supported by plans")

    def _copy_into(self, node: Node, dst: Value, accumulate: bool) -> None:
        """dst (=|+=) node's value, broadcast to dst's shape when it has fewer elements."""
        self.emit(Instr("unary", [(self.value(node), 0), (dst, 0)], m=ONE,
                        n=shape_size(node.shape, node.label), strides=(0, 1),
                        subop=_core.PLAN_UNARY["copy"],
                        flags=frozenset({"accumulate"} if accumulate else ()), note=node.label))

    def _into(self, node: Node, dst: Value, accumulate: bool) -> None:
        """Computes node into dst, or adds it there (a sum of gradient contributions)."""
        if node.id not in self.deferred and node.op != "add":
            self._copy_into(node, dst, accumulate)
        elif node.op == "add":
            a, b = node.inputs
            self._into(a, dst, accumulate)
            self._into(b, dst, True)
        elif node.op == "matmul":
            self._gemm(node, dst, accumulate)
        else:
            self._reduce(node, dst, accumulate)

    def _op(self, node: Node) -> None:
        op = node.op
        if op in ("matmul",):
            return self._gemm(node, self.value(node), False)
        if op in ("sum", "mean"):
            return self._reduce(node, self.value(node), False)
        if op == "add" and any(x.id in self.deferred for x in node.inputs):
            return self._into(node, self.value(node), False)
        if op in _BINARY:
            rows, cols, (sa, sb) = broadcast_view(node, list(node.inputs))
            return self.emit(Instr(
                "binary", [(self.value(node.inputs[0]), 0), (self.value(node.inputs[1]), 0),
                           (self.value(node), 0)],
                m=rows, n=cols, strides=sa + sb, subop=_core.PLAN_BINARY[op], note=node.label))
        if op in _UNARY or op in ("broadcast_to", "reshape"):
            x = node.inputs[0]
            if op == "broadcast_to":
                rows, cols, (sa,) = broadcast_view(node, [x])
            else:
                rows, cols, sa = ONE, shape_size(node.shape, node.label), (0, 1)
            code = _core.PLAN_UNARY[_UNARY.get(op, "copy")]
            return self.emit(Instr("unary", [(self.value(x), 0), (self.value(node), 0)],
                                   m=rows, n=cols, strides=sa, subop=code, note=node.label))
        if op == "transpose":
            return self._transpose(node)
        if op == "count":
            x, axes = node.inputs[0], node.attrs["axes"]
            counted = shape_size(tuple(x.shape[a] for a in axes), node.label)
            return self.emit(Instr("fill_count", [(self.value(node), 0)], m=counted, n=ONE,
                                   note=node.label))
        if op in _ACT_CODES:
            n = shape_size(node.shape, node.label)
            return self.emit(Instr("act_forward", [(self.value(node.inputs[0]), 0),
                                                   (self.value(node), 0)],
                                   n=n, subop=_ACT_CODES[op], alpha=node.attrs["alpha"],
                                   note=node.label))
        if op in _ACT_GRADS:
            g, saved = node.inputs
            return self.emit(Instr("act_backward", [(self.value(g), 0), (self.value(saved), 0),
                                                    (self.value(node), 0)],
                                   n=shape_size(node.shape, node.label),
                                   subop=_ACT_CODES[_ACT_GRADS[op]], alpha=node.attrs["alpha"],
                                   note=node.label))
        if op in _LOSS_OPS:
            return self._loss(node)
        if op in _LOSS_GRADS:
            return self._loss_grad(node)
        raise CompileError(f"op {op!r} ({node.label}) is not supported by the plan compiler; "
                           f"supported ops: {', '.join(SUPPORTED_OPS)}")

    def _transpose(self, node: Node) -> None:
        x = node.inputs[0]
        if x.ndim < 2:
            return self._copy_into(x, self.value(node), False)
        if x.ndim != 2 or x.shape[1] is None:
            raise CompileError(f"transpose {node.label} of shape {format_shape(x.shape)}: "
                               f"plans transpose matrices with a static number of columns only")
        self.emit(Instr("unary", [(self.value(x), 0), (self.value(node), 0)],
                        m=dim_size(x.shape[1]), n=dim_size(x.shape[0]), strides=(1, x.shape[1]),
                        subop=_core.PLAN_UNARY["copy"], note=node.label))

    def _labels(self, node: Node, labels: Node) -> Value:
        if labels.op != "placeholder" or labels.dtype != np.int64:
            raise CompileError(f"{node.op} {node.label}: plans take class labels from an int64 "
                               f"placeholder, got {labels.op} {labels.label} of dtype "
                               f"{labels.dtype.name}")
        return self.value(labels)

    def _xent_forward(self, z: Node, y: Node, reduction: str, loss: Value) -> tuple:
        key = (z.id, y.id, reduction)
        if key not in self.probs:
            probs = self.scratch(f"probs({z.label})", shape_size(z.shape, z.label))
            self.emit(Instr("xent_forward", [(self.value(z), 0), (self._labels(z, y), 0),
                                             (probs, 0), (loss, 0)],
                            m=dim_size(z.shape[0]), n=dim_size(z.shape[1]),
                            flags=frozenset({"mean"} if reduction == "mean" else ()),
                            note=f"xent({z.label})"))
            self.probs[key] = (probs, loss)
        return self.probs[key]

    def _loss(self, node: Node) -> None:
        kind = _LOSS_OPS[node.op]
        a, b = node.inputs
        reduction = node.attrs["reduction"]
        if kind == "xent":
            key = (a.id, b.id, reduction)
            if key in self.probs:
                self.values[node.id] = self.probs[key][1]
            else:
                self._xent_forward(a, b, reduction, self.value(node))
            return
        self.emit(Instr(f"{kind}_forward", [(self.value(a), 0), (self.value(b), 0),
                                            (self.value(node), 0)],
                        n=shape_size(a.shape, node.label),
                        flags=frozenset({"mean"} if reduction == "mean" else ()),
                        note=node.label))

    def _loss_grad(self, node: Node) -> None:
        kind = _LOSS_GRADS[node.op]
        a, b, ct = node.inputs
        reduction = node.attrs["reduction"]
        flags = frozenset({"mean"} if reduction == "mean" else ())
        alpha, ct_ref = 1.0, None
        if ct.op == "constant":
            alpha = float(ct.value)
        else:
            ct_ref = (self.value(ct), 0)
        if kind == "xent":
            probs, _ = self._xent_forward(a, b, reduction,
                                          self.scratch(f"loss({a.label})", ONE))
            return self.emit(Instr("xent_backward", [(probs, 0), (self._labels(node, b), 0),
                                                     ct_ref, (self.value(node), 0)],
                                   m=dim_size(a.shape[0]), n=dim_size(a.shape[1]), alpha=alpha,
                                   flags=flags, note=node.label))
        self.emit(Instr(f"{kind}_backward", [(self.value(a), 0), (self.value(b), 0), ct_ref,
                                             (self.value(node), 0)],
                        n=shape_size(a.shape, node.label), alpha=alpha, flags=flags,
                        note=node.label))
