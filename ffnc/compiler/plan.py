"""Plan: a compiled step, run by one call into C with the GIL released."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ffnc import _core
from ffnc.compiler.memory import MemoryReport
from ffnc.compiler.program import Instr, Value, size_at
from ffnc.graph.ir import Node, resolve_shape

PlanInterrupted = _core.PlanInterrupted


@dataclass(frozen=True)
class PlanProfile:
    """Where a plan's step spends its time (``Plan.profile``): per instruction, in the order
    they run, the mean wall-clock seconds per step over ``steps`` steps of ``batch`` rows, and
    the floating-point operations of the matrix products it computes (``flops``: 2 m n k per
    product, 0 for the instructions that compute none), from which ``gflops`` gives the rate
    each one reached, to hold against the machine's peak. ``str()`` gives a table with each
    instruction's share of the step."""

    opcodes: tuple[str, ...]
    notes: tuple[str, ...]
    seconds: np.ndarray
    steps: int
    batch: int
    flops: tuple[float, ...]

    @property
    def total(self) -> float:
        """Seconds per step, summed over the instructions."""
        return float(self.seconds.sum())

    @property
    def gflops(self) -> np.ndarray:
        """GFLOP/s of each instruction's matrix products (NaN where it computes none, or
        where the clock saw no time)."""
        flops = np.asarray(self.flops, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((flops > 0) & (self.seconds > 0), flops / self.seconds / 1e9, np.nan)

    def __str__(self) -> str:
        total = self.total
        rates = self.gflops
        lines = [f"{'#':>3s} {'instruction':<15s} {'us/step':>11s} {'share':>6s} "
                 f"{'GFLOP/s':>8s}  value"]
        for i, (op, note, t) in enumerate(zip(self.opcodes, self.notes, self.seconds,
                                              strict=True)):
            rate = "" if np.isnan(rates[i]) else f"{rates[i]:.1f}"
            lines.append(f"{i:3d} {op:<15s} {t * 1e6:11.2f} {t / total if total else 0:6.1%} "
                         f"{rate:>8s}  {note}")
        flops = sum(self.flops)
        overall = f", {flops / total / 1e9:.1f} GFLOP/s" if flops and total else ""
        lines.append(f"    {'step':<15s} {total * 1e6:11.2f} (mean of {self.steps} steps of "
                     f"{self.batch} rows{overall})")
        return "\n".join(lines)


def product_flops(ins: Instr, batch: int) -> float:
    """Floating-point operations of the matrix products one run of `ins` computes over
    `batch` rows: 2 m n k for a GEMM or a dense layer's forward; for a dense backward, 2 m n k
    for each of diff_src and diff_weights that it writes (operands 5 and 6); 0 for every other
    instruction (element-wise and row-wise work, counted in time only)."""
    if ins.opcode not in ("dense_forward", "dense_backward", "gemm"):
        return 0.0
    m, n, k = (size_at(size, batch) for size in (ins.m, ins.n, ins.k))
    products = 1
    if ins.opcode == "dense_backward":
        products = (ins.refs[5] is not None) + (ins.refs[6] is not None)
    return 2.0 * m * n * k * products


class Plan:
    """A compiled step. ``run(feed)`` executes it and returns the requested outputs.

    ``params`` and ``grads`` map each trained parameter node to a zero-copy view of its slice
    of the parameter or gradient arena (writing a view changes the plan's parameter); the
    views keep the plan's memory alive. The parameters in ``grads_in_velocity`` have no
    ``grads`` entry: their momentum update takes the gradient straight from its GEMM into the
    velocity (see compile's keep_grads); their slice of ``grad_arena`` stays zero. A
    parameter the plan holds (see compile) reads the same memory: its node's ``value`` is a
    read-only view of that slice. ``memory`` reports the activation arena against the naive
    one-buffer-per-value size, in elements.

    A training plan also has its ``optimizer`` (an ffnc.optim optimizer, or None), a settable
    learning rate ``lr``, the ``step`` counter, ``optimizer_state()`` (zero-copy views of the
    optimizer's buffers) and, with gradient clipping, ``grad_norm``. Parameters, optimizer
    state and step are everything an update reads: restoring them resumes training
    bit-identically.

    Threads: a plan runs one call at a time. ``run``, ``run_epoch``, ``compute_gradients``,
    ``apply_update`` and the ``lr`` and ``step`` setters called at once from several threads
    wait for each other (the GIL is released while they wait and while they run), so each
    step runs whole and returns its own outputs, as if the calls had been made one after the
    other in some order. Between ``compute_gradients`` and ``apply_update`` another thread's
    call may run: give each thread its own plan for that. Reading or writing the arena views
    while another thread runs the plan is a data race (the values are unspecified, the memory
    stays valid). ``interrupt()`` does not wait.
    """

    def __init__(self, handle: _core.PlanHandle, *, outputs: list[tuple[Node, Value]],
                 single: bool, inputs: list[Node], params: dict[Node, Value],
                 instrs: list[Instr], memory: MemoryReport, records: list[Node],
                 optimizer: Any = None, optimizer_state: dict[str, Value] | None = None,
                 grad_norm: Value | None = None,
                 grads_in_velocity: list[Node] | None = None) -> None:
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
        self.grads_in_velocity = list(grads_in_velocity or [])
        kept = set(params) - set(self.grads_in_velocity)
        self.grads = {p: self._view("grads", v, p.shape) for p, v in params.items() if p in kept}
        # Outputs whose size does not depend on the batch (a loss, a metric) are returned from a
        # view made once; the others are sliced per run.
        self._fixed_views = [
            self._view(value.arena, value, node.shape) if value.size[1] == 0 else None
            for node, value in outputs
        ]
        # Bool and integer outputs (a comparison, an argmax) are stored exactly in the plan's
        # float dtype and converted back to the node's dtype on the way out.
        self._cast_to = [node.dtype if node.dtype != handle.dtype else None
                         for node, _ in outputs]
        # The common case (a loss, metrics) takes the shortest path through run().
        self._all_fixed = all(f is not None for f in self._fixed_views) \
            and all(c is None for c in self._cast_to)
        # A training step's loss: run() copies it out in the same C-level call as the step.
        self._single_view = self._fixed_views[0] if self._all_fixed and single else None
        self._slot_names = tuple(names) if self._names is not None else None
        self.instructions = list(instrs)
        self.memory = memory
        self.records = list(records)
        self.optimizer = optimizer
        self._optimizer_state = {name: self._view("state", v, (size_at(v.size, 1),))
                                 for name, v in (optimizer_state or {}).items()}
        self._grad_norm = self._view("state", grad_norm, (1,)) if grad_norm is not None else None

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
        with self._handle:
            self._handle.step = value

    @property
    def lr(self) -> float:
        """The learning rate of the optimizer's update (the optimizer's lr until set).
        Settable between runs (a finite number >= 0); ValueError for a plan without an
        optimizer. ``run_epoch(..., lr_scale=...)`` multiplies it per step without changing
        it."""
        return self._handle.lr

    @lr.setter
    def lr(self, value: float) -> None:
        with self._handle:
            self._handle.lr = value

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """The optimizer's state buffers by name ("velocity"; "m", "v"; "square_avg",
        "momentum_buffer", "grad_avg"; none for SGD), each a writable zero-copy 1-D view the
        size of the parameter arena, in its layout. Writing them (with ``step``) restores a
        checkpoint."""
        return dict(self._optimizer_state)

    @property
    def grad_norm(self) -> float | None:
        """The global L2 norm of the gradients before clipping, at the last step (0.0 before
        the first; in the plan's dtype); None for a plan without gradient clipping."""
        return None if self._grad_norm is None else float(self._grad_norm[0])

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
        handle = self._handle
        if self._single_view is not None and self._slot_names is not None:
            out = handle.run_named_copy(feed, self._slot_names, self._single_view)
            if out is not None:
                return out
        with handle:  # one call into the plan at a time (see the class docstring)
            batch = None
            if self._slot_names is not None:
                batch = handle.run_named(feed, self._slot_names)
            if batch is None:
                batch = handle.run(self._arrays(feed))
            return self._results(batch)

    def _results(self, batch: int) -> np.ndarray | list[np.ndarray]:
        """Copies of the outputs of the step just run over `batch` rows."""
        if self._all_fixed:
            if self._single:
                return self._fixed_views[0].copy()
            return [view.copy() for view in self._fixed_views]
        results = []
        for (node, value), fixed, cast in zip(self._outputs, self._fixed_views, self._cast_to,
                                              strict=True):
            if fixed is None:
                flat = self._arenas[value.arena]
                n = size_at(value.size, batch)
                fixed = flat[value.offset:value.offset + n].reshape(resolve_shape(node.shape,
                                                                                  batch))
            results.append(fixed.copy() if cast is None else fixed.astype(cast))
        return results[0] if self._single else results

    def run_epoch(self, feed: Mapping[Any, np.ndarray], batch_size: int,
                  lr_scale: np.ndarray | None = None) -> np.ndarray:
        """Steps over whole-dataset arrays in minibatches of batch_size rows, in order (the
        last may be smaller), in one call into C. Returns the scalar outputs after each
        step, shape (steps, number of scalar outputs) (see ``records``).

        lr_scale: None, or a float64 array of ceil(rows / batch_size) learning-rate
        multipliers, finite and >= 0: step s updates with ``lr * lr_scale[s]`` (e.g.
        ``schedule.multipliers(plan.step, steps)`` from ffnc.optim); ``lr`` itself is
        unchanged. Checked before any step runs.

        Ctrl-C (SIGINT, in the main thread under Python's default handler) or ``interrupt()``
        stops the epoch after the current step with PlanInterrupted (a KeyboardInterrupt)
        carrying the steps completed and their records; the plan is exactly as after those
        steps and can run on."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if not 1 <= batch_size <= self.max_batch:
            raise ValueError(f"batch_size must be in [1, {self.max_batch}] (the plan's maximum), "
                             f"got {batch_size}")
        with self._handle:
            return self._handle.run_epoch(self._arrays(feed), int(batch_size), lr_scale)

    def interrupt(self) -> None:
        """Asks the ``run_epoch`` running on this plan in another thread to stop after its
        current step (it raises PlanInterrupted); made while no epoch runs, the request stops
        the next one before its first step. Thread-safe; what Ctrl-C does to an epoch."""
        self._handle.interrupt()

    # ---- a step in two phases, for work on the gradients between them (ffnc.distributed
    # averages them across processes)

    def compute_gradients(self, feed: Mapping[Any, np.ndarray]) -> int:
        """The first phase of a step over `feed` (as run's): forward and backward, every
        instruction before the update, leaving the gradients in ``grad_arena`` (unclipped).
        Change them there if you will, then call ``apply_update()``: the two calls do what
        ``run(feed)`` does, bit for bit. Returns the batch size (rows). The gradients of
        ``grads_in_velocity`` are already in the velocity at that point, not in
        ``grad_arena``: compile with keep_grads=True to work on every gradient."""
        with self._handle:
            return self._handle.compute_gradients(self._arrays(feed))

    def apply_update(self) -> np.ndarray | list[np.ndarray]:
        """The second phase of the step ``compute_gradients`` began: gradient clipping and the
        optimizer update from ``grad_arena`` as it is now (then any instruction after them);
        counts the step. Returns the outputs, as ``run`` does. A RuntimeError without a
        preceding ``compute_gradients``."""
        with self._handle:
            return self._results(self._handle.apply_update())

    @property
    def outputs(self) -> list[Node]:
        """The nodes each run returns, in order (the scalar ones are also ``records``)."""
        return [node for node, _ in self._outputs]

    @property
    def update_begin(self) -> int:
        """Index in ``instructions`` of the first instruction of the update phase (the first
        that clips or applies the gradients); ``len(instructions)`` when there is none."""
        return self._handle.update_begin

    def profile(self, feed: Mapping[Any, np.ndarray], steps: int = 10) -> PlanProfile:
        """Runs ``steps`` steps over ``feed`` as ``run`` does (they train: parameters,
        optimizer state and ``step`` advance, and the results are the same bits) and times
        each instruction. Each timing includes the clock's own cost, some tens of
        nanoseconds, which matters only for the smallest instructions."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise TypeError(f"steps must be an int, got {type(steps).__name__}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        seconds = np.zeros(len(self.instructions))
        arrays = self._arrays(feed)
        batch = 0
        for _ in range(int(steps)):
            with self._handle:
                batch = self._handle.run_timed(arrays, seconds)
        return PlanProfile(opcodes=tuple(ins.opcode for ins in self.instructions),
                           notes=tuple(ins.note for ins in self.instructions),
                           seconds=seconds / steps, steps=int(steps), batch=int(batch),
                           flops=tuple(product_flops(ins, batch) for ins in self.instructions))

    def describe(self) -> str:
        """The instruction list, one line each, and the memory report."""
        lines = [f"{i:3d} {ins.opcode:<15s} {ins.note}" for i, ins in enumerate(self.instructions)]
        m = self.memory
        lines.append(f"activation arena: {m.arena} elements for {m.values} values "
                     f"(one buffer each: {m.naive})")
        return "\n".join(lines)

