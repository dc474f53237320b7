"""Training: fit, predict and evaluate ffnc.nn models with compiled plans.

    >>> history = ffnc.train.fit(model, x, y, optimizer="adam", epochs=20, batch_size=32,
    ...                          validation_split=0.1, early_stopping=5)
    >>> probabilities = ffnc.train.predict(model, x_test)
    >>> ffnc.train.evaluate(model, x_test, y_test)
    {'loss': 0.08..., 'accuracy': 0.97...}

How it runs: fit compiles ONE training plan (forward, loss, backward and the optimizer
update over one parameter arena) and binds the model to that arena, so training updates the
model in place. Each epoch is one call into C (``Plan.run_epoch``) over the whole training
set, shuffled by permuting into preallocated buffers. Validation, predict and evaluate run a
separate inference plan, compiled once per model and batch size and cached on the model; it
receives the current weights by one copy of the flat parameter array before each use.

Determinism: the shuffle of epoch e is drawn from numpy's Generator seeded with (seed, e),
and every ffnc kernel reduces in a fixed order, so the same call gives the same bits, and a
run resumed from its checkpoint ends exactly where the uninterrupted run ends.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

import ffnc.graph as G
from ffnc._memory import page_backed_copy
from ffnc._threads import MAX_THREADS
from ffnc._threads import threads as thread_count
from ffnc._validate import count, flag
from ffnc.compiler.plan import PlanInterrupted, PlanProfile
from ffnc.graph.ir import INDEX_DTYPES, Node

DEFAULT_INFERENCE_BATCH = 1024
METRICS = ("loss", "accuracy", "mae")

ADVICE = ("Is the learning rate too large? Try one 10x smaller. Is the cost smooth enough for "
          "this step size? Gradient descent decreases an L-smooth cost when lr < 2/L; "
          "ffnc.diagnose(model, x, y) estimates L, the safe rate 1/L and the size of each "
          "update relative to its parameters.")


class TrainingDiverged(FloatingPointError):
    """The loss or the parameters became NaN or infinite during training.

    ``epoch`` (1-based) and ``step`` (1-based within the epoch; None when only the parameters
    show it) say where; the model keeps its weights from the start of that epoch.
    """

    def __init__(self, message: str, epoch: int, step: int | None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


# ---- history and callbacks ----------------------------------------------------------------

class History:
    """What fit returns: ``history`` maps each logged quantity ("loss", "accuracy",
    "val_loss", "val_accuracy", "lr", ...) to its list of per-epoch values; ``epoch`` lists the
    epochs run (1-based). ``stopped_early`` and ``best_epoch`` report early stopping;
    ``seconds`` the wall time of this fit call. ``profile`` is the training plan's
    ffnc.compiler.PlanProfile (where a step's time goes, instruction by instruction) when
    fit(profile=steps) asked for one, else None.

    ``interrupted`` is True when Ctrl-C stopped fit within an epoch (see fit); that epoch is
    not in ``history``/``epoch`` (it has no validation) but in ``partial``: {"epoch",
    "steps" (completed), "steps_per_epoch", "loss" and the metrics as means over the completed
    steps (absent when none completed)}; None otherwise."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stopped_early = False
        self.best_epoch: int | None = None
        self.seconds = 0.0
        self.interrupted = False
        self.partial: dict[str, Any] | None = None
        self.profile: PlanProfile | None = None

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (what a checkpoint stores)."""
        return {"history": self.history, "epoch": self.epoch,
                "stopped_early": self.stopped_early, "best_epoch": self.best_epoch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        h = cls()
        h.history = {k: [float(v) for v in vs] for k, vs in d["history"].items()}
        h.epoch = [int(e) for e in d["epoch"]]
        h.stopped_early = bool(d.get("stopped_early", False))
        h.best_epoch = d.get("best_epoch")
        return h

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        stop = ""
        if self.partial is not None:
            p = self.partial
            stop = (f", interrupted in epoch {p['epoch']} after {p['steps']} of "
                    f"{p['steps_per_epoch']} steps")
        return f"<History: {len(self.epoch)} epochs, last {last}{stop}>"


class Callback:
    """Base class of fit callbacks; override what you need.

    ``on_epoch_end(epoch, logs)`` runs after each epoch (1-based epoch, logs: the epoch's
    "loss", metrics, "val_*" and "lr") and may return True to stop training.
    ``on_batch_end(step, logs)`` runs after each step (1-based within the epoch; logs: the
    step's "loss" and metrics); defining it makes fit run the steps one C call each instead
    of one call per epoch. ``on_train_begin(model)`` and ``on_train_end(history)`` bracket
    the run.
    """

    def on_train_begin(self, model: Any) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        """Called after each epoch; return True to stop."""
        return None

    def on_batch_end(self, step: int, logs: dict[str, float]) -> bool | None:
        """Called after each step when defined; return True to stop after this epoch."""
        return None

    def on_train_end(self, history: History) -> None:
        """Called once after the last epoch."""


def _wants_batches(cb: Any) -> bool:
    method = getattr(type(cb), "on_batch_end", None)
    return method is not None and method is not Callback.on_batch_end


class LambdaCallback(Callback):
    """A callback from a function f(epoch, logs) -> stop? run after each epoch."""

    def __init__(self, on_epoch_end: Callable[[int, dict], Any]) -> None:
        self._fn = on_epoch_end

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        return bool(self._fn(epoch, logs))


class EarlyStopping:
    """Stops when `monitor` has not improved by more than min_delta for `patience` epochs;
    restore_best_weights=True puts back the weights of the best epoch at the end.

    monitor: "val_loss" (the default when there is validation data, else "loss") or any
    logged quantity; mode "min" or "max" ("auto": max for accuracies, min otherwise).
    """

    def __init__(self, patience: int = 5, *, monitor: str | None = None,
                 min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = True) -> None:
        self.patience = count("early_stopping patience", patience, 0)
        if not isinstance(min_delta, (int, float)) or not math.isfinite(min_delta) \
                or min_delta < 0:
            raise ValueError(f"early_stopping min_delta must be a finite number >= 0, got "
                             f"{min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"early_stopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.min_delta, self.mode = monitor, float(min_delta), mode
        self.restore_best_weights = bool(restore_best_weights)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def _sign(self) -> float:
        mode = self.mode
        if mode == "auto":
            mode = "max" if self.monitor is not None and "acc" in self.monitor else "min"
        return 1.0 if mode == "min" else -1.0

    def update(self, epoch: int, logs: dict[str, float]) -> tuple[bool, bool]:
        """Records an epoch; returns (improved, stop)."""
        if self.monitor not in logs:
            raise ValueError(f"early_stopping monitors {self.monitor!r}, which is not logged; "
                             f"logged: {sorted(logs)}")
        value = self._sign() * logs[self.monitor]
        if self.best is None or value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        self.wait += 1
        return False, self.wait > self.patience

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]


# ---- argument checks ----------------------------------------------------------------------

def _check_model(model: Any, who: str) -> None:
    for attr in ("parameter_nodes", "output", "inputs", "bind", "flat", "check_inputs"):
        if not hasattr(model, attr):
            raise TypeError(f"{who}: model must be an ffnc.nn model (Sequential or Model), got "
                            f"{type(model).__name__}")


def _check_x(model: Any, x: Any, who: str, name: str = "x") -> list[np.ndarray]:
    """The model's input arrays, checked: dtype, shape, non-empty, finite; made contiguous."""
    if isinstance(x, np.ndarray):
        arrays = [x]
    elif isinstance(x, (list, tuple)) and all(isinstance(a, np.ndarray) for a in x):
        arrays = list(x)
    else:
        raise TypeError(f"{who}: {name} must be a numpy array (or a list of arrays, one per "
                        f"model input), got {type(x).__name__}")
    try:
        arrays = model.check_inputs(arrays)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{who}: {name}: {exc}") from None
    rows = {len(a) for a in arrays}
    if len(rows) != 1:
        raise ValueError(f"{who}: the arrays of {name} have different numbers of rows: "
                         f"{[len(a) for a in arrays]}")
    if rows.pop() == 0:
        raise ValueError(f"{who}: {name} is empty (0 rows)")
    out = []
    for a in arrays:
        finite = np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f"{who}: {name} has NaN or infinite values in {len(bad)} row(s), "
                             f"the first at row {bad[0]}")
        out.append(np.ascontiguousarray(a))
    return out


def _check_y(model: Any, loss: Any, y: Any, n: int, who: str, name: str = "y") -> np.ndarray:
    """The targets, checked against the loss's target placeholder (dtype, shape, range)."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{who}: {name} must be a numpy array, got {type(y).__name__}")
    spec = _target_spec(model, loss)
    shape, dtype = spec.shape, spec.dtype
    if dtype in INDEX_DTYPES:
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{who}: {name} must hold integer class labels for loss "
                            f"{loss.name}, got {y.dtype.name}")
        y = y.astype(np.int64, copy=False)  # lossless: every integer label fits int64
    elif y.dtype != dtype:
        raise TypeError(f"{who}: {name} must be {dtype.name} (the model's dtype) for loss "
                        f"{loss.name}, got {y.dtype.name}; convert it explicitly "
                        f"(y.astype(np.{dtype.name}))")
    if len(shape) == 2 and shape[1] == 1 and y.ndim == 1:
        y = y.reshape(-1, 1)  # a column given as a vector: same data, same order
    expected = (n,) + tuple(shape[1:])
    if y.shape != expected:
        shown = "(" + ", ".join(str(d) for d in expected) + ("," if len(expected) == 1 else "") \
            + ")"
        raise ValueError(f"{who}: {name} must have shape {shown} for loss {loss.name} and "
                         f"{n} input rows, got {y.shape}")
    if dtype in INDEX_DTYPES:
        classes = model.output_shape[1]
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if len(bad):
            raise ValueError(f"{who}: {name} has labels out of range [0, {classes}) (the model "
                             f"has {classes} outputs): {y[bad[0]]} at row {bad[0]}")
    else:
        flat = y.reshape(n, -1)
        finite = np.isfinite(flat).all(axis=1)
        if not finite.all():
            raise ValueError(f"{who}: {name} has NaN or infinite values, the first at row "
                             f"{np.flatnonzero(~finite)[0]}")
        if loss.name == "bce" and ((flat < 0) | (flat > 1)).any():
            raise ValueError(f"{who}: {name} must hold values in [0, 1] for loss bce")
    return np.ascontiguousarray(y)


def _target_spec(model: Any, loss: Any) -> Node:
    cache = model.__dict__.setdefault("_ffnc_targets", {})
    key = json.dumps(loss.get_config(), sort_keys=True)
    if key not in cache:
        cache[key] = loss.target_placeholder(model)
    return cache[key]


def _loss_of(model: Any, loss: Any, who: str) -> Any:
    from ffnc.nn import losses

    if loss is not None:
        loss = losses.get(loss)
        loss.check_output(model.output_shape)
        return loss
    if model.loss is None:
        raise ValueError(f"{who}: the model has no loss; pass loss= (e.g. "
                         f"'softmax_cross_entropy', 'mse') or set model.loss")
    return model.loss


def _metric_names(metrics: Any, loss: Any) -> list[str]:
    """The metrics besides the loss; default: accuracy for classification losses."""
    if metrics is None:
        return ["accuracy"] if loss.name in ("softmax_cross_entropy", "bce") else []
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a metric name or a list of them, got "
                        f"{type(metrics).__name__}")
    names = []
    for m in metrics:
        if not isinstance(m, str) or m not in METRICS:
            raise ValueError(f"metrics: unknown metric {m!r}; known: {', '.join(METRICS)}")
        kind, wants = _METRIC_LOSSES.get(m, (None, None))
        if wants is not None and loss.name not in wants:
            raise ValueError(f"metric {m!r} needs a {kind} loss ({', '.join(wants)}), the "
                             f"model's is {loss.name}")
        if m != "loss" and m not in names:
            names.append(m)
    return names


# the losses each metric is defined for (see _metric_node)
_METRIC_LOSSES = {"accuracy": ("classification", ("softmax_cross_entropy", "bce")),
                  "mae": ("regression", ("mse", "l1", "gaussian_nll", "mdn"))}


def _metric_node(name: str, loss: Any, out: Node, target: Node) -> Node:
    """The graph of a metric (mean over the batch) for this loss's outputs and targets."""
    dt = out.dtype
    if name == "accuracy":
        if loss.name == "softmax_cross_entropy":
            truth = target if target.dtype in INDEX_DTYPES else G.argmax(target, 1)
            return G.mean(G.cast(G.equal(G.argmax(out, 1), truth), dt))
        if loss.name == "bce":
            predicted = G.cast(G.greater(out, G.constant(np.zeros((), dt))), dt)
            truth = G.cast(G.greater(target, G.constant(np.full((), 0.5, dt))), dt)
            return G.mean(G.cast(G.equal(predicted, truth), dt))
        raise ValueError(f"metric 'accuracy' needs a classification loss "
                         f"(softmax_cross_entropy or bce), the model's is {loss.name}")
    if name == "mae":
        if loss.name in ("mse", "l1"):
            prediction = out
        elif loss.name == "gaussian_nll":
            d = out.shape[1] // 2
            prediction = G.split(out, [d, d], 1)[0]
        elif loss.name == "mdn":
            k, d = loss.components, loss.dims
            logits, mu, _ = G.split(out, [k, k * d, k * d], 1)
            weights = G.softmax(logits, 1) @ G.constant(np.repeat(np.eye(k), d, 1).astype(dt))
            prediction = (weights * mu) @ G.constant(np.tile(np.eye(d), (k, 1)).astype(dt))
        else:
            raise ValueError(f"metric 'mae' needs a regression loss (mse, l1, gaussian_nll, "
                             f"mdn), the model's is {loss.name}")
        return G.mean(G.abs(prediction - target))
    raise ValueError(f"unknown metric {name!r}")


# ---- optimizers ---------------------------------------------------------------------------

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adam": 1e-3, "adamw": 1e-3,
              "rmsprop": 1e-3}


