"""Data-parallel training over MPI: the same job on several processes and machines.

    mpiexec -n 4 ffnc train --distributed ...                  # the command line
    mpiexec -n 4 python3 train.py                              # a script calling
    model.fit(x, y, batch_size=256, distributed=True)          # ... fit

Every process (an MPI rank) holds the whole training set and the same model; rank 0's weights
and optimizer state are broadcast to the others at the start. Each global minibatch of
``batch_size`` rows (in the same shuffled order on every rank: the shuffle is seeded) is cut
into one contiguous shard per rank; each rank computes the gradient of its shard's mean loss,
and ONE in-place allreduce over the plan's gradient arena, each rank's gradients weighted by
its share of the rows, gives every rank the gradient of the mean loss over the whole global
batch. Every rank then applies the same update (gradient clipping sees the combined
gradients), so the ranks stay bit-identical, and the run follows the single-process run with
the same ``batch_size`` up to rounding (the sums are taken in another order).

So ``batch_size`` is the GLOBAL batch and the learning rate keeps its meaning: more ranks make
each step faster, not different. To keep each rank's share fixed as you add ranks, grow
``batch_size`` with the number of ranks and, for SGD-type optimizers, the learning rate with
it (the linear scaling rule; warm the rate up over the first epochs, e.g. with
ffnc.optim.LinearWarmup).

Metrics are reduced across ranks (row-weighted means); only rank 0 prints progress and writes
checkpoints. Each rank runs ``cores // ranks on the machine`` threads unless OMP_NUM_THREADS or
an explicit thread count says otherwise. A rank that raises prints its error and aborts the
whole job (MPI_Abort), so the others never wait forever in a collective.

mpi4py and an MPI library are optional dependencies: ``pip install "ffnc[mpi]"``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ffnc._threads import MAX_THREADS
from ffnc._validate import count

INSTALL_HINT = 'pip install "ffnc[mpi]"'

# The environment variables MPI launchers set on the processes they start.
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK",
                       "MPI_LOCALRANKID", "SLURM_PROCID")


def _mpi() -> Any:
    """The mpi4py MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"ffnc.distributed needs mpi4py and an MPI library; install them "
                          f"with: {INSTALL_HINT}") from exc
    except (RuntimeError, OSError) as exc:  # mpi4py found, the MPI library not loadable
        raise ImportError(f"ffnc.distributed: mpi4py cannot load an MPI library ({exc}); "
                          f"install one with: {INSTALL_HINT}") from exc
    return MPI


def available() -> bool:
    """Whether mpi4py and an MPI library can be imported."""
    try:
        _mpi()
    except ImportError:
        return False
    return True


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec, mpirun, srun)."""
    return any(v in os.environ for v in _LAUNCHER_VARIABLES)


def _abort(comm: Any, text: str) -> None:
    """Prints `text` and stops every rank of `comm`'s job; does not return."""
    sys.stdout.flush()
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()
    # The launcher forwards our stderr through its proxy; MPI_Abort makes it kill the job at
    # once, which can drop the message still in the pipe. Give the proxy a moment to forward.
    time.sleep(0.5)
    comm.Abort(1)
    os._exit(1)  # MPI_Abort asks the launcher to kill the job; never run on meanwhile


