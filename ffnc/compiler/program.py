"""The compiler's intermediate form: values (slices of the plan's arenas or input slots) and
instructions over them, one per C instruction (ffnc_plan_instr in csrc/include/ffnc.h).

Sizes are pairs (fixed, per_batch): fixed + per_batch * batch elements, batch being the rows
of the run, so one plan serves every batch size up to the one it was compiled for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ffnc import _core

Size = tuple[int, int]
ZERO: Size = (0, 0)
ONE: Size = (1, 0)


class CompileError(ValueError):
    """A graph the plan compiler cannot compile; the message names the node and the reason."""


def size_at(size: Size, batch: int) -> int:
    return size[0] + size[1] * batch


def size_product(a: Size, b: Size, what: str) -> Size:
    """a * b, which must stay affine in the batch (the batch may appear in one factor only)."""
    if a[1] and b[1]:
        raise CompileError(f"{what}: the batch dimension appears twice in one size (a "
                           f"batch x batch intermediate), which plans do not support")
    return (a[0] * b[0], a[0] * b[1] + a[1] * b[0])


@dataclass(eq=False)
class Value:
    """A buffer: `size` elements in `arena` at `offset` (assigned by the memory planner for
    activations), or input slot `slot`."""

    name: str
    size: Size
    arena: str = "acts"
    offset: int | None = None
    slot: int = 0

    def __repr__(self) -> str:
        return f"<Value {self.name} {self.arena}@{self.offset} {self.size}>"


@dataclass(eq=False)
class Instr:
    """One plan instruction. refs: operands in the C order, (Value, element offset) or None."""

    opcode: str
    refs: list
    m: Size = ZERO
    n: Size = ZERO
    k: Size = ZERO
    subop: int = 0
    flags: frozenset = frozenset()
    alpha: float = 1.0
    hyper: tuple = ()
    strides: tuple = ()
    note: str = ""

    def values(self) -> list[Value]:
        return [r[0] for r in self.refs if r is not None]

    def as_tuple(self) -> tuple:
        """The form _core.PlanHandle packs into a C struct."""
        flag_bits = 0
        for f in self.flags:
            flag_bits |= _core.PLAN_FLAGS[f]
        refs = []
        for r in self.refs:
            if r is None:
                refs.append((_core.PLAN_ARENAS["none"], 0, 0))
                continue
            value, extra = r
            if value.offset is None:
                raise RuntimeError(f"value {value.name} was never placed in an arena")
            refs.append((_core.PLAN_ARENAS[value.arena], value.slot, value.offset + extra))
        return (_core.PLAN_OPCODES[self.opcode], int(self.subop), flag_bits,
                (tuple(self.m), tuple(self.n), tuple(self.k)), float(self.alpha),
                tuple(float(h) for h in self.hyper), tuple(int(s) for s in self.strides), refs)


@dataclass
class Program:
    """What lowering produces: the instruction list and the values it touches."""

    instrs: list[Instr] = field(default_factory=list)
    inputs: list = field(default_factory=list)  # (name, dtype, shape, Value) per input slot