def make_optimizer(name: str, lr: float | None = None, **options: Any) -> Any:
    """An ffnc.optim optimizer by name: "sgd", "momentum", "nesterov", "adam", "adamw",
    "rmsprop" (lr default: DEFAULT_LR[name]; options: its other hyper-parameters, e.g.
    clip_norm, weight_decay)."""
    from ffnc import optim

    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZER_NAMES)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    classes = {"sgd": optim.SGD, "momentum": optim.Momentum, "adam": optim.Adam,
               "adamw": optim.AdamW, "rmsprop": optim.RMSprop}
    if name == "nesterov":
        return optim.Momentum(lr=lr, nesterov=True, **options)
    return classes[name](lr=lr, **options)


def _resolve_optimizer(optimizer: Any) -> Any:
    from ffnc import optim

    if optimizer is None:
        return make_optimizer("adam")
    if isinstance(optimizer, str):
        return make_optimizer(optimizer)
    if not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"optimizer must be a name ({', '.join(OPTIMIZER_NAMES)}) or an "
                        f"ffnc.optim optimizer, got {type(optimizer).__name__}")
    return optimizer


def _schedules(schedule: Any) -> tuple[Any, Any]:
    """(step schedule or None, ReduceLROnPlateau or None) from fit's schedule argument."""
    from ffnc import optim

    items = list(schedule) if isinstance(schedule, (list, tuple)) else \
        ([] if schedule is None else [schedule])
    steps = plateau = None
    for item in items:
        if isinstance(item, optim.ReduceLROnPlateau) and plateau is None:
            plateau = item
        elif isinstance(item, optim.Schedule) and steps is None:
            steps = item
        else:
            raise TypeError(f"fit: schedule must be an ffnc.optim schedule, a "
                            f"ReduceLROnPlateau, or one of each in a list; got "
                            f"{type(item).__name__}")
    return steps, plateau


