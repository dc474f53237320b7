"""Lowering: a simplified graph becomes plan instructions, with the fusions that pay.

- matmul + bias (+ activation) -> one dense instruction (the GEMM epilogue applies them);
  the pre-activation is stored only when an activation derivative needs it;
- the backward of a dense layer (activation derivative, weight and bias gradients, input
  gradient) -> one dense_backward instruction, one pass over the cotangent before its GEMMs;
- softmax + cross-entropy -> one fused kernel whose saved probabilities the backward reuses;
  the VJPs of softmax and log-softmax -> one row-wise instruction each;
- max with argmax -> one instruction with two outputs, the argmax saved for the backward,
  which scatters the cotangent to it (one_hot scaled by the cotangent, one instruction);
- gradient accumulation: where an add sums contributions (the reverse pass's way of adding
  the cotangents of a value with several consumers), GEMMs and column sums write straight
  into the sum's buffer with beta = 1 and other terms are added into it, never materialised
  and summed;
- gradients of the trained parameters are computed in place in the gradient arena;
- reshape, cast of an integer or bool value, and contiguous pieces of a split are aliases of
  their input (no instruction, no memory).

Bools and integers (comparisons, argmax and group-max indices, int64 labels, integer
constants) are stored in the plan's float dtype, exactly: 0/1 for bools, integers of magnitude
<= 2^24 in float32 plans and 2^53 in float64 ones. int64 placeholders stay int64 in their
input slot for the cross-entropy kernels and are converted once (checked exact at run time)
for any other use. Everything else maps one op to one instruction. An op without a plan
instruction raises CompileError naming it.
"""

from __future__ import annotations

import numpy as np

from ffnc import _core
from ffnc.compiler.program import ONE, CompileError, Instr, Program, Size, Value, size_product
from ffnc.graph.ir import FLOAT_DTYPES, Node, format_shape, topo_order
from ffnc.graph.ops import ACTIVATIONS

_ACT_CODES = {name: _core._ACTIVATIONS[name] for name in ACTIVATIONS}
_ACT_GRADS = {f"{name}_grad": name for name in ACTIVATIONS}
_BINARY = {"add", "sub", "mul", "div", "maximum", "minimum", "greater", "greater_equal",
           "equal"}
_UNARY = {"neg": "neg", "exp": "exp", "log": "log", "square": "square", "sqrt": "sqrt"}
_LOSS_OPS = {"softmax_cross_entropy": "xent", "bce_with_logits": "bce", "mse": "mse", "l1": "l1"}
_LOSS_GRADS = {f"{k}_grad": v for k, v in _LOSS_OPS.items()}
_ROWWISE = {"softmax": "softmax", "log_softmax": "log_softmax", "logsumexp": "logsumexp"}
SUPPORTED_OPS = sorted(
    {"placeholder", "parameter", "constant", "matmul", "sum", "mean", "count", "broadcast_to",
     "reshape", "transpose", "where", "one_hot", "cast", "concat", "split", "output",
     "group_max", "argmax", "sqdist", "dropout", "prelu", "prelu_grad"} | _BINARY | set(_UNARY)
    | set(_ROWWISE) | set(_ACT_CODES) | set(_ACT_GRADS) | set(_LOSS_OPS) | set(_LOSS_GRADS))
# The largest integer magnitude a float dtype holds exactly (and all integers below it).
EXACT_INT = {np.dtype(np.float32): 2 ** 24, np.dtype(np.float64): 2 ** 53}
Ref = tuple  # (Value, element offset into it)


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


def axis_view(shape: tuple, axis: int, what: str) -> tuple[Size, Size, Size]:
    """shape as outer x n x inner around `axis`: the m, n, k of an along-an-axis instruction."""
    return (shape_size(shape[:axis], what), dim_size(shape[axis]),
            shape_size(shape[axis + 1:], what))


