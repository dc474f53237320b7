"""Momentum without a stored gradient: the weight-gradient GEMM adds into the velocity.

A momentum step is v = momentum v + g; p -= lr v. When g is the product of one GEMM (the
weight gradient of a dense layer, X^T dY), that GEMM computes v = momentum v + X^T dY itself
(beta = momentum: the "beta" flag, FFNC_PLAN_BETA), and the update is left with p -= lr v, an
SGD step whose "gradient" is the velocity. The gradient is never stored: a step makes one pass
less over memory the size of the parameter, and the gradient arena's pages for it are never
touched (the arena is calloc'd, so they take no memory).

Where the weight gradient comes from a dense backward instruction whose weights are the
parameter itself, and no instruction between it and the update reads or writes that parameter,
the step p -= lr v is taken there too (parameters up to STEP_MAX_BYTES), in the store of the
product's tiles while v is in registers ("step"; the SGD instruction over those parameters is
marked "stepped" and skipped in a whole step, see FFNC_PLAN_STEP): one pass less again, and
the parameter is read and written while the product is computed. A phased step
(compute_gradients, then apply_update) takes the same step in the SGD instruction instead: the
same operations, the same bits.

Rounding: the GEMM adds the momentum term to its first block of K (the batch rows), then the
products of the other blocks, so the velocity equals the unfused one up to the order of those
additions (bit for bit when the batch fits one block of K: 320 rows in float32, 256 in
float64).
"""

from __future__ import annotations

from ffnc.compiler.program import Instr, Value
from ffnc.graph.ir import Node
from ffnc.optim import Momentum, Optimizer

# Parameters smaller than this (elements) keep their gradient: below it the extra update
# instruction a fused parameter needs costs about what the saved pass over it does.
FUSE_MIN_SIZE = 4096

# Parameters larger than this (bytes) keep the separate SGD instruction. The step in the store
# reads and writes the parameter a tile at a time, a few short rows far apart; a parameter
# that lives in L3 or memory is streamed faster by the SGD instruction's one pass. Measured on
# Zen 3 (one thread, f32, a whole step against the same plan in two phases, which takes the
# step in the SGD instruction; best of rounds): 784-512-512-10 batch 128 (1.6 and 1 MiB
# weights) 1.01-1.06x; 700-700-700-10 (1.9 MiB) 0.94-1.08x; 1024-1024-1024-10 (4 MiB)
# 0.93-0.97x; 2048-2048-2048-10 0.91-0.93x; 1024-4096-4096-10 batch 256 0.87-0.94x.
STEP_MAX_BYTES = 2 << 20

# Where each GEMM-like instruction writes the product the beta flag applies to.
_PRODUCT_REF = {"dense_backward": 6, "gemm": 2}


def fusable(opt: Optimizer | None) -> bool:
    """Whether opt's update can take its gradients from the velocity: heavy-ball momentum
    without weight decay (which adds lr wd p to the step), Nesterov's variant (which needs g
    itself) or clipping (which needs every gradient before any update)."""
    return (isinstance(opt, Momentum) and not opt.nesterov and opt.weight_decay == 0
            and opt.clip_norm is None and opt.momentum > 0)