# ---- plans --------------------------------------------------------------------------------

def _compile(outputs: list[Node], **kwargs: Any) -> Any:
    from ffnc.compiler import compile as compile_plan

    return compile_plan(outputs, **kwargs)


def _inference_plan(model: Any, kind: str, batch: int, loss: Any = None,
                    metrics: Sequence[str] = ()) -> tuple[Any, Node | None]:
    """The cached inference plan: kind "predict" (the output) or "evaluate" (loss and metrics
    as per-step records). Its parameter arena has the model's flat layout."""
    key = (kind, batch, model.dtype.str,
           json.dumps(loss.get_config(), sort_keys=True) if loss is not None else None,
           tuple(metrics))
    cache = model.__dict__.setdefault("_ffnc_plans", {})
    if key in cache:
        return cache[key]
    out = model.output(False)
    params = list(model.parameter_nodes().values())
    if kind == "predict":
        plan = _compile([out], batch_size=batch, params=params, inputs=list(model.inputs))
        target = None
    else:
        target = _target_spec(model, loss)
        nodes = [loss(out, target)] + [_metric_node(m, loss, out, target) for m in metrics]
        plan = _compile(nodes, batch_size=batch, params=params,
                        inputs=list(model.inputs) + [target])
    cache[key] = (plan, target)
    return cache[key]


