"""compile(): graph outputs (and an optimizer update) to a Plan."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from ffnc import _core
from ffnc._memory import (
    MEMORY_LIMIT,
    check_allocation,
    format_bytes,
    owns_its_memory,
    page_backed_copy,
)
from ffnc.compiler.fuse_update import fusable, fuse_momentum
from ffnc.compiler.lower import Lowering, shape_size
from ffnc.compiler.memory import plan_activations
from ffnc.compiler.plan import Plan
from ffnc.compiler.program import CompileError, Instr, Program, Value, size_at
from ffnc.graph import grad, simplify
from ffnc.graph.ir import FLOAT_DTYPES, Node, node_list, topo_order
from ffnc.optim import SGD, Adam, Momentum, Optimizer, RMSprop


def _plan_dtype(nodes: list[Node]) -> np.dtype:
    dtypes = {d for n in nodes for d in n.dtypes if d in FLOAT_DTYPES}
    if len(dtypes) != 1:
        raise CompileError(f"a plan computes in one float dtype; this graph uses "
                           f"{sorted(d.name for d in dtypes) or 'none'}")
    return dtypes.pop()


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MAX_SIZE = 2**63  # sizes and counts are size_t / int64 in C


def _check_arena_sizes(dtype: np.dtype, batch_size: int, sizes: tuple) -> None:
    """A plan whose arenas could not fit in this machine's memory is refused before the C
    side is asked to allocate them (sizes in elements, for batches of batch_size rows)."""
    total = sum(sizes) * dtype.itemsize
    if total > MEMORY_LIMIT:
        names = ("parameters", "gradients", "optimizer state", "activations")
        parts = ", ".join(f"{n} {format_bytes(z * dtype.itemsize)}"
                          for n, z in zip(names, sizes, strict=True) if z)
        check_allocation(total, f"a plan for batches of up to batch_size={batch_size} rows "
                                f"({parts})")


def _check_for_dtype(opt: Optimizer, dtype: np.dtype) -> None:
    """The settings a float32 update cannot represent (the C check would only say which
    instruction is invalid)."""
    if dtype != np.float32:
        return
    for name in ("lr", "weight_decay", "eps"):
        value = getattr(opt, name, None)
        if value is not None and value > _FLOAT32_MAX:
            raise ValueError(f"optimizer {name}={value} overflows float32, the plan's dtype")
    eps = getattr(opt, "eps", None)
    if eps is not None and np.float32(eps) == 0:
        raise ValueError(f"optimizer eps={eps} rounds to 0 in float32, the plan's dtype; use "
                         f"at least 1e-45")


def _optimizer_instrs(opt: Optimizer, total: int,
                      dtype: np.dtype) -> tuple[list[Instr], dict[str, Value], Value | None]:
    """The optimizer's instructions over the whole arenas of `total` parameters: gradient
    clipping when opt.clip_norm is set, then the update. Returns them with the state buffers
    the update keeps (name -> Value, laid out from the start of the state arena in
    opt.state_names order) and the one-element slot after them that receives the gradient norm
    before clipping (None without clipping)."""
    _check_for_dtype(opt, dtype)
    n = (total, 0)
    p, g = Value("params", n, "params", 0), Value("grads", n, "grads", 0)
    state = {name: Value(f"optimizer.{name}", n, "state", i * total)
             for i, name in enumerate(opt.state_names)}
    instrs = []
    norm = None
    if opt.clip_norm is not None:
        norm = Value("grad_norm", (1, 0), "state", len(state) * total)
        instrs.append(Instr("clip_grad_norm", [(g, 0), (norm, 0)], n=n, hyper=(opt.clip_norm,),
                            note=f"clip to norm {opt.clip_norm:g}"))
    if isinstance(opt, SGD):
        instrs.append(Instr("sgd", [(p, 0), (g, 0)], n=n, hyper=(opt.lr, opt.weight_decay),
                            note="sgd"))
    elif isinstance(opt, Momentum):
        instrs.append(Instr("momentum", [(p, 0), (g, 0), (state["velocity"], 0)], n=n,
                            hyper=(opt.lr, opt.momentum, opt.weight_decay),
                            flags=frozenset({"nesterov"} if opt.nesterov else ()),
                            note="nesterov" if opt.nesterov else "momentum"))
    elif isinstance(opt, Adam):
        instrs.append(Instr("adam", [(p, 0), (g, 0), (state["m"], 0), (state["v"], 0)], n=n,
                            hyper=(opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay),
                            flags=frozenset({"decoupled"} if opt.decoupled else ()),
                            note="adamw" if opt.decoupled else "adam"))
    elif isinstance(opt, RMSprop):
        optional = [(state[name], 0) if name in state else None
                    for name in ("momentum_buffer", "grad_avg")]
        instrs.append(Instr("rmsprop", [(p, 0), (g, 0), (state["square_avg"], 0), *optional],
                            n=n, hyper=(opt.lr, opt.alpha, opt.eps, opt.weight_decay,
                                        opt.momentum),
                            flags=frozenset({"centered"} if opt.centered else ()),
                            note="rmsprop (centered)" if opt.centered else "rmsprop"))
    else:
        raise TypeError(f"optimizer {type(opt).__name__} has no plan instruction")
    return instrs, state, norm


def compile(outputs: Node | Sequence[Node], *, batch_size: int,  # noqa: A001 (the verb)
            params: Sequence[Node] | None = None, inputs: Sequence[Node] | None = None,
            loss: Node | None = None, optimizer: Optimizer | None = None,
            keep_grads: bool = False) -> Plan:
    """Compiles a step into a Plan that runs in one C call.

    outputs: the nodes each run returns (a loss, metrics, predictions).
    batch_size: the largest number of rows a run takes (smaller batches are fine).
    params: the parameter nodes to train, laid out in that order in one parameter arena
        (default: every parameter the graph uses). Other parameters are frozen constants.
    inputs: the placeholders in feed order (default: the graph's, in creation order).
    loss: a scalar whose gradient with respect to params the plan computes into the gradient
        arena at each run (needed for an optimizer).
    optimizer: an ffnc.optim optimizer (SGD, Momentum, Adam, AdamW, RMSprop); its update of
        every parameter, one instruction over the whole arena (after gradient clipping when
        its clip_norm is set), ends each run.
    keep_grads: store every trained parameter's gradient in the gradient arena (``plan.grads``)
        at each run. Without it, a Momentum update (without Nesterov, weight decay or clipping)
        has the weight gradient of each dense layer (of 4096 elements or more) added straight
        into the velocity by the GEMM that computes it, v = momentum v + X^T dY, and never
        stored: a pass over memory less per step, and no memory for that gradient. Those
        parameters are ``plan.grads_in_velocity`` and have no ``plan.grads`` entry. Work on
        the gradients between ``compute_gradients`` and ``apply_update`` (ffnc.distributed)
        needs keep_grads=True.

    Parameter values: the plan starts from each parameter's current ``value``; then the plan's
    memory becomes the parameter's storage, so that no value is held twice and the graph sees
    what the plan does to it:

    - A parameter that holds its own copy (as ``ffnc.graph.parameter`` made it) hands it over
      to the first plan it is compiled into, trained or not: its ``value`` becomes a read-only
      view of the plan's slot for it (the memory of ``plan.params[p]`` for a trained one) and
      the copy is freed. Evaluating the graph after training (``ffnc.graph.evaluate``, another
      compile) uses the trained values; writing ``plan.params[p]`` changes ``p.value``.
    - A parameter held by an earlier plan moves to this one only if this plan trains it (it
      is in ``params`` and there is an optimizer): a parameter's value is that of the plan
      that last compiled an update of it. A plan that only evaluates or differentiates it
      starts from a copy of its value at compile time. So two plans compiled from one graph
      before either runs both start from the initial values, while a plan compiled after
      another has trained starts from the trained values.
    - A parameter whose ``value`` is writable has its storage elsewhere (an ``ffnc.nn`` model
      keeps its parameters in ``model.flat`` and binds that to a plan with ``model.bind``,
      as ffnc.train.fit does): the plan copies the value and never rebinds it.
    - When the plan is garbage-collected, the parameters it still holds take back a private
      copy of their last values, so the graph does not keep the plan's memory alive.
    A value fed to ``ffnc.graph.evaluate`` for a parameter overrides it in that evaluation
    only.
    """
    outs, single = node_list(outputs, "outputs")
    if not outs:
        raise ValueError("outputs is empty: a plan needs at least one output node")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size < _MAX_SIZE:
        raise ValueError(f"batch_size must be an int in [1, 2**63), got {batch_size!r}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an ffnc.optim optimizer (SGD, Momentum, Adam, "
                        f"AdamW, RMSprop), got {type(optimizer).__name__}")
    if not isinstance(keep_grads, (bool, np.bool_)):
        raise TypeError(f"keep_grads must be a bool, got {type(keep_grads).__name__}")
    if optimizer is not None and loss is None:
        raise ValueError("an optimizer needs the loss it minimises: pass loss=")
    if loss is not None and (not isinstance(loss, Node) or loss.shape != ()):
        raise ValueError(f"loss must be a scalar graph Node, got {loss!r}")
    everything = topo_order(outs + ([loss] if loss is not None else []))
    if params is None:
        params = [n for n in everything if n.op == "parameter"]
    params = node_list(params, "params")[0]
    for p in params:
        if not isinstance(p, Node) or p.op != "parameter":
            raise TypeError(f"params must be parameter nodes, got {p!r}")
    if len({p.id for p in params}) != len(params):
        raise ValueError("params lists a parameter twice")
    dtype = _plan_dtype(everything + params)

    grads = grad(loss, params) if loss is not None and params else []
    roots = simplify(outs + list(grads))
    out_nodes, grad_nodes = roots[:len(outs)], roots[len(outs):]

    # Arenas for parameters (trained and frozen) and placeholders.
    values: dict[int, Value] = {}
    param_slots: dict[Node, Value] = {}
    offset = 0
    for p in params:
        size = shape_size(p.shape)
        param_slots[p] = Value(p.label, size, "params", offset)
        values[p.id] = param_slots[p]
        offset += size[0]
    total = offset
    update_instrs, optimizer_state, grad_norm = (
        _optimizer_instrs(optimizer, total, dtype) if optimizer is not None else ([], {}, None))
    state_top = len(optimizer_state) * total + (grad_norm is not None)
    # Parameters and their slots: the trained ones here, the frozen ones as the graph meets them.
    # Their values are copied in once the plan exists (see the end).
    param_leaves: list[tuple[Node, Value]] = [(p, param_slots[p]) for p in params]
    graph_nodes = topo_order(roots)
    if inputs is None:
        inputs = sorted((n for n in graph_nodes if n.op == "placeholder"), key=lambda n: n.id)
    inputs = node_list(inputs, "inputs")[0]
    program = Program()
    for slot, x in enumerate(inputs):
        if not isinstance(x, Node) or x.op != "placeholder":
            raise TypeError(f"inputs must be placeholder nodes, got {x!r}")
        if x.dtype not in (dtype, np.dtype(np.int64)):
            raise CompileError(f"placeholder {x.label} has dtype {x.dtype.name}; a "
                               f"{dtype.name} plan takes {dtype.name} data and int64 labels")
        values[x.id] = Value(x.label, shape_size(x.shape, x.label), "input", 0, slot)
    for n in graph_nodes:
        if n.op == "placeholder" and n.id not in values:
            raise CompileError(f"placeholder {n.label} is needed but not listed in inputs")
        if n.op == "parameter" and n.id not in values:
            if n.dtype != dtype:
                raise CompileError(f"parameter {n.label} is {n.dtype.name} in a "
                                   f"{dtype.name} plan")
            v = Value(n.label, shape_size(n.shape), "state", state_top)
            state_top += v.size[0]
            values[n.id] = v
            param_leaves.append((n, v))

    # Gradients are computed in place in the gradient arena where they can be.
    copies: list[tuple[Node, Value]] = []
    grad_slots: dict[Node, Value] = {}
    for p, g in zip(params if grad_nodes else [], grad_nodes, strict=True):
        slot = Value(f"grad({p.label})", param_slots[p].size, "grads", param_slots[p].offset)
        grad_slots[p] = slot
        if g.is_leaf or g.id in values:
            copies.append((g, slot))
        else:
            values[g.id] = slot

    lowering = Lowering(out_nodes + list(grad_nodes), values, dtype, program)
    lowering.run()
    for g, slot in copies:
        lowering._copy_into(g, slot, False)
    for v, _ in lowering.leaf_data:
        v.offset = state_top
        state_top += v.size[0]
    program.instrs.extend(update_instrs)

    out_values = []
    for node, orig in zip(out_nodes, outs, strict=True):
        v = values[node.id]
        if v.arena == "input":
            v = Value(f"copy({node.label})", v.size)
            lowering._copy_into(node, v, False)
        out_values.append((orig, v))
    in_velocity = []
    if fusable(optimizer) and not keep_grads and grad_slots:
        in_velocity = fuse_momentum(program.instrs, optimizer, list(params), grad_slots,
                                    optimizer_state["velocity"],
                                    {id(v) for _, v in out_values})
    memory = plan_activations(program.instrs, [v for _, v in out_values], int(batch_size))
    _check_arena_sizes(dtype, int(batch_size), (total, total, state_top, memory.arena))

    records = [(orig, v) for orig, v in out_values if orig.shape == ()]
    handle = _core.PlanHandle(
        dtype, int(batch_size), (total, total, state_top, memory.arena),
        [(x.label, x.dtype, x.shape) for x in inputs],
        [ins.as_tuple() for ins in program.instrs],
        [(_core.PLAN_ARENAS[v.arena], v.offset) for _, v in records])
    plan = Plan(handle, outputs=out_values, single=single, inputs=inputs, params=param_slots,
                instrs=program.instrs, memory=memory, records=[o for o, _ in records],
                optimizer=optimizer, optimizer_state=optimizer_state, grad_norm=grad_norm,
                grads_in_velocity=in_velocity)
    arenas = {name: handle.arena(name) for name in ("params", "state")}
    for v, data in lowering.leaf_data:
        arenas[v.arena][v.offset:v.offset + size_at(v.size, 1)] = np.asarray(data).reshape(-1)
    trained = set(params) if optimizer is not None else set()
    bound: list[tuple[Node, np.ndarray]] = []
    for node, v in param_leaves:
        slot = arenas[v.arena][v.offset:v.offset + size_at(v.size, 1)].reshape(node.shape)
        np.copyto(slot, node.value)
        if _hands_over(node.value, node in trained):
            view = slot.view()
            view.flags.writeable = False
            node.value = view  # the node's own copy, if nothing else holds it, is freed here
            bound.append((node, view))
    if bound:
        weakref.finalize(plan, _release, bound).atexit = False
    return plan


def _hands_over(value: np.ndarray, trained: bool) -> bool:
    """Whether a parameter whose value is `value` takes the plan's slot as its storage (see
    compile): its own private copy, always; a read-only view (an earlier plan's slot), when
    this plan trains it; a writable array is someone else's storage, never."""
    if value.flags.writeable:
        return False
    return owns_its_memory(value) or trained


def _release(bound: list[tuple[Node, np.ndarray]]) -> None:
    """At a plan's collection: the parameters still bound to it take a private copy of their
    values, so the plan's arenas can be freed."""
    for node, view in bound:
        if node.value is view:
            own = page_backed_copy(view)
            own.flags.writeable = False
            node.value = own



__all__ = ["compile"]