def fuse_momentum(instrs: list[Instr], opt: Momentum, params: list[Node],
                  grad_slots: dict[Node, Value], velocity: Value, outputs: set[int]) -> list[Node]:
    """Rewrites `instrs` (holding the one momentum instruction over the whole arenas) so
    that every parameter of at least FUSE_MIN_SIZE elements whose gradient one GEMM or dense
    backward instruction writes, and nothing else reads, takes it into its velocity; the
    update becomes one instruction per run of fused (SGD from the velocity) or unfused
    (momentum) parameters, in arena order. `outputs`: ids of the Values the plan returns.
    Returns the fused parameters, whose gradient the plan no longer stores."""
    at = next(i for i, ins in enumerate(instrs) if ins.opcode == "momentum")
    update = instrs[at]
    params_arena, grads_arena, _ = update.values()
    users: dict[int, list[tuple[Instr, int]]] = {}
    for ins in instrs[:at]:
        for i, ref in enumerate(ins.refs):
            if ref is not None:
                users.setdefault(id(ref[0]), []).append((ins, i))

    position = {id(ins): i for i, ins in enumerate(instrs[:at])}
    fused: list[Node] = []
    how: dict[int, str] = {}  # parameter id -> "velocity" or "stepped"
    for p in params:
        slot = grad_slots[p]
        uses = users.get(id(slot), [])
        if slot.size[0] < FUSE_MIN_SIZE or len(uses) != 1 or id(slot) in outputs:
            continue
        ins, i = uses[0]
        if _PRODUCT_REF.get(ins.opcode) != i or ins.refs[i][1] != 0 or "accumulate" in ins.flags:
            continue
        ins.refs[i] = (Value(f"velocity({p.label})", slot.size, "state",
                             velocity.offset + slot.offset), 0)
        ins.flags = ins.flags | {"beta"}
        ins.hyper = (opt.momentum,)
        how[p.id] = "velocity"
        region = (slot.offset, slot.offset + slot.size[0])
        if (p.value.nbytes <= STEP_MAX_BYTES
                and _steppable(ins, region, instrs[position[id(ins)] + 1:at])):
            if ins.refs[1] is None:  # a first layer, which computes no diff_src
                ins.refs[1] = (Value(p.label, slot.size, "params", slot.offset), 0)
            ins.flags = ins.flags | {"step"}
            ins.hyper = (opt.momentum, opt.lr)
            how[p.id] = "stepped"
        fused.append(p)
    if not fused:
        return fused

    runs: list[tuple[str, int, int]] = []  # (how, offset, size) in arena order
    for p in params:
        slot = grad_slots[p]
        kind = how.get(p.id, "momentum")
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1], runs[-1][2] + slot.size[0])
        else:
            runs.append((kind, slot.offset, slot.size[0]))
    lr = opt.lr
    updates = []
    for kind, offset, size in runs:
        if kind == "momentum":
            updates.append(Instr("momentum", [(params_arena, offset), (grads_arena, offset),
                                              (velocity, offset)],
                                 n=(size, 0), hyper=update.hyper, note="momentum"))
        else:
            stepped = kind == "stepped"
            updates.append(Instr("sgd", [(params_arena, offset), (velocity, offset)],
                                 n=(size, 0), hyper=(lr, 0.0),
                                 flags=frozenset({"stepped"} if stepped else ()),
                                 note="momentum (stepped in the backward GEMMs)" if stepped
                                 else "momentum (velocity from the backward GEMMs)"))
    instrs[at:at + 1] = updates
    return fused


def _param_span(ref) -> tuple[float, float] | None:
    """The elements of the parameter arena a ref may touch: from its start to the end of its
    Value (a kernel stays inside its operand), or everything when the offset is unknown."""
    if ref is None or ref[0].arena != "params":
        return None
    value, extra = ref
    if value.offset is None:
        return (0, float("inf"))
    return (value.offset + extra, value.offset + value.size[0])


def _steppable(ins: Instr, region: tuple[int, int], later: list[Instr]) -> bool:
    """Whether dense backward `ins` can take the SGD step of the parameter at `region` (its
    weights, refs[1]): the weights are that parameter exactly, no other operand of `ins` is a
    parameter, and no instruction after it and before the update touches the region, so the
    parameter changes at no point another instruction would see it. Without a weights ref
    (no diff_src) the caller adds one."""
    if ins.opcode != "dense_backward":
        return False
    if ins.refs[1] is not None:
        value, extra = ins.refs[1]
        if value.arena != "params" or value.offset is None or value.offset + extra != region[0]:
            return False
    if any(_param_span(r) is not None for i, r in enumerate(ins.refs) if i != 1):
        return False
    for other in later:
        for r in other.refs:
            span = _param_span(r)
            if span is not None and span[0] < region[1] and region[0] < span[1]:
                return False
    return True