def _feed(model: Any, xs: list[np.ndarray], target: Node | None = None,
          y: np.ndarray | None = None) -> dict:
    feed = {node: a for node, a in zip(model.inputs, xs, strict=True)}
    if target is not None:
        feed[target] = y
    return feed


def _step_sizes(rows: int, batch: int) -> np.ndarray:
    steps = -(-rows // batch)
    sizes = np.full(steps, batch, dtype=np.float64)
    sizes[-1] = rows - (steps - 1) * batch
    return sizes


def _evaluate_arrays(model: Any, loss: Any, metrics: Sequence[str], xs: list[np.ndarray],
                     y: np.ndarray, batch: int) -> dict[str, float]:
    rows = len(y)
    batch = min(batch, rows)
    plan, target = _inference_plan(model, "evaluate", _plan_rows(batch), loss, metrics)
    np.copyto(plan.param_arena, model.flat)
    records = plan.run_epoch(_feed(model, xs, target, y), batch)
    means = _step_sizes(rows, batch) @ records / rows
    return dict(zip(["loss", *metrics], (float(v) for v in means), strict=True))


def _plan_rows(batch: int) -> int:
    """The batch an inference plan is compiled for: `batch` rounded up to a power of two, so
    that data of many sizes share a few cached plans (a plan runs any smaller batch)."""
    return 1 << (batch - 1).bit_length()


def _batch_arg(batch_size: Any, who: str) -> int | None:
    if batch_size is None:
        return None
    return count(f"{who}: batch_size", batch_size, 1)


def predict(model: Any, x: Any, *, batch_size: int | None = None,
            raw: bool = False) -> np.ndarray:
    """The model's predictions for x (rows of inputs, the model's dtype).

    Returns model.loss.predict(outputs) (class probabilities for softmax_cross_entropy and
    bce, the mean for regression losses), or the raw outputs with raw=True or when the model
    has no loss. Runs the cached inference plan in batches of batch_size rows (default up to
    1024) and never changes the model.
    """
    _check_model(model, "predict")
    xs = _check_x(model, x, "predict")
    bs = _batch_arg(batch_size, "predict") or DEFAULT_INFERENCE_BATCH
    rows = len(xs[0])
    bs = min(bs, rows)
    plan, _ = _inference_plan(model, "predict", _plan_rows(bs))
    np.copyto(plan.param_arena, model.flat)
    out_shape = (rows,) + tuple(model.output_shape[1:])
    result = np.empty(out_shape, dtype=model.dtype)
    for start in range(0, rows, bs):
        chunk = [a[start:start + bs] for a in xs]
        result[start:start + len(chunk[0])] = plan.run(_feed(model, chunk))[0]
    if flag("predict: raw", raw) or model.loss is None:
        return result
    return model.loss.predict(result)


def evaluate(model: Any, x: Any, y: Any, *, loss: Any = None, metrics: Any = None,
             batch_size: int | None = None) -> dict[str, float]:
    """The mean loss and metrics of the model on (x, y): {"loss": ..., "accuracy": ...}.

    loss: default the model's; metrics: names from METRICS (default: accuracy for
    classification losses). One call into C over all the data (batches of batch_size rows,
    default up to 1024), exact means over the rows; the model is not changed.
    """
    _check_model(model, "evaluate")
    loss = _loss_of(model, loss, "evaluate")
    names = _metric_names(metrics, loss)
    xs = _check_x(model, x, "evaluate")
    yv = _check_y(model, loss, y, len(xs[0]), "evaluate")
    bs = _batch_arg(batch_size, "evaluate") or DEFAULT_INFERENCE_BATCH
    return _evaluate_arrays(model, loss, names, xs, yv, bs)


# ---- fit ----------------------------------------------------------------------------------

def _split_validation(xs: list[np.ndarray], y: np.ndarray, split: Any):
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise ValueError(f"fit: validation_split must be a number in [0, 1), got {split!r}")
    if split == 0:
        return xs, y, None
    n = len(y)
    n_val = int(round(split * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"fit: validation_split={split} of {n} rows leaves "
                         f"{'no validation rows' if n_val < 1 else 'no training rows'}")
    cut = n - n_val
    return [a[:cut] for a in xs], y[:cut], ([a[cut:] for a in xs], y[cut:])


def _fingerprint(arrays: Iterable[np.ndarray]) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), crc)
    return crc


def _best_path(checkpoint: str) -> str:
    root, ext = os.path.splitext(checkpoint)
    return f"{root}.best{ext or '.safetensors'}"


