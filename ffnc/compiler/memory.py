"""Memory planning: every intermediate gets a slice of one activation arena, by liveness.

A value lives from the first instruction that touches it (its producer) to the last one; the
outputs a run returns live to the end. Slices are assigned in instruction order, first fit
in a free list, and a value freed by an instruction is reusable only from the next one on, so
no instruction ever finds an output sharing memory with one of its inputs, with the two
exceptions the kernel allows: a dense backward's activation-derivative product (diff_pre)
overwrites its incoming gradient (diff_dst), and its input gradient (diff_src) the saved
activation its first pass reads, each when the value overwritten is read by nothing after it.
Sizes are taken at the largest batch the plan serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffnc.compiler.program import Instr, Value, size_at

ALIGN = 16  # elements: 64 bytes in float32, so each slice starts on a cache line


@dataclass(frozen=True)
class MemoryReport:
    """Activation memory in elements: the arena, and what one buffer per value would take."""

    arena: int
    naive: int
    values: int


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class _FreeList:
    def __init__(self) -> None:
        self.holes: list[tuple[int, int]] = []  # (offset, size), sorted, coalesced
        self.top = 0

    def take(self, size: int) -> int:
        for i, (off, hole) in enumerate(self.holes):
            if hole >= size:
                if hole == size:
                    del self.holes[i]
                else:
                    self.holes[i] = (off + size, hole - size)
                return off
        # grow the arena, reusing a hole that ends at the top
        if self.holes and self.holes[-1][0] + self.holes[-1][1] == self.top:
            off = self.holes.pop()[0]
        else:
            off = self.top
        self.top = off + size
        return off

    def give(self, off: int, size: int) -> None:
        self.holes.append((off, size))
        self.holes.sort()
        merged: list[tuple[int, int]] = []
        for o, s in self.holes:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.holes = merged


def plan_activations(instrs: list[Instr], keep: list[Value], max_batch: int) -> MemoryReport:
    """Assigns offsets to the activation values of `instrs`; `keep` live to the end."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    by_id: dict[int, Value] = {}
    for i, instr in enumerate(instrs):
        for v in instr.values():
            if v.arena != "acts":
                continue
            by_id[id(v)] = v
            first.setdefault(id(v), i)
            last[id(v)] = i
    end = len(instrs)
    for v in keep:
        if v.arena == "acts" and id(v) in last:
            last[id(v)] = end
    in_place = _in_place(instrs, first, last)
    owner: dict[int, Value] = {}  # an in-place value -> the value whose slice it uses
    for new, old in in_place:  # new takes old's slice, which lives on as long as new does
        root = owner.get(id(old), old)
        owner[id(new)] = root
        last[id(root)] = max(last[id(root)], last.pop(id(new)))
        del by_id[id(new)], first[id(new)]
    born: dict[int, list[Value]] = {}
    dies: dict[int, list[Value]] = {}
    for key, v in by_id.items():
        born.setdefault(first[key], []).append(v)
        dies.setdefault(last[key], []).append(v)
    free = _FreeList()
    naive = 0
    for i in range(end + 1):
        for v in born.get(i, []):
            size = _aligned(max(size_at(v.size, max_batch), 1))
            naive += size
            v.offset = free.take(size)
        for v in dies.get(i, []):
            free.give(v.offset, _aligned(max(size_at(v.size, max_batch), 1)))
    for new, _ in in_place:
        new.offset = owner[id(new)].offset
        naive += _aligned(max(size_at(new.size, max_batch), 1))
    return MemoryReport(arena=free.top, naive=naive, values=len(by_id) + len(in_place))


# (written, overwritten) operands of a dense backward: diff_pre over diff_dst, diff_src over
# saved. ffnc_dense_backward first computes diff_pre in one pass over diff_dst and saved,
# element by element, and only then the products that write diff_weights and diff_src.
_OVERWRITES = ((4, 3), (5, 2))


def _in_place(instrs: list[Instr], first: dict[int, int],
              last: dict[int, int]) -> list[tuple[Value, Value]]:
    """(new, old) pairs of values where a dense backward's output `new` is born and the
    operand `old` it may overwrite, of the same size, dies: new takes old's slice."""
    pairs = []
    taken: set[int] = set()  # each old value gives its slice to one new value
    for i, instr in enumerate(instrs):
        if instr.opcode != "dense_backward":
            continue
        for w, r in _OVERWRITES:
            if instr.refs[w] is None or instr.refs[r] is None:
                continue
            (new, new_extra), (old, old_extra) = instr.refs[w], instr.refs[r]
            if new.arena == old.arena == "acts" and new_extra == old_extra == 0 and \
                    new is not old and new.size == old.size and first.get(id(new)) == i and \
                    last.get(id(old)) == i and id(old) not in taken:
                taken.add(id(old))
                pairs.append((new, old))
    return pairs