def _install_excepthook(group: DataParallel) -> None:
    """An exception that nothing catches aborts the whole job instead of leaving the other
    ranks waiting in a collective (the interpreter's exit would wait in MPI_Finalize)."""
    previous = sys.excepthook
    if getattr(previous, "_ffnc_abort", False):
        return

    def hook(exc_type: type, exc: BaseException, tb: Any) -> None:
        previous(exc_type, exc, tb)
        _abort(group.comm, f"ffnc.distributed: rank {group.rank} of {group.size} stopped on an "
                           f"uncaught {exc_type.__name__}; aborting all {group.size} ranks")

    hook._ffnc_abort = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class DataParallel:
    """The ranks of a data-parallel job: who we are, how to share arrays, how to fail.

    comm: an mpi4py communicator (default MPI.COMM_WORLD). abort_on_error: install a
    sys.excepthook that aborts the job on an uncaught exception (with more than one rank).

    ``rank``, ``size``, ``is_root`` (rank 0); ``local_size``: the ranks on this machine;
    ``threads``: the threads each rank should use (OMP_NUM_THREADS when set, else this
    rank's CPUs divided among the ranks of this machine that share them). Every method that
    communicates is collective: all ranks call it, in the same order.
    """

    def __init__(self, comm: Any = None, *, abort_on_error: bool = True) -> None:
        mpi = _mpi()
        self._mpi = mpi
        self.comm = mpi.COMM_WORLD if comm is None else comm
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        node = self.comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        try:
            self.local_size: int = node.Get_size()
            self.threads: int = self._threads_per_rank(node)
        finally:
            node.Free()
        if abort_on_error and self.size > 1:
            _install_excepthook(self)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return (f"<DataParallel rank {self.rank} of {self.size}, {self.local_size} on this "
                f"machine, {self.threads} threads each>")

    @staticmethod
    def _cpus() -> frozenset[int]:
        try:
            return frozenset(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return frozenset(range(os.cpu_count() or 1))

    def _threads_per_rank(self, node: Any) -> int:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        if env.isdigit() and int(env) >= 1:
            return min(int(env), MAX_THREADS)  # ffnc caps OpenMP's default so too
        mine = self._cpus()
        # Ranks bound to disjoint CPUs (mpiexec -bind-to core) each use their own; ranks that
        # share CPUs split them.
        sharing = sum(1 for cpus in node.allgather(mine) if cpus & mine)
        return max(1, len(mine) // max(1, sharing))

    # -- sharing --

    def shard(self, rows: int) -> tuple[int, int]:
        """This rank's rows [lo, hi) of a global batch of `rows` rows: contiguous shards whose
        sizes differ by at most one, in rank order (empty when rows < size)."""
        return rows * self.rank // self.size, rows * (self.rank + 1) // self.size

    def broadcast(self, array: np.ndarray, root: int = 0) -> None:
        """Overwrites `array` (contiguous, writable, the same shape and dtype on every rank)
        with rank `root`'s."""
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous \
                or not array.flags.writeable:
            raise ValueError("broadcast: array must be a writable C-contiguous numpy array")
        if self.size > 1:
            self.comm.Bcast(array, root=root)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """Rank `root`'s `obj` (picklable), on every rank."""
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def allreduce_sum(self, array: np.ndarray) -> None:
        """In place: every rank's `array` becomes the element-wise sum over the ranks."""
        if self.size > 1:
            self.comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)

    def barrier(self) -> None:
        self.comm.Barrier()

    def check_same(self, value: Any, what: str) -> None:
        """Raises ValueError on every rank, naming the ranks, unless every rank passed an equal
        `value` (picklable)."""
        if self.size == 1:
            return
        values = self.comm.allgather(value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise ValueError(f"ffnc.distributed: {what} differs between ranks: rank 0 has "
                             f"{values[0]!r}, rank {differ[0]} has {values[differ[0]]!r}; every "
                             f"rank must run the same job on the same data")

    def check_same_data(self, arrays: Sequence[np.ndarray], what: str = "the training data"
                        ) -> None:
        """Checks that every rank holds the same arrays (shapes, dtypes and a CRC-32 of the
        bytes), so that the shards of every batch fit together."""
        crc = 0
        for a in arrays:
            crc = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), crc)
        self.check_same([(a.shape, a.dtype.str) for a in arrays] + [crc], what)

    # -- failing --

    @contextlib.contextmanager
    def guard(self, collective: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Runs the enclosed code; an exception escaping it on any rank (including
        KeyboardInterrupt and SystemExit) prints the error with the rank and aborts every rank
        of the job, since the others would wait for this one forever. With one rank the
        exception propagates as usual, and so do exceptions of the `collective` types, which
        the caller raises on every rank at the same point (e.g. from values reduced over the
        ranks)."""
        try:
            yield
        except BaseException as exc:
            if self.size == 1 or isinstance(exc, collective):
                raise
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            _abort(self.comm, f"{text}ffnc.distributed: rank {self.rank} of {self.size} failed "
                              f"with the {type(exc).__name__} above; aborting all {self.size} "
                              f"ranks")


def init(threads: int | None = None, comm: Any = None) -> DataParallel:
    """Joins the MPI job and sets ffnc's threads for this rank: `threads`, or the default
    (see DataParallel.threads). Returns the DataParallel."""
    import ffnc

    group = DataParallel(comm)
    if threads is not None:
        group.threads = count("threads", threads, 1, MAX_THREADS)
    ffnc.set_num_threads(group.threads)
    return group


def data_parallel(spec: Any) -> DataParallel | None:
    """The DataParallel a ``distributed=`` argument asks for: None for False or None, a new
    one on MPI.COMM_WORLD for True, or the DataParallel given."""
    if spec is None or spec is False:
        return None
    if spec is True:
        return DataParallel()
    if isinstance(spec, DataParallel):
        return spec
    raise TypeError(f"distributed must be a bool or an ffnc.distributed.DataParallel, got "
                    f"{type(spec).__name__}")


class DistributedStepper:
    """Runs a compiled training plan data-parallel: the drop-in for ``Plan.run_epoch`` (and
    ``Plan.run``) in a training loop.

    plan: a training plan (ffnc.compiler.compile with loss= and optimizer=), built the same
    way on every rank. Its loss must be the MEAN over the batch rows (every ffnc.nn loss is),
    and its scalar outputs (records: loss, metrics) means over the rows as well:
    reduction="sum" for a loss and outputs that are sums over the rows instead.
    group: the DataParallel (default: a new one on MPI.COMM_WORLD).

    At construction rank 0's parameters, optimizer state and step are broadcast to every
    rank (``sync()``). Each step, rank r runs ``plan.compute_gradients`` on its shard of the
    global batch, its gradient arena is scaled by its share of the rows and summed over the
    ranks in place (one allreduce), then ``plan.apply_update()`` runs on every rank.
    Every ``verify_every`` steps (and at ``verify()``) a checksum of the parameters is
    compared across ranks; should an MPI library ever return different sums to different
    ranks, rank 0's state is broadcast again, with a RuntimeWarning.
    """

    def __init__(self, plan: Any, group: DataParallel | None = None, *,
                 reduction: str = "mean", verify_every: int = 1000) -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        for attr in ("compute_gradients", "apply_update", "grad_arena", "param_arena"):
            if not hasattr(plan, attr):
                raise TypeError(f"DistributedStepper needs an ffnc.compiler.Plan, got "
                                f"{type(plan).__name__}")
        if plan.update_begin == len(plan.instructions):
            raise ValueError("DistributedStepper needs a training plan: compile it with loss= "
                             "and optimizer=")
        if getattr(plan, "grads_in_velocity", None):
            raise ValueError("DistributedStepper averages every gradient between "
                             "compute_gradients and apply_update, but this plan adds some of "
                             "them straight into its momentum velocity: compile it with "
                             "keep_grads=True")
        self.plan = plan
        self.group = DataParallel() if group is None else group
        self.reduction = reduction
        self.verify_every = count("verify_every", verify_every, 1)
        self._since_verify = 0
        self._batched = [len(x.shape) > 0 and x.shape[0] is None for x in plan.inputs]
        self._by_name = {x.name: i for i, x in enumerate(plan.inputs) if x.name is not None}
        outputs = plan.outputs
        self._record_index = [i for i, node in enumerate(outputs) if node.shape == ()]
        self.group.check_same((plan.dtype.str, plan.param_arena.size, plan.max_batch,
                               [ins.opcode for ins in plan.instructions]), "the compiled plan")
        self.sync()

    # -- state --

    def _state_buffers(self) -> list[np.ndarray]:
        return [self.plan.param_arena, *self.plan.optimizer_state().values()]

    def sync(self) -> None:
        """Every rank takes rank 0's parameters, optimizer state, step and learning rate."""
        for buf in self._state_buffers():
            self.group.broadcast(buf)
        self.plan.step, self.plan.lr = self.group.broadcast_object((self.plan.step,
                                                                    self.plan.lr))

    def verify(self) -> bool:
        """Compares a checksum of the parameters and optimizer state across ranks; on a
        mismatch re-broadcasts rank 0's (with a RuntimeWarning) and returns False."""
        self._since_verify = 0
        crc = 0
        for buf in self._state_buffers():
            crc = zlib.crc32(memoryview(buf).cast("B"), crc)
        if self.group.size == 1 or len(set(self.group.comm.allgather(crc))) == 1:
            return True
        warnings.warn("ffnc.distributed: the ranks' parameters diverged (the MPI library's "
                      "allreduce gave different ranks different sums); rank 0's were "
                      "broadcast again", RuntimeWarning, stacklevel=2)
        self.sync()
        return False

    # -- stepping --

    def _arrays(self, feed: Mapping[Any, np.ndarray]) -> list[np.ndarray]:
        if not isinstance(feed, Mapping):
            raise TypeError(f"feed must be a mapping from placeholders (or their names) to "
                            f"arrays, got {type(feed).__name__}")
        arrays: list[Any] = [None] * len(self.plan.inputs)
        for key, value in feed.items():
            index = self._by_name.get(key) if isinstance(key, str) else next(
                (i for i, x in enumerate(self.plan.inputs) if x is key), None)
            if index is None:
                raise ValueError(f"feed key {key!r} is not an input of this plan; inputs: "
                                 f"{[x.label for x in self.plan.inputs]}")
            if not isinstance(value, np.ndarray):
                raise TypeError(f"feed value for {key!r} must be a numpy array, got "
                                f"{type(value).__name__}")
            arrays[index] = value
        missing = [x.label for x, a in zip(self.plan.inputs, arrays, strict=True) if a is None]
        if missing:
            raise ValueError(f"feed is missing the plan inputs {missing}")
        return arrays

    def _rows(self, arrays: list[np.ndarray]) -> int:
        rows = {len(a) for a, b in zip(arrays, self._batched, strict=True) if b}
        if len(rows) != 1:
            raise ValueError(f"the batched inputs must have the same number of rows, got "
                             f"{[len(a) for a, b in zip(arrays, self._batched, strict=True) if b]}")
        n = rows.pop()
        if n == 0:
            raise ValueError("the inputs have no rows")
        return n

    def _local_step(self, arrays: list[np.ndarray], first: int, rows: int,
                    lr: float | None) -> tuple[list[float], int]:
        """One global step over rows [first, first + rows) of `arrays`; returns this rank's
        scalar outputs and its number of rows."""
        lo, hi = self.group.shard(rows)
        local = hi - lo
        # A rank without rows (a global batch smaller than the ranks) still runs one row to
        # stay in step, and contributes nothing.
        lo, hi = (first + lo, first + hi) if local else (first, first + 1)
        feed = {x: (a[lo:hi] if b else a)
                for x, a, b in zip(self.plan.inputs, arrays, self._batched, strict=True)}
        self.plan.compute_gradients(feed)
        grads = self.plan.grad_arena
        if self.group.size > 1:
            share = 1.0 if self.reduction == "sum" and local else local / rows
            if share != 1.0:
                np.multiply(grads, share, out=grads)
            self.group.allreduce_sum(grads)
        if lr is not None:
            self.plan.lr = lr
        out = self.plan.apply_update()
        values = out if isinstance(out, list) else [out]
        return [float(values[i]) for i in self._record_index], local

    def run_epoch(self, feed: Mapping[Any, np.ndarray], batch_size: int,
                  lr_scale: np.ndarray | None = None) -> np.ndarray:
        """``Plan.run_epoch`` across the ranks: steps over whole-dataset arrays (the same on
        every rank) in global minibatches of batch_size rows, in order, the last possibly
        smaller. Returns the scalar outputs of each step reduced over the ranks (row-weighted
        means; sums with reduction="sum"), shape (steps, len(plan.records)), the same on every
        rank. lr_scale: None, or one learning-rate multiplier per step (see Plan.run_epoch);
        the plan's lr is unchanged afterwards."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shard_max = -(-int(batch_size) // self.group.size)
        if shard_max > self.plan.max_batch:
            raise ValueError(f"batch_size {batch_size} over {self.group.size} ranks gives "
                             f"shards of up to {shard_max} rows, but the plan was compiled for "
                             f"batches of at most {self.plan.max_batch}")
        arrays = self._arrays(feed)
        rows = self._rows(arrays)
        steps = -(-rows // int(batch_size))
        base_lr = self.plan.lr
        scales = self._lr_scale(lr_scale, steps)
        n = len(self._record_index)
        sums = np.zeros((steps, n + 1))  # row-weighted outputs, then the rows
        try:
            for s in range(steps):
                first = s * int(batch_size)
                global_rows = min(int(batch_size), rows - first)
                lr = None if scales is None else base_lr * float(scales[s])
                values, local = self._local_step(arrays, first, global_rows, lr)
                weight = 1.0 if self.reduction == "sum" else float(local)
                sums[s, :n] = np.multiply(values, weight) if local else 0.0
                sums[s, n] = local
        finally:
            if scales is not None:
                self.plan.lr = base_lr
        self.group.allreduce_sum(sums)
        self._since_verify += steps
        if self._since_verify >= self.verify_every:
            self.verify()
        if self.reduction == "sum":
            return sums[:, :n].copy()
        return sums[:, :n] / sums[:, n:]

    def step(self, feed: Mapping[Any, np.ndarray]) -> np.ndarray:
        """One step over one global batch (every row of `feed`); returns its scalar outputs
        reduced over the ranks, shape (len(plan.records),)."""
        arrays = self._arrays(feed)
        return self.run_epoch(feed, self._rows(arrays))[0]

    def _lr_scale(self, lr_scale: Any, steps: int) -> np.ndarray | None:
        if lr_scale is None:
            return None
        scale = np.asarray(lr_scale)
        if scale.dtype != np.float64 or scale.shape != (steps,):
            raise ValueError(f"lr_scale must be a float64 array of shape ({steps},), one "
                             f"multiplier per step, got {scale.dtype} {scale.shape}")
        if not all(math.isfinite(v) and v >= 0 for v in scale.tolist()):
            raise ValueError("lr_scale must hold finite values >= 0")
        return scale


__all__ = ["INSTALL_HINT", "DataParallel", "DistributedStepper", "available", "data_parallel",
           "init", "launched_by_mpi"]