class _Progress:
    """The progress display: a tqdm bar over epochs on a terminal (verbose=1), one line per
    epoch (verbose=2), or nothing (verbose=0 or not a terminal with verbose=1)."""

    def __init__(self, verbose: int, epochs: int, start: int) -> None:
        self.verbose = verbose
        self.bar = None
        if verbose == 1 and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, initial=start, unit="epoch", desc="fit",
                            dynamic_ncols=True, leave=True)

    def update(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        shown = {k: f"{v:.4g}" for k, v in logs.items() if k != "lr"}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif self.verbose >= 2:
            text = "  ".join(f"{k} {v}" for k, v in shown.items())
            print(f"epoch {epoch}/{epochs}  {text}  ({seconds:.2f} s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _CtrlC:
    """fit's SIGINT handler while it trains, in place of Python's default one (main thread
    only): the first Ctrl-C asks the training plan to stop after its current step and fit to
    stop at the next step or epoch boundary, whichever comes first; another one raises
    KeyboardInterrupt, as usual. Plan.run_epoch recognises it by ``ffnc_step_boundary``: its
    C-level handler still stops an epoch between two steps, where this one cannot run, and
    sets ``requested`` when it used a Ctrl-C, so that the next one counts as the second."""

    ffnc_step_boundary = True

    def __init__(self, plan: Any, install: bool) -> None:
        import signal
        import threading

        self.plan = plan
        self.requested = False
        self.previous = None
        if install and threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self)

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.plan.interrupt()

    def uninstall(self) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


def fit(model: Any, x: Any, y: Any, *, loss: Any = None, optimizer: Any = None,
        epochs: int = 10, batch_size: int | None = 32, shuffle: bool = True, seed: int = 0,
        validation_data: tuple[Any, Any] | None = None, validation_split: float = 0.0,
        metrics: Sequence[str] | str | None = None,
        callbacks: Sequence[Callback | Callable] = (), early_stopping: Any = None,
        schedule: Any = None, verbose: int = 1, checkpoint: str | os.PathLike | None = None,
        threads: int | None = None, distributed: Any = False, profile: int = 0) -> History:
    """Trains `model` on (x, y) and returns its History.

    model: an ffnc.nn model; trained in place. x: input rows in the model's dtype (a list of
    arrays for several inputs); y: targets as the loss wants them (int class labels, or
    floats in the model's dtype). Nothing is cast: a float64 x for a float32 model is a
    TypeError (convert it yourself, x.astype(np.float32)); integer labels become int64.
    loss: overrides (and sets) model.loss. optimizer: an optimizer object (ffnc.optim or
    ffnc.compiler) or a name ("adam", "sgd", "momentum", ...; default Adam(lr=1e-3)).
    epochs: passes over the data (0: just evaluate). batch_size: rows per step; None for
    full-batch gradient descent. shuffle/seed: the rows are permuted each epoch by
    numpy.random.default_rng((seed, epoch)).
    validation_data=(x_val, y_val) or validation_split=f (the LAST f of the rows, before any
    shuffling): evaluated after each epoch as "val_loss" and "val_<metric>".
    metrics: names among "accuracy", "mae" (default: accuracy for classification losses);
    the training values are the means over the epoch's steps.
    callbacks: Callback objects or functions f(epoch, logs) -> stop?.
    early_stopping: a patience (int) or an EarlyStopping; monitors val_loss (loss without
    validation data) and restores the best weights at the end.
    schedule: an ffnc.optim learning-rate schedule (StepLR, CosineLR, LinearWarmup, ...:
    per-step multipliers of the optimizer's lr), an ffnc.optim.ReduceLROnPlateau (driven by
    val_loss, or loss without validation data, once per epoch), or a list of one of each
    (their multipliers multiply).
    verbose: 0 silent, 1 a progress bar on a terminal, 2 one line per epoch.
    checkpoint: a path; the model, optimizer and training state are saved (atomically)
    after every epoch, and when the file exists fit resumes from it, so an interrupted run
    that is resumed ends bit-identical to an uninterrupted one. With early stopping the best
    weights so far are also kept in "<checkpoint stem>.best.safetensors".
    threads: the number of threads for this fit's kernels (default: ffnc's current setting).
    It applies to the calls this fit makes from the Python thread it runs in, and only for
    the fit: fits running at once in other threads keep their own counts, and
    ffnc.set_num_threads is left as it was. The trained weights do not depend on it (every
    reduction runs in a fixed order): the same seed gives the same bits with 1 or 2 threads.
    distributed: True (or an ffnc.distributed.DataParallel) to train data-parallel over the
    MPI ranks of a job started with mpiexec: batch_size is the global batch, cut into one
    shard per rank, with one allreduce of the gradients per step; the ranks start from rank
    0's weights and stay bit-identical, metrics are reduced over them, only rank 0 prints and
    writes checkpoints, and threads default to the cores per rank (see ffnc.distributed).
    profile: a number of steps (0: none). After training, the training plan runs that many
    steps on the first batch of the data with each instruction timed, and History.profile
    holds the result (Plan.profile: time, share and GFLOP/s per instruction). The steps
    train a copy of the state: the weights, the optimizer's state and its step counter are
    restored after them, so the trained model is the same as without profiling. Not with
    distributed (it times the plan of one process) nor after an interrupted fit.

    Raises TrainingDiverged (a FloatingPointError) naming the epoch and step when the loss
    becomes NaN or infinite.

    Ctrl-C (SIGINT; in the main thread, under Python's default handler) stops training after
    the current step rather than the current epoch, and fit returns: the model keeps the
    weights of the last completed step, the History has ``interrupted=True`` and the partial
    epoch in ``partial``. No on_epoch_end callback sees the partial epoch, no best weights are
    restored, and the checkpoint file keeps the end of the last whole epoch, from which a
    rerun resumes exactly. A second Ctrl-C while fit stops raises KeyboardInterrupt as usual.
    """
    _check_model(model, "fit")
    loss = _loss_of(model, loss, "fit")
    epochs = count("fit: epochs", epochs, 0)
    shuffle = flag("fit: shuffle", shuffle)
    if threads is not None:
        count("fit: threads", threads, 1, MAX_THREADS)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"fit: checkpoint must be a path (str or os.PathLike) or None, got "
                        f"{type(checkpoint).__name__}")
    verbose = count("fit: verbose", verbose, 0)
    seed = count("fit: seed", seed, 0)
    profile = count("fit: profile", profile, 0)
    if profile and distributed:
        raise ValueError("fit: profile times the training plan of one process; it cannot "
                         "be combined with distributed")
    batch_arg = _batch_arg(batch_size, "fit")
    names = _metric_names(metrics, loss)
    optimizer = _resolve_optimizer(optimizer)
    xs = _check_x(model, x, "fit")
    yv = _check_y(model, loss, y, len(xs[0]), "fit")
    if validation_data is not None and validation_split:
        raise ValueError("fit: give validation_data or validation_split, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("fit: validation_data must be a pair (x_val, y_val)")
        val_x = _check_x(model, validation_data[0], "fit", "validation_data x")
        val = (val_x, _check_y(model, loss, validation_data[1], len(val_x[0]), "fit",
                               "validation_data y"))
    else:
        xs, yv, val = _split_validation(xs, yv, validation_split)
    rows = len(yv)
    batch = rows if batch_arg is None else min(batch_arg, rows)
    stopper = _early_stopper(early_stopping, val is not None)
    cbs = _callbacks(callbacks)
    schedules = _schedules(schedule)
    group = None
    if distributed:
        from ffnc.distributed import data_parallel

        group = data_parallel(distributed)
        threads = group.threads if threads is None else threads
        verbose = verbose if group.is_root else 0
    if loss is not model.loss:  # set once every argument is checked: a refused call changes
        model.loss = loss       # nothing
    started = time.perf_counter()
    # A count of this thread's own (ffnc.threads), not ffnc.set_num_threads' process-wide one:
    # fits running at once in other threads keep theirs, and nothing is left changed after.
    # With several ranks, an error on one of them stops them all (group.guard).
    with (thread_count(threads) if threads is not None else nullcontext()), \
            (group.guard(collective=(TrainingDiverged,)) if group is not None else nullcontext()):
        trainer = _Trainer(model, loss, optimizer, names, xs, yv, val, batch, shuffle, seed,
                           stopper, cbs, schedules, checkpoint, keep_grads=group is not None)
        if group is not None:
            trainer.distribute(group)
        history = trainer.run(epochs, verbose, profile)
    history.seconds = time.perf_counter() - started
    return history


def _early_stopper(spec: Any, has_validation: bool) -> EarlyStopping | None:
    if spec is None or spec is False:
        return None
    stopper = spec if isinstance(spec, EarlyStopping) else EarlyStopping(spec)
    if stopper.monitor is None:
        stopper.monitor = "val_loss" if has_validation else "loss"
    return stopper


def _callbacks(callbacks: Any) -> list[Callback]:
    if isinstance(callbacks, Callback) or callable(callbacks) and not isinstance(callbacks, type):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks must be a list of Callback objects or functions "
                        f"f(epoch, logs), got {type(callbacks).__name__}")
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif hasattr(cb, "on_epoch_end") or hasattr(cb, "on_batch_end"):
            out.append(cb)
        elif callable(cb):
            out.append(LambdaCallback(cb))
        else:
            raise TypeError(f"fit: callbacks must be Callback objects or functions "
                            f"f(epoch, logs), got {type(cb).__name__}")
    return out


