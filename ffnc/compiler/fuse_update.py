"""Momentum without a stored gradient: the weight-gradient GEMM adds into the velocity.

A momentum step is v = momentum v + g; p -= lr v. When g is the product of one GEMM (the
weight gradient of a dense layer, X^T dY), that GEMM computes v = momentum v + X^T dY itself
(beta = momentum: the "beta" flag, FFNC_PLAN_BETA), and the update is left with p -= lr v, an
SGD step whose "gradient" is the velocity. The gradient is never stored: a step makes one pass
less over memory the size of the parameter, and the gradient arena's pages for it are never
touched (the arena is calloc'd, so they take no memory).

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

    fused: list[Node] = []
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
        fused.append(p)
    if not fused:
        return fused

    runs: list[tuple[bool, int, int]] = []  # (fused, offset, size) in arena order
    fused_ids = {p.id for p in fused}
    for p in params:
        slot = grad_slots[p]
        on = p.id in fused_ids
        if runs and runs[-1][0] == on:
            runs[-1] = (on, runs[-1][1], runs[-1][2] + slot.size[0])
        else:
            runs.append((on, slot.offset, slot.size[0]))
    lr = opt.lr
    updates = []
    for on, offset, size in runs:
        if on:
            updates.append(Instr("sgd", [(params_arena, offset), (velocity, offset)],
                                 n=(size, 0), hyper=(lr, 0.0),
                                 note="momentum (velocity from the backward GEMMs)"))
        else:
            updates.append(Instr("momentum", [(params_arena, offset), (grads_arena, offset),
                                              (velocity, offset)],
                                 n=(size, 0), hyper=update.hyper, note="momentum"))
    instrs[at:at + 1] = updates
    return fused