def _is_sum_over(node: Node, x: Node, axis: int) -> bool:
    """node is sum(x, axis, keepdims=True): the row sum of a softmax-style backward."""
    return node.op == "sum" and node.inputs[0] is x and node.attrs["axes"] == (axis,) \
        and node.attrs["keepdims"]


class Lowering:
    """Turns the nodes of `roots` into instructions appended to `program`.

    values: node id -> Value for the leaves and the pinned results (gradients in the gradient
    arena); other results get activation values, or alias another value (aliases). leaf_data
    collects (Value, array) pairs of constants whose contents the plan must be given.
    """

    def __init__(self, roots: list[Node], values: dict[int, Value], dtype: np.dtype,
                 program: Program) -> None:
        self.dtype = dtype
        self.program = program
        self.values = values
        self.aliases: dict[int, Ref] = {}
        self.converted: dict[int, Value] = {}  # int64 placeholders in the plan's dtype
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
        self.fused: dict[int, tuple] = {}  # node id -> (kind, details) of a fused instruction
        self.after: dict[int, tuple] = {}  # node id -> a dense backward emitted right after it
        self._find_row_backwards()
        self._find_scaled_one_hots()
        self._find_dense_backward()

    # ---- analysis ---------------------------------------------------------------------------

    def _only_consumer(self, node: Node) -> Node | None:
        users = self.consumers[node.id]
        if node.id in self.roots or len(users) != 1:
            return None
        return users[0]

    def _private(self, node: Node, user: Node) -> bool:
        """node feeds user only and nothing else needs its value."""
        return self._only_consumer(node) is user and node.id not in self.values \
            and node.id not in self.skipped and node.id not in self.deferred

    def _after(self, node: Node, head: Node) -> bool:
        """Every consumer of node other than the head comes after the head."""
        return all(self.position[u.id] > self.position[head.id]
                   for u in self.consumers[node.id] if u is not head)

    def _before(self, node: Node, at: Node) -> bool:
        return self.position[node.id] < self.position[at.id]

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

    def _free(self, node: Node) -> bool:
        """node is lowered on its own (not part of a fusion or an accumulation)."""
        return node.id not in self.skipped and node.id not in self.deferred \
            and node.id not in self.dense_heads and node.id not in self.fused

    def _find_row_backwards(self) -> None:
        """The VJPs of softmax, s (v - sum(s v)), and of log-softmax, g - exp(y) sum(g), as
        the reverse pass writes them: one row-wise instruction each."""
        for node in self.order:
            if not self._free(node) or node.op not in ("mul", "sub"):
                continue
            a, b = node.inputs
            if node.op == "mul":
                for s, diff in ((a, b), (b, a)):
                    if s.op != "softmax" or diff.op != "sub" or not self._private(diff, node):
                        continue
                    v, total = diff.inputs
                    axis = s.attrs["axis"]
                    if v.shape != s.shape or not self._private(total, diff) \
                            or not _is_sum_over(total, total.inputs[0], axis):
                        continue
                    prod = total.inputs[0]
                    if prod.op != "mul" or not self._private(prod, total) \
                            or {x.id for x in prod.inputs} != {s.id, v.id}:
                        continue
                    self.skipped.update((diff.id, total.id, prod.id))
                    self.fused[node.id] = ("softmax_backward", v, s, axis)
                    break
            else:
                g, prod = a, b
                if prod.op != "mul" or not self._private(prod, node):
                    continue
                for e, total in (prod.inputs, reversed(prod.inputs)):
                    if e.op != "exp" or e.inputs[0].op != "log_softmax":
                        continue
                    y = e.inputs[0]
                    axis = y.attrs["axis"]
                    if g.shape != y.shape or not self._private(e, prod) \
                            or not self._private(total, prod) or not _is_sum_over(total, g, axis):
                        continue
                    self.skipped.update((prod.id, e.id, total.id))
                    self.fused[node.id] = ("log_softmax_backward", g, y, axis)
                    break

    def _find_scaled_one_hots(self) -> None:
        """scale * one_hot(index) with one scale per index (the scatter of a max's gradient to
        its argmax): one one_hot instruction with a scale operand."""
        for node in self.order:
            if node.op != "mul" or not self._free(node):
                continue
            for hot, scale in (node.inputs, tuple(reversed(node.inputs))):
                if hot.op == "one_hot" and self._private(hot, node) \
                        and scale.shape == hot.shape[:-1] + (1,) and hot.shape == node.shape:
                    self.skipped.add(hot.id)
                    self.fused[node.id] = ("one_hot", hot.inputs[0], scale, hot.attrs["depth"])
                    break

    def _find_dense_backward(self) -> None:
        """g, the cotangent of a dense layer's pre-activation (an activation derivative, or any
        matrix), and the GEMMs and column sum the reverse pass applies to it: dW = x^T g,
        db = sum(g, 0), dx = g W^T (or their PyTorch-layout forms) -> one dense_backward."""
        for g in self.order:
            act = g.op in _ACT_GRADS
            if g.is_leaf or g.n_outputs != 1 or g.ndim != 2 or g.shape[1] is None \
                    or g.dtype != self.dtype or g.id in self.skipped or g.id in self.deferred \
                    or (act and not self._free(g)):
                continue
            users = [u for u in self.consumers[g.id] if self._free(u)]
            d_w = d_x = d_b = None
            trans = None
            for u in users:
                if u.op == "matmul" and u.inputs[0] is not u.inputs[1]:
                    ta, tb = u.attrs["transpose_a"], u.attrs["transpose_b"]
                    if d_w is None and ta and not tb and u.inputs[1] is g \
                            and u.inputs[0].ndim == 2:
                        d_w, trans = (u, u.inputs[0]), False
                    elif d_w is None and ta and not tb and u.inputs[0] is g \
                            and u.inputs[1].ndim == 2:
                        d_w, trans = (u, u.inputs[1]), True
                    elif d_x is None and not ta and u.inputs[0] is g and u.inputs[1].ndim == 2:
                        d_x = (u, u.inputs[1], tb)
                elif u.op == "sum" and d_b is None and u.attrs["axes"] == (0,) \
                        and not u.attrs["keepdims"]:
                    d_b = u
            if d_x is not None:
                node, w, tb = d_x
                x_trans = not tb  # dx = g W^T: W stored k x n; dx = g W: W stored n x k
                if trans is None:
                    trans = x_trans
                if trans != x_trans or (d_w is not None and d_w[1].shape[1] !=
                                        (w.shape[1] if trans else w.shape[0])):
                    d_x = None
            members = [m for m in (d_w and d_w[0], d_x and d_x[0], d_b) if m is not None]
            # x and W are read where g is computed: they must exist by then
            if len(members) < (1 if act else 2) \
                    or (d_w is not None and not self._before(d_w[1], g)) \
                    or (d_x is not None and not self._before(d_x[1], g)):
                continue
            for m in members:
                self.skipped.add(m.id)
            detail = ("dense_backward", g, d_w, d_x, d_b, bool(trans))
            if act:
                self.fused[g.id] = detail
            else:
                self.after[g.id] = detail

    # ---- values -----------------------------------------------------------------------------

    def value(self, node: Node) -> Value:
        """The buffer node's result is written to."""
        v = self.values.get(node.id)
        if v is None:
            v = Value(node.label, shape_size(node.shape, node.label))
            self.values[node.id] = v
        return v

    def ref(self, node: Node) -> Ref:
        """Where an instruction reads node's value, in the plan's dtype."""
        if node.id in self.aliases:
            return self.aliases[node.id]
        if node.op == "placeholder" and node.dtype == np.int64:
            v = self.converted.get(node.id)
            if v is None:
                v = self.converted[node.id] = Value(f"float({node.label})",
                                                    shape_size(node.shape, node.label))
                self.emit(Instr("from_int64", [(self.value(node), 0), (v, 0)],
                                n=shape_size(node.shape, node.label), subop=1,
                                note=f"float({node.label})"))
            return (v, 0)
        return (self.value(node), 0)

    def share(self, node: Node, source: Ref) -> None:
        """node's value is source's: an alias, or a copy where node needs a buffer of its own
        (a root the plan returns, a gradient pinned in the gradient arena)."""
        if node.id in self.values or node.id in self.roots:
            size = self.value(node).size
            self.emit(Instr("unary", [source, (self.value(node), 0)], m=ONE, n=size,
                            strides=(0, 1), subop=_core.PLAN_UNARY["copy"], note=node.label))
        else:
            self.aliases[node.id] = source

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
            elif node.id in self.fused:
                self._fused(node, *self.fused[node.id])
            else:
                self._op(node)
            if node.id in self.after:
                self._dense_backward(*self.after[node.id][1:])

    def _leaf(self, node: Node) -> None:
        if node.id in self.values:
            return
        if node.op == "constant":
            value = node.value
            if node.dtype in FLOAT_DTYPES and node.dtype != self.dtype:
                raise CompileError(f"constant {node.label} has dtype {node.dtype.name} but the "
                                   f"plan computes in {self.dtype.name}; plans hold one float "
                                   f"dtype (cast the constant when building the graph)")
            if node.dtype.kind in "iu" and value.size and \
                    int(np.max(np.abs(value.astype(object)))) > EXACT_INT[self.dtype]:
                raise CompileError(f"constant {node.label}: integers of magnitude above "
                                   f"{EXACT_INT[self.dtype]} are not exact in a "
                                   f"{self.dtype.name} plan")
            v = Value(node.label, (max(int(value.size), 1), 0), arena="state")
            self.values[node.id] = v
            self.leaf_data.append((v, value))
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
            [self.ref(x), self.ref(w), self.ref(bias) if bias is not None else None,
             (self.value(pre), 0) if pre is not None else None, (self.value(head), 0)],
            m=m, n=n, k=k, subop=code, alpha=alpha,
            flags=frozenset({"trans_b"} if tb else ()), note=head.label))

    def _dense_backward(self, g: Node, d_w: tuple | None, d_x: tuple | None, d_b: Node | None,
                        trans: bool) -> None:
        act = g.op in _ACT_GRADS
        if act:
            ct, saved = g.inputs
            code, alpha = _ACT_CODES[_ACT_GRADS[g.op]], g.attrs["alpha"]
        else:
            ct, saved = g, None
            code, alpha = _core._ACTIVATIONS["identity"], 0.0
        m, n = dim_size(g.shape[0]), dim_size(g.shape[1])
        if d_w is not None:
            k = dim_size(d_w[1].shape[1])
        else:
            w = d_x[1]
            k = dim_size(w.shape[1] if trans else w.shape[0])
        self.emit(Instr(
            "dense_backward",
            [self.ref(d_w[1]) if d_w is not None else None,
             self.ref(d_x[1]) if d_x is not None else None,
             self.ref(saved) if saved is not None else None, self.ref(ct),
             (self.value(g), 0) if act else None,
             (self.value(d_x[0]), 0) if d_x is not None else None,
             (self.value(d_w[0]), 0) if d_w is not None else None,
             (self.value(d_b), 0) if d_b is not None else None],
            m=m, n=n, k=k, subop=code, alpha=alpha,
            flags=frozenset({"trans_b"} if trans else ()), note=f"backward({g.label})"))

    def _fused(self, node: Node, kind: str, *detail) -> None:
        if kind == "dense_backward":
            return self._dense_backward(*detail)
        if kind == "one_hot":
            index, scale, depth = detail
            return self.emit(Instr("one_hot", [self.ref(index), self.ref(scale),
                                               (self.value(node), 0)],
                                   m=shape_size(index.shape, node.label), n=(depth, 0),
                                   note=node.label))
        diff, saved, axis = detail
        m, n, k = axis_view(node.shape, axis, node.label)
        self.emit(Instr(kind, [self.ref(diff), self.ref(saved), (self.value(node), 0)],
                        m=m, n=n, k=k, note=node.label))

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
        self.emit(Instr("gemm", [self.ref(a), self.ref(b), (dst, 0)],
                        m=m, n=n, k=k, alpha=1.0, flags=frozenset(flags), note=node.label))

    def _reduce(self, node: Node, dst: Value, accumulate: bool) -> None:
        (x,), axes = node.inputs, node.attrs["axes"]
        flags = {"accumulate"} if accumulate else set()
        if node.op == "mean":
            flags.add("mean")
        src = [self.ref(x), (dst, 0)]
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
        self.emit(Instr("unary", [self.ref(node), (dst, 0)], m=ONE,
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
                "binary", [self.ref(node.inputs[0]), self.ref(node.inputs[1]),
                           (self.value(node), 0)],
                m=rows, n=cols, strides=sa + sb, subop=_core.PLAN_BINARY[op], note=node.label))
        if op in _UNARY or op == "broadcast_to":
            x = node.inputs[0]
            if op == "broadcast_to":
                rows, cols, (sa,) = broadcast_view(node, [x])
            else:
                rows, cols, sa = ONE, shape_size(node.shape, node.label), (0, 1)
            code = _core.PLAN_UNARY[_UNARY.get(op, "copy")]
            return self.emit(Instr("unary", [self.ref(x), (self.value(node), 0)],
                                   m=rows, n=cols, strides=sa, subop=code, note=node.label))
        if op == "reshape":
            return self.share(node, self.ref(node.inputs[0]))
        if op == "cast":
            return self._cast(node)
        if op == "transpose":
            return self._transpose(node)
        if op == "count":
            x, axes = node.inputs[0], node.attrs["axes"]
            counted = shape_size(tuple(x.shape[a] for a in axes), node.label)
            return self.emit(Instr("fill_count", [(self.value(node), 0)], m=counted, n=ONE,
                                   note=node.label))
        if op in _ACT_CODES:
            n = shape_size(node.shape, node.label)
            return self.emit(Instr("act_forward", [self.ref(node.inputs[0]),
                                                   (self.value(node), 0)],
                                   n=n, subop=_ACT_CODES[op], alpha=node.attrs["alpha"],
                                   note=node.label))
        if op in _ACT_GRADS:
            g, saved = node.inputs
            return self.emit(Instr("act_backward", [self.ref(g), self.ref(saved),
                                                    (self.value(node), 0)],
                                   n=shape_size(node.shape, node.label),
                                   subop=_ACT_CODES[_ACT_GRADS[op]], alpha=node.attrs["alpha"],
                                   note=node.label))
        if op in _LOSS_OPS:
            return self._loss(node)
        if op in _LOSS_GRADS:
            return self._loss_grad(node)
        if op in _ROWWISE:
            x, axis = node.inputs[0], node.attrs["axis"]
            m, n, k = axis_view(x.shape, axis, node.label)
            return self.emit(Instr(_ROWWISE[op], [self.ref(x), (self.value(node), 0)],
                                   m=m, n=n, k=k, note=node.label))
        handler = getattr(self, f"_lower_{op}", None)
        if handler is not None:
            return handler(node)
        raise CompileError(f"op {op!r} ({node.label}) is not supported by the plan compiler; "
                           f"supported ops: {', '.join(SUPPORTED_OPS)}")

    # ---- selection, index and layout ops ----------------------------------------------------

    def _lower_where(self, node: Node) -> None:
        rows, cols, (sc, sa, sb) = broadcast_view(node, list(node.inputs))
        self.emit(Instr("where", [self.ref(x) for x in node.inputs] + [(self.value(node), 0)],
                        m=rows, n=cols, strides=sc + sa + sb, note=node.label))

    def _lower_one_hot(self, node: Node) -> None:
        index = node.inputs[0]
        self.emit(Instr("one_hot", [self.ref(index), None, (self.value(node), 0)],
                        m=shape_size(index.shape, node.label), n=(node.attrs["depth"], 0),
                        note=node.label))

    def _cast(self, node: Node) -> None:
        x = node.inputs[0]
        if x.op == "placeholder" and x.dtype == np.int64:
            # a cast rounds where the integer has no exact float (subop 0)
            return self.emit(Instr("from_int64", [(self.value(x), 0), (self.value(node), 0)],
                                   n=shape_size(x.shape, node.label), note=node.label))
        # integers and bools are stored as exact floats already
        self.share(node, self.ref(x))

    def _lower_argmax(self, node: Node) -> None:
        x, axis = node.inputs[0], node.attrs["axis"]
        self._max_argmax(node, x, axis_view(x.shape, axis, node.label), None,
                         (self.value(node), 0))

    def _max_argmax(self, node: Node, x: Node, view: tuple, dst_max: Ref | None,
                    dst_index: Ref | None) -> None:
        m, n, k = view
        if dst_index is not None and n[1] == 0 and n[0] > EXACT_INT[self.dtype]:
            raise CompileError(f"{node.op} {node.label}: indices up to {n[0]} are not exact in "
                               f"a {self.dtype.name} plan (at most {EXACT_INT[self.dtype]})")
        self.emit(Instr("max_argmax", [self.ref(x), dst_max, dst_index], m=m, n=n, k=k,
                        note=node.label))

    def _outputs_of(self, node: Node) -> dict[int, list[Node]]:
        """The output projections of a multi-output node, by index."""
        found: dict[int, list[Node]] = {}
        for u in self.consumers[node.id]:
            if u.op == "output":
                found.setdefault(u.attrs["index"], []).append(u)
        return found

    def _lower_output(self, node: Node) -> None:
        """Lowered with its multi-output node, which wrote or aliased it already."""

    def _share_rest(self, outs: list[Node]) -> None:
        for other in outs[1:]:
            self.share(other, self.ref(outs[0]))

    def _lower_group_max(self, node: Node) -> None:
        (x,), size = node.inputs, node.attrs["size"]
        outs = self._outputs_of(node)
        if not outs:
            return
        groups = shape_size(x.shape[:-1] + (x.shape[-1] // size,), node.label)
        dst = [(self.value(outs[i][0]), 0) if i in outs else None for i in (0, 1)]
        self._max_argmax(node, x, (groups, (size, 0), ONE), dst[0], dst[1])
        for same in outs.values():
            self._share_rest(same)

    def _lower_split(self, node: Node) -> None:
        (x,), axis, sizes = node.inputs, node.attrs["axis"], node.attrs["sizes"]
        outer = shape_size(x.shape[:axis], node.label)
        inner = shape_size(x.shape[axis + 1:], node.label)
        width = size_product(dim_size(x.shape[axis]), inner, node.label)
        if width[1] or inner[1]:
            raise CompileError(f"split {node.label}: pieces of shape {format_shape(x.shape)} "
                               f"along axis {axis} must have a static row length")
        source, extra = self.ref(x)
        start = 0
        for i, piece in enumerate(sizes):
            cols = piece * inner[0]
            outs = self._outputs_of(node).get(i, [])
            if outs:
                first = outs[0]
                if outer == ONE:
                    self.share(first, (source, extra + start))
                else:
                    self.emit(Instr("unary", [(source, extra + start), (self.value(first), 0)],
                                    m=outer, n=(cols, 0), strides=(width[0], 1),
                                    subop=_core.PLAN_UNARY["copy"], note=first.label))
                self._share_rest(outs)
            start += cols

    def _lower_concat(self, node: Node) -> None:
        axis = node.attrs["axis"]
        outer = shape_size(node.shape[:axis], node.label)
        inner = shape_size(node.shape[axis + 1:], node.label)
        width = size_product(dim_size(node.shape[axis]), inner, node.label)
        if width[1] or inner[1]:
            raise CompileError(f"concat {node.label}: the result of shape "
                               f"{format_shape(node.shape)} must have a static row length "
                               f"from axis {axis} on")
        dst = self.value(node)
        start = 0
        for x in node.inputs:
            cols = x.shape[axis] * inner[0]
            self.emit(Instr("copy_strided", [self.ref(x), (dst, start)], m=outer, n=(cols, 0),
                            strides=(cols, 1, width[0], 1), note=f"{node.label}[{start}:]"))
            start += cols

    def _lower_prelu(self, node: Node) -> None:
        x, alpha = node.inputs
        self.emit(Instr("prelu_forward", [self.ref(x), self.ref(alpha), (self.value(node), 0)],
                        m=dim_size(x.shape[0]), n=dim_size(x.shape[1]), k=(alpha.shape[0], 0),
                        note=node.label))

    def _lower_prelu_grad(self, node: Node) -> None:
        g, x, alpha = node.inputs
        outs = self._outputs_of(node)
        if not outs:
            return
        dst = [(self.value(outs[i][0]), 0) if i in outs else
               (self.scratch(f"unused({node.label})", shape_size(node.shapes[i])), 0)
               for i in (0, 1)]
        self.emit(Instr("prelu_backward", [self.ref(g), self.ref(x), self.ref(alpha)] + dst,
                        m=dim_size(x.shape[0]), n=dim_size(x.shape[1]), k=(alpha.shape[0], 0),
                        note=node.label))
        for same in outs.values():
            self._share_rest(same)

    def _lower_sqdist(self, node: Node) -> None:
        x, c = node.inputs
        self.emit(Instr("sqdist", [self.ref(x), self.ref(c), (self.value(node), 0)],
                        m=dim_size(x.shape[0]), n=dim_size(c.shape[0]), k=dim_size(x.shape[1]),
                        note=node.label))

    def _lower_dropout(self, node: Node) -> None:
        seed = node.attrs["seed"]
        self.emit(Instr("dropout", [self.ref(node.inputs[0]), (self.value(node), 0)],
                        n=shape_size(node.shape, node.label), alpha=node.attrs["p"],
                        hyper=(seed & 0xFFFFFFFF, seed >> 32), note=node.label))

    def _transpose(self, node: Node) -> None:
        x = node.inputs[0]
        if x.ndim < 2:
            return self.share(node, self.ref(x))
        if x.ndim != 2:
            raise CompileError(f"transpose {node.label} of shape {format_shape(x.shape)}: "
                               f"plans transpose matrices only")
        if x.shape[1] is None:
            return self.emit(Instr("transpose", [self.ref(x), (self.value(node), 0)],
                                   m=dim_size(x.shape[0]), n=dim_size(x.shape[1]),
                                   note=node.label))
        source, extra = self.ref(x)
        self.emit(Instr("unary", [(source, extra), (self.value(node), 0)],
                        m=dim_size(x.shape[1]), n=dim_size(x.shape[0]), strides=(1, x.shape[1]),
                        subop=_core.PLAN_UNARY["copy"], note=node.label))

    # ---- losses -----------------------------------------------------------------------------

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
            self.emit(Instr("xent_forward", [self.ref(z), (self._labels(z, y), 0),
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
        self.emit(Instr(f"{kind}_forward", [self.ref(a), self.ref(b), (self.value(node), 0)],
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
            ct_ref = self.ref(ct)
        if kind == "xent":
            probs, _ = self._xent_forward(a, b, reduction,
                                          self.scratch(f"loss({a.label})", ONE))
            return self.emit(Instr("xent_backward", [(probs, 0), (self._labels(node, b), 0),
                                                     ct_ref, (self.value(node), 0)],
                                   m=dim_size(a.shape[0]), n=dim_size(a.shape[1]), alpha=alpha,
                                   flags=flags, note=node.label))
        self.emit(Instr(f"{kind}_backward", [self.ref(a), self.ref(b), ct_ref,
                                             (self.value(node), 0)],
                        n=shape_size(a.shape, node.label), alpha=alpha, flags=flags,
                        note=node.label))