class _Trainer:
    """One fit call's state: the plan, buffers, history, resume logic."""

    # data-parallel training (distribute) replaces these two
    stepper: Any = None  # runs the epochs instead of the plan: a DistributedStepper
    writes = True        # whether this process writes the checkpoints

    def distribute(self, group: Any) -> None:
        """Trains over the ranks of `group` (an ffnc.distributed.DataParallel): each step
        sharded with one allreduce of the gradients, from rank 0's weights; only rank 0
        writes checkpoints. Every rank must hold the same data (checked)."""
        from ffnc.distributed import DistributedStepper

        group.check_same_data(self.xs + [self.y])
        if self.checkpoint is not None:
            group.check_same(os.path.exists(self.checkpoint),
                             f"whether checkpoint {self.checkpoint} exists (resuming needs it "
                             f"on a filesystem every rank reads)")
        self.stepper = DistributedStepper(self.plan, group)
        self.writes = group.is_root

    def __init__(self, model, loss, optimizer, metrics, xs, y, val, batch, shuffle, seed,
                 stopper, callbacks, schedules, checkpoint, keep_grads=False) -> None:
        self.model, self.loss, self.optimizer, self.metrics = model, loss, optimizer, metrics
        self.xs, self.y, self.val, self.batch = xs, y, val, batch
        self.shuffle, self.seed, self.stopper = bool(shuffle), seed, stopper
        self.callbacks = callbacks
        self.step_schedule, self.plateau = schedules
        self.plateau_monitor = "val_loss" if val is not None else "loss"
        self.checkpoint = os.fspath(checkpoint) if checkpoint is not None else None
        self.rows = len(y)
        self.steps = -(-self.rows // batch)
        self.weights = _step_sizes(self.rows, batch) / self.rows

        out = model.output(True)
        self.target = _target_spec(model, loss)
        objective = loss(out, self.target)
        nodes = [objective] + [_metric_node(m, loss, out, self.target) for m in metrics]
        self.plan = _compile(nodes, batch_size=batch, loss=objective, optimizer=optimizer,
                             params=list(model.parameter_nodes().values()),
                             inputs=list(model.inputs) + [self.target],
                             keep_grads=keep_grads)
        model.bind(self.plan.param_arena)
        self.arena = self.plan.param_arena
        self.epoch_start = np.empty_like(self.arena)
        self.best = np.empty_like(self.arena) if stopper and stopper.restore_best_weights \
            else None
        if self.shuffle:
            self.x_buf = [np.empty_like(a) for a in xs]
            self.y_buf = np.empty_like(y)
        self.history = History()
        self.done = 0
        self.finished = False
        self.batch_mode = any(_wants_batches(cb) for cb in callbacks)
        self.last_lr = float(optimizer.lr)

    # -- the resume state --

    def _state(self) -> dict[str, Any]:
        return {"epoch": self.done, "finished": self.finished, "seed": self.seed,
                "shuffle": self.shuffle, "batch_size": self.batch, "rows": self.rows,
                "data_crc32": self._crc, "metrics": self.metrics,
                "history": self.history.to_dict(),
                "early_stopping": self.stopper.state() if self.stopper else None,
                "plateau": self.plateau.state_dict() if self.plateau else None,
                "step_schedule": self.step_schedule.get_config() if self.step_schedule
                else None}

    def _save(self) -> None:
        from ffnc import io

        if not self.writes:
            return
        io.save(self.model, self.checkpoint, optimizer=self.optimizer, plan=self.plan,
                training=self._state())

    def _resume(self) -> None:
        from ffnc import io

        ck = io.load_checkpoint(self.checkpoint)
        where = f"fit: checkpoint {self.checkpoint}"
        if ck.model.get_config() != self.model.get_config():
            raise ValueError(f"{where} holds a different model; delete it or choose another "
                             f"checkpoint path")
        t = ck.training
        if t is None or ck.optimizer is None:
            raise ValueError(f"{where} has no training state to resume from (it was not "
                             f"written by fit); choose another checkpoint path")
        mine = {k: v for k, v in io.optimizer_config(self.optimizer).items() if k != "step"}
        theirs = io.optimizer_config(ck.optimizer)
        if mine != theirs:
            raise ValueError(f"{where} was trained with optimizer {theirs}, this fit uses "
                             f"{mine}")
        for key in ("seed", "shuffle", "batch_size", "rows", "data_crc32", "metrics"):
            if t.get(key) != self._state_value(key):
                raise ValueError(f"{where} was written with {key}={t.get(key)!r}, this fit has "
                                 f"{self._state_value(key)!r}: resuming would not continue "
                                 f"the same run")
        self.model.load_state_dict(ck.model.state_dict())
        views = self.plan.optimizer_state()
        if set(views) != set(ck.optimizer_state):
            raise ValueError(f"{where} has optimizer buffers {sorted(ck.optimizer_state)}, "
                             f"expected {sorted(views)}")
        for name, view in views.items():
            np.copyto(view, ck.optimizer_state[name])
        self.plan.step = ck.step
        mine_schedule = self.step_schedule.get_config() if self.step_schedule else None
        if t.get("step_schedule") != mine_schedule:
            raise ValueError(f"{where} was trained with the schedule "
                             f"{t.get('step_schedule')}, this fit has {mine_schedule}")
        if (t.get("plateau") is None) != (self.plateau is None):
            raise ValueError(f"{where}: ReduceLROnPlateau is used in only one of the runs")
        if self.plateau is not None:
            self.plateau.load_state_dict(t["plateau"])
        self.history = History.from_dict(t["history"])
        self.done = int(t["epoch"])
        self.finished = bool(t["finished"])
        if self.stopper and t.get("early_stopping"):
            self.stopper.load_state(t["early_stopping"])
            if self.best is not None and self.stopper.best_epoch is not None:
                best = io.load(_best_path(self.checkpoint))
                np.copyto(self.best, best.flat)

    def _state_value(self, key: str) -> Any:
        return {"seed": self.seed, "shuffle": self.shuffle, "batch_size": self.batch,
                "rows": self.rows, "data_crc32": self._crc, "metrics": self.metrics}[key]

    # -- one epoch --

    def _lr_scale(self) -> np.ndarray | None:
        if self.step_schedule is None and self.plateau is None:
            return None
        scale = np.ones(self.steps) if self.step_schedule is None else np.asarray(
            self.step_schedule.multipliers(self.plan.step, self.steps), dtype=np.float64)
        if self.plateau is not None:
            scale = scale * self.plateau.scale
        return scale

    def _run(self, feed: dict, rows_batch: int, lr_scale: np.ndarray | None) -> np.ndarray:
        runner = self.plan if self.stepper is None else self.stepper
        if lr_scale is None:
            return runner.run_epoch(feed, rows_batch)
        return runner.run_epoch(feed, rows_batch, lr_scale=lr_scale)

    def _epoch(self, epoch: int) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng((self.seed, epoch)).permutation(self.rows)
            for a, buf in zip(self.xs, self.x_buf, strict=True):
                np.take(a, order, axis=0, out=buf)
            np.take(self.y, order, axis=0, out=self.y_buf)
            xs, y = self.x_buf, self.y_buf
        else:
            xs, y = self.xs, self.y
        lr_scale = self._lr_scale()
        self.last_lr = self.plan.lr * (1.0 if lr_scale is None else float(lr_scale[-1]))
        if not self.batch_mode:
            return self._run(_feed(self.model, xs, self.target, y), self.batch, lr_scale)
        records = np.empty((self.steps, 1 + len(self.metrics)))
        stop = False
        for s in range(self.steps):
            lo, hi = s * self.batch, min((s + 1) * self.batch, self.rows)
            feed = _feed(self.model, [a[lo:hi] for a in xs], self.target, y[lo:hi])
            try:
                records[s] = self._run(feed, self.batch,
                                       None if lr_scale is None else lr_scale[s:s + 1])[0]
            except PlanInterrupted as step:  # Ctrl-C: the epoch so far, as run_epoch's
                raise PlanInterrupted(s + step.steps, self.steps,
                                      np.concatenate([records[:s], step.records])) from None
            logs = dict(zip(["loss", *self.metrics], (float(v) for v in records[s]),
                            strict=True))
            if not math.isfinite(logs["loss"]):
                return records[:s + 1]
            for cb in self.callbacks:
                if _wants_batches(cb) and cb.on_batch_end(s + 1, logs):
                    stop = True
        self.stop_requested = self.stop_requested or stop
        return records

    def _check_finite(self, epoch: int, records: np.ndarray) -> None:
        losses = records[:, 0]
        bad = np.flatnonzero(~np.isfinite(losses))
        step = int(bad[0]) + 1 if len(bad) else None
        if step is None and np.isfinite(self.arena).all():
            return
        np.copyto(self.arena, self.epoch_start)
        what = (f"the loss became {losses[step - 1]} at step {step} of {self.steps} "
                f"(global step {(epoch - 1) * self.steps + step})" if step is not None
                else f"the parameters became NaN or infinite during its last step "
                     f"{self.steps}")
        raise TrainingDiverged(
            f"fit: training diverged in epoch {epoch}: {what}, with {_describe(self.optimizer)}"
            f". {ADVICE} The model keeps its weights from the start of epoch {epoch}.",
            epoch, step)

    def _logs(self, records: np.ndarray) -> dict[str, float]:
        means = self.weights @ records
        logs = dict(zip(["loss", *self.metrics], (float(v) for v in means), strict=True))
        if self.val is not None:
            result = _evaluate_arrays(self.model, self.loss, self.metrics, self.val[0],
                                      self.val[1], DEFAULT_INFERENCE_BATCH)
            logs.update({f"val_{k}": v for k, v in result.items()})
        logs["lr"] = self.last_lr
        return logs

    def run(self, epochs: int, verbose: int, profile_steps: int = 0) -> History:
        self._crc = _fingerprint(self.xs + [self.y])
        if self.checkpoint is not None and os.path.exists(self.checkpoint):
            self._resume()
        for cb in self.callbacks:
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin(self.model)
        progress = _Progress(verbose, epochs, min(self.done, epochs))
        # Ctrl-C stops after the current step; not data-parallel, where every rank must run it
        ctrl_c = _CtrlC(self.plan, install=self.stepper is None)
        try:
            while self.done < epochs and not self.finished:
                epoch = self.done + 1
                if ctrl_c.requested:  # Ctrl-C came between two epochs
                    self._interrupted(epoch, np.empty((0, 1 + len(self.metrics))))
                    break
                tic = time.perf_counter()
                self.stop_requested = False
                np.copyto(self.epoch_start, self.arena)
                try:
                    records = self._epoch(epoch)
                except PlanInterrupted as stop:  # Ctrl-C: stopped between two steps
                    ctrl_c.requested = True  # the next one raises KeyboardInterrupt
                    self._interrupted(epoch, stop.records)
                    break
                self._check_finite(epoch, records)
                try:
                    logs = self._logs(records)
                except PlanInterrupted:  # Ctrl-C in validation: the epoch trained, unvalidated
                    ctrl_c.requested = True
                    self._interrupted(epoch, records)
                    break
                if self.plateau is not None:
                    self.plateau.update(logs[self.plateau_monitor])
                stop = False
                if self.stopper is not None:
                    improved, stop = self.stopper.update(epoch, logs)
                    if improved and self.best is not None:
                        np.copyto(self.best, self.arena)
                        if self.checkpoint is not None and self.writes:
                            from ffnc import io

                            io.save(self.model, _best_path(self.checkpoint))
                self.history.append(epoch, logs)
                self.done = epoch
                for cb in self.callbacks:
                    if hasattr(cb, "on_epoch_end") and cb.on_epoch_end(epoch, dict(logs)):
                        stop = True
                stop = stop or self.stop_requested
                if stop and self.stopper is not None and self.stopper.wait > \
                        self.stopper.patience:
                    self.history.stopped_early = True
                    self.finished = True
                    self._restore_best()
                progress.update(epoch, epochs, logs, time.perf_counter() - tic)
                if self.checkpoint is not None:
                    self._save()
                if stop:
                    break
            if self.done >= epochs and not self.finished and self.stopper is not None:
                self._restore_best()
            if profile_steps and self.history.partial is None:
                self.history.profile = self._profile(profile_steps)
        finally:
            ctrl_c.uninstall()
            progress.close()
            # The model keeps its own copy of the weights, so the plan's memory can go.
            self.model.bind(page_backed_copy(self.arena))
        if self.history.partial is not None and verbose:
            p = self.history.partial
            print(f"fit: interrupted in epoch {p['epoch']} after {p['steps']} of "
                  f"{p['steps_per_epoch']} steps; the model keeps the weights of the last step",
                  file=sys.stderr, flush=True)
        if self.stopper is not None:
            self.history.best_epoch = self.stopper.best_epoch
        for cb in self.callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self.history)
        return self.history

    def _profile(self, steps: int) -> PlanProfile:
        """Plan.profile over the first batch of the (unshuffled) data, `steps` steps, on a
        copy of the training state: the arenas they change and the step counter are put
        back after them."""
        plan = self.plan
        arenas = [plan.param_arena, plan.grad_arena, *plan.optimizer_state().values()]
        saved = [a.copy() for a in arenas]
        step = plan.step
        rows = min(self.batch, self.rows)
        feed = _feed(self.model, [a[:rows] for a in self.xs], self.target, self.y[:rows])
        try:
            return plan.profile(feed, steps)
        finally:
            for arena, copy in zip(arenas, saved, strict=True):
                np.copyto(arena, copy)
            plan.step = step

    def _interrupted(self, epoch: int, records: np.ndarray) -> None:
        """Ctrl-C stopped epoch `epoch` after len(records) steps: the model keeps the weights
        of the last completed step, the history notes the partial epoch. The checkpoint file,
        if any, keeps the end of the last whole epoch, so resuming repeats this one and ends
        as the uninterrupted run would."""
        steps = len(records)
        if steps:
            self._check_finite(epoch, records)
        partial: dict[str, Any] = {"epoch": epoch, "steps": steps,
                                   "steps_per_epoch": self.steps}
        if steps:
            weights = self.weights[:steps] / self.weights[:steps].sum()
            partial.update(zip(["loss", *self.metrics], (float(v) for v in weights @ records),
                               strict=True))
        self.history.interrupted = True
        self.history.partial = partial

    def _restore_best(self) -> None:
        if self.best is not None and self.stopper.best_epoch is not None:
            np.copyto(self.arena, self.best)


def _describe(optimizer: Any) -> str:
    from ffnc import io

    cfg = io.optimizer_config(optimizer)
    name = cfg.pop("class")
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ")"


__all__ = ["ADVICE", "Callback", "EarlyStopping", "History", "LambdaCallback", "METRICS",
           "OPTIMIZER_NAMES", "TrainingDiverged", "evaluate", "fit", "make_optimizer",
           "predict"]
