"""Plan: a compiled step, run by one call into C with the GIL released."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ffnc import _core
from ffnc.compiler.memory import MemoryReport
from ffnc.compiler.program import Instr, Value, size_at
from ffnc.graph.ir import Node, resolve_shape


class Plan:
    """A compiled step. ``run(feed)`` executes it and returns the requested outputs.

    ``params`` and ``grads`` map each trained parameter node to a zero-copy view of its slice
    of the parameter or gradient arena (writing a view changes the plan's parameter); the
    views keep the plan's memory alive. ``memory`` reports the activation arena against the
    naive one-buffer-per-value size, in elements.
    """

    def __init__(self, handle: _core.PlanHandle, *, outputs: list[tuple[Node, Value]],
                 single: bool, inputs: list[Node], params: dict[Node, Value],
                 instrs: list[Instr], memory: MemoryReport, records: list[Node]) -> None:
        self._handle = handle
        self._outputs = outputs
        self._single = single
        self.inputs = list(inputs)
        self._by_name = {n.name: n for n in inputs if n.name is not None}
        # A feed keyed by exactly the inputs' names (the common case) skips the general mapping.
        names = [n.name for n in inputs]
        self._names = names if None not in names and len(set(names)) == len(names) else None
        self._arenas = {a: handle.arena(a) for a in ("params", "grads", "state", "acts")}
        self.params = {p: self._view("params", v, p.shape) for p, v in params.items()}
        self.grads = {p: self._view("grads", v, p.shape) for p, v in params.items()}
        # Outputs whose size does not depend on the batch (a loss, a metric) are returned from a
        # view made once; the others are sliced per run.
        self._fixed_views = [
            self._view(value.arena, value, node.shape) if value.size[1] == 0 else None
            for node, value in outputs
        ]
        self.instructions = list(instrs)
        self.memory = memory
        self.records = list(records)

    def _view(self, arena: str, value: Value, shape: tuple) -> np.ndarray:
        flat = self._arenas[arena]
        return flat[value.offset:value.offset + size_at(value.size, 1)].reshape(shape)

    @property
    def dtype(self) -> np.dtype:
        return self._handle.dtype

    @property
    def max_batch(self) -> int:
        """The largest batch (rows) a run may take."""
        return self._handle.max_batch

    @property
    def step(self) -> int:
        """Steps run so far (Adam's bias correction counts from it); settable to resume."""
        return self._handle.step

    @step.setter
    def step(self, value: int) -> None:
        self._handle.step = value

    @property
    def param_arena(self) -> np.ndarray:
        """All trained parameters, one flat array (the optimizer's single buffer)."""
        return self._arenas["params"]

    @property
    def grad_arena(self) -> np.ndarray:
        return self._arenas["grads"]

    def _arrays(self, feed: Mapping[Any, np.ndarray]) -> list[np.ndarray]:
        if self._names is not None and type(feed) is dict and len(feed) == len(self._names):
            try:
                return [feed[name] for name in self._names]
            except KeyError:
                pass  # keyed otherwise, or wrongly: the general path says which
        if not isinstance(feed, Mapping):
            raise TypeError(f"feed must be a mapping from placeholders (or their names) to "
                            f"arrays, got {type(feed).__name__}")
        by_id: dict[int, np.ndarray] = {}
        for key, value in feed.items():
            node = self._by_name.get(key) if isinstance(key, str) else key
            if not isinstance(node, Node) or all(node is not x for x in self.inputs):
                raise ValueError(f"feed key {key!r} is not an input of this plan; inputs: "
                                 f"{[x.label for x in self.inputs]}")
            by_id[node.id] = value
        missing = [x.label for x in self.inputs if x.id not in by_id]
        if missing:
            raise ValueError(f"feed is missing the plan inputs {missing}")
        return [by_id[x.id] for x in self.inputs]

    def run(self, feed: Mapping[Any, np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """One step over `feed` (placeholder node or name -> array): forward, backward and
        the optimizer update when the plan has one. Returns copies of the outputs."""
        batch = self._handle.run(self._arrays(feed))
        results = []
        for (node, value), fixed in zip(self._outputs, self._fixed_views, strict=True):
            if fixed is not None:
                results.append(fixed.copy())
                continue
            flat = self._arenas[value.arena]
            n = size_at(value.size, batch)
            results.append(flat[value.offset:value.offset + n]
                           .reshape(resolve_shape(node.shape, batch)).copy())
        return results[0] if self._single else results

    def run_epoch(self, feed: Mapping[Any, np.ndarray], batch_size: int) -> np.ndarray:
        """Steps over whole-dataset arrays in minibatches of batch_size rows, in order (the
        last may be smaller), in one call into C. Returns the scalar outputs after each
        step, shape (steps, number of scalar outputs) (see ``records``)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        return self._handle.run_epoch(self._arrays(feed), int(batch_size))

    def describe(self) -> str:
        """The instruction list, one line each, and the memory report."""
        lines = [f"{i:3d} {ins.opcode:<15s} {ins.note}" for i, ins in enumerate(self.instructions)]
        m = self.memory
        lines.append(f"activation arena: {m.arena} elements for {m.values} values "
                     f"(one buffer each: {m.naive})")
        return "\n".join(lines)

