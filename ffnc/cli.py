"""The `ffnc` command: train, evaluate, predict, diagnose and inspect models.

    ffnc train                       # a default MLP on the shipped digits, prints accuracy
    ffnc train --data my.csv --hidden 64,32 --epochs 50 --json
    ffnc evaluate ffnc-digits.safetensors
    ffnc predict ffnc-digits.safetensors my.npz --output predictions.npy
    ffnc diagnose --optimizer sgd --lr 5
    ffnc info ffnc-digits.safetensors

User mistakes (a missing file, a bad flag value, data that does not fit the model) print one
line "ffnc: error: ..." and exit with status 2; set FFNC_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_CHECKPOINT = "ffnc-digits.safetensors"
DEFAULT_HIDDEN = "256,128"
DEFAULT_EPOCHS = 30
DEFAULT_BATCH = 32
DEFAULT_LR = {"adam": 2e-3, "adamw": 2e-3}


class UsageError(Exception):
    """A user mistake: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors raised as UsageError, so they are reported like every
    other mistake (one line, exit status 2) instead of the usage text and a SystemExit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


# ---- data ---------------------------------------------------------------------------------

def _load_data(path: str | None, args: argparse.Namespace, labels: bool = True
               ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(x, y, description) from --data (or the shipped digits, scaled to [0, 1])."""
    from ffnc import datasets

    dtype = getattr(args, "dtype", "float32")
    if path is None:
        x, y = datasets.load_digits(dtype=dtype, normalize=True)
        return x, y, "digits (shipped, UCI, 1797 images 8x8, scaled to [0, 1])"
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        x, y = datasets.load_npz(path, args.x_key, args.y_key if labels else None, dtype=dtype)
    elif ext in (".csv", ".txt", ".tsv"):
        delimiter = "\t" if ext == ".tsv" else ","
        column: Any = args.label_column
        if isinstance(column, str) and column.lstrip("-").isdigit():
            column = int(column)
        x, y = datasets.load_csv(path, column if labels else None, delimiter=delimiter,
                                 dtype=dtype)
    else:
        raise UsageError(f"--data {path}: use a .npz (arrays x and y) or .csv file")
    return x, y, path


def _digits_split(args: argparse.Namespace, path: str | None):
    from ffnc import datasets

    x, y, what = _load_data(path, args)
    stratify = y is not None and y.dtype == np.int64
    x_train, x_test, y_train, y_test = datasets.train_test_split(
        x, y, test_fraction=args.test_fraction, seed=args.split_seed, stratify=stratify)
    return x_train, x_test, y_train, y_test, what


# ---- train --------------------------------------------------------------------------------

def _hidden(text: str) -> list[int]:
    if text.strip() in ("", "none"):
        return []
    try:
        sizes = [int(t) for t in text.split(",")]
    except ValueError:
        raise UsageError(f"--hidden must be comma-separated sizes like 128,64, got {text!r}") \
            from None
    if any(s < 1 for s in sizes):
        raise UsageError(f"--hidden sizes must be >= 1, got {text!r}")
    return sizes


def _default_loss(y: np.ndarray) -> str:
    return "softmax_cross_entropy" if y.dtype == np.int64 else "mse"


def build_model(input_dim: int, outputs: int, hidden: Sequence[int], activation: str,
                loss: str, dtype: str, seed: int) -> Any:
    """The CLI's MLP: Dense layers of `hidden` sizes with `activation`, a linear output."""
    from ffnc import nn

    layers = [nn.Dense(h, activation=activation) for h in hidden] + [nn.Dense(outputs)]
    return nn.Sequential(layers, input_shape=(input_dim,), dtype=dtype, seed=seed, loss=loss)


def _outputs_for(loss: str, y: np.ndarray) -> int:
    if loss == "softmax_cross_entropy":
        if y.dtype != np.int64:
            raise UsageError("--loss softmax_cross_entropy needs integer class labels")
        return int(y.max()) + 1
    if y.dtype == np.int64:
        raise UsageError(f"--loss {loss} needs float targets; the data has integer labels "
                         f"(use --loss softmax_cross_entropy)")
    return y.shape[1] if y.ndim == 2 else 1


def _optimizer(args: argparse.Namespace) -> Any:
    from ffnc import train

    lr = args.lr if args.lr is not None else DEFAULT_LR.get(args.optimizer)
    return train.make_optimizer(args.optimizer, lr)


def _check_plot_available(path: str | None) -> None:
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError('--plot needs matplotlib: pip install "ffnc[plot]"') from None


def _plot(history: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history.history if not k.startswith("val_") and k != "lr"]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(history.epoch, history.history[key], label=f"train {key}")
        if f"val_{key}" in history.history:
            ax.plot(history.epoch, history.history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _data_parallel(args: argparse.Namespace) -> Any:
    """The ffnc.distributed.DataParallel of `ffnc train --distributed` (None without it)."""
    if not args.distributed:
        return None
    from ffnc import distributed

    try:
        group = distributed.DataParallel()
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    if group.size == 1 and not distributed.launched_by_mpi():
        print("ffnc: --distributed without mpiexec trains in this one process; start N with "
              "mpiexec -n N ffnc train --distributed ...", file=sys.stderr)
    return group


def cmd_train(args: argparse.Namespace) -> int:
    import ffnc
    from ffnc import io, optim, train
    from ffnc._threads import MAX_THREADS

    _check_plot_available(args.plot)
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise UsageError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
    if args.profile is not None and args.profile < 1:
        raise UsageError(f"--profile takes a number of steps >= 1, got {args.profile}")
    if args.profile and args.distributed:
        raise UsageError("--profile times the plan of one process; not with --distributed")
    x_train, x_test, y_train, y_test, what = _digits_split(args, args.data)
    if y_train is None:
        raise UsageError("training data needs targets")
    loss = args.loss or _default_loss(y_train)
    outputs = _outputs_for(loss, y_train)
    if loss == "softmax_cross_entropy":
        outputs = max(outputs, int(y_test.max()) + 1)
    model = build_model(x_train.shape[1], outputs, _hidden(args.hidden), args.activation, loss,
                        args.dtype, args.seed)
    optimizer = _optimizer(args)
    verbose = 0 if args.quiet else 1
    group = _data_parallel(args)  # None without --distributed
    if not args.json and not args.quiet and (group is None or group.is_root):
        print(f"ffnc {ffnc.__version__}: training {_arch(model)} on {what}: "
              f"{len(y_train)} training rows, {len(y_test)} test rows", flush=True)
    threads = args.threads
    schedule = None
    if not 0 <= args.validation_split < 1:
        raise UsageError(f"--validation-split must be in [0, 1), got {args.validation_split}")
    if args.schedule == "cosine" and args.epochs > 0:
        rows = len(y_train) - int(round(args.validation_split * len(y_train)))
        steps = -(-rows // args.batch_size) if args.batch_size and args.batch_size > 0 else 1
        if steps * args.epochs >= 2**63:
            raise UsageError(f"--epochs {args.epochs}: {steps} steps per epoch make more steps "
                             f"than a schedule counts (2**63)")
        schedule = optim.CosineLR(total_steps=max(steps * args.epochs, 1))
    tic = time.perf_counter()
    history = train.fit(model, x_train, y_train, optimizer=optimizer, epochs=args.epochs,
                        batch_size=args.batch_size or None, seed=args.seed, verbose=verbose,
                        threads=threads, validation_split=args.validation_split,
                        schedule=schedule, distributed=group or False,
                        profile=args.profile or 0)
    seconds = time.perf_counter() - tic
    if group is not None and not group.is_root:
        return 0  # rank 0 evaluates, saves and reports
    if history.interrupted:
        # Ctrl-C: keep what was trained (the weights of the last completed step) and exit as
        # an interrupted program does; evaluation and the plot are skipped.
        io.save(model, args.output, optimizer=optimizer)
        p = history.partial
        print(f"ffnc: interrupted in epoch {p['epoch']} after {p['steps']} of "
              f"{p['steps_per_epoch']} steps ({len(history.epoch)} whole epochs); the model "
              f"was saved to {os.path.abspath(args.output)}", file=sys.stderr)
        return 130
    metrics = ["accuracy"] if loss in ("softmax_cross_entropy", "bce") else (
        ["mae"] if loss in ("mse", "l1") else [])
    result = train.evaluate(model, x_test, y_test, metrics=metrics)
    output = args.output
    io.save(model, output, optimizer=optimizer)
    if args.plot:
        _plot(history, args.plot)
    summary = {"test_accuracy": result.get("accuracy"), "test_loss": result["loss"],
               "test_mae": result.get("mae"), "train_loss": history.history["loss"][-1]
               if history.epoch else None, "epochs": len(history.epoch),
               "seconds": round(seconds, 3), "checkpoint": os.path.abspath(output),
               "data": what, "model": _arch(model), "parameters": model.n_parameters,
               "optimizer": io.optimizer_config(optimizer), "schedule": args.schedule,
               "batch_size": args.batch_size,
               "seed": args.seed, "threads": threads or ffnc.get_num_threads()}
    if history.profile is not None:
        summary["profile"] = _profile_summary(history.profile)
    if args.json:
        print(json.dumps(summary))
        return 0
    if "accuracy" in result:
        print(f"test accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f}, "
              f"{len(y_test)} rows)")
    else:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result.items())
        print(f"test {shown}  ({len(y_test)} rows)")
    print(f"trained {len(history.epoch)} epochs in {seconds:.1f} s; checkpoint saved to "
          f"{os.path.abspath(output)}")
    if args.plot:
        print(f"training curves saved to {os.path.abspath(args.plot)}")
    if history.profile is not None:
        print(f"the training step, instruction by instruction:\n{history.profile}")
    return 0


def _profile_summary(profile: Any) -> dict[str, Any]:
    """A PlanProfile as JSON: per instruction its opcode, what it computes, microseconds per
    step and GFLOP/s (null where it computes no matrix product)."""
    rates = profile.gflops
    return {"steps": profile.steps, "batch": profile.batch,
            "us_per_step": round(profile.total * 1e6, 3),
            "instructions": [{"opcode": op, "value": note, "us_per_step": round(t * 1e6, 3),
                              "gflops": None if math.isnan(rate) else round(float(rate), 2)}
                             for op, note, t, rate in zip(profile.opcodes, profile.notes,
                                                          profile.seconds, rates, strict=True)]}


def _arch(model: Any) -> str:
    sizes = [str(model.input_shape[0])] + [str(layer.get_config().get("units", "?"))
                                           for layer in model.layers]
    acts = {layer.get_config().get("activation") for layer in model.layers[:-1]}
    act = "/".join(sorted(a for a in acts if a)) or "linear"
    return f"MLP {'-'.join(sizes)} ({act})" if hasattr(model, "input_shape") else repr(model)


# ---- evaluate, predict, info, diagnose ----------------------------------------------------

def _load_model(path: str) -> Any:
    from ffnc import io

    return io.load(path)


def _eval_data(args: argparse.Namespace, labels: bool):
    """The data for evaluate/predict: --data/DATA or the digits test split."""
    if args.data_file is None:
        _, x_test, _, y_test, what = _digits_split(args, None)
        return x_test, y_test, f"{what}, test split"
    x, y, what = _load_data(args.data_file, args, labels)
    return x, y, what


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ffnc import train

    model = _load_model(args.checkpoint)
    args.dtype = model.dtype.name
    x, y, what = _eval_data(args, True)
    result = train.evaluate(model, x, y)
    if args.json:
        print(json.dumps({**result, "rows": len(y), "data": what}))
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.items())
        print(f"{what}: {shown} ({len(y)} rows)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ffnc import train

    model = _load_model(args.checkpoint)
    args.dtype = model.dtype.name
    x, _, _ = _eval_data(args, False)
    pred = train.predict(model, x, raw=args.raw)
    classes = model.loss is not None and model.loss.name == "softmax_cross_entropy" \
        and not args.raw
    if args.output:
        ext = os.path.splitext(args.output)[1].lower()
        if ext == ".npy":
            np.save(args.output, pred)
        elif ext == ".csv":
            np.savetxt(args.output, pred, delimiter=",", fmt="%.7g")
        else:
            raise UsageError(f"--output {args.output}: use a .npy or .csv file")
        print(f"wrote {pred.shape[0]} predictions to {args.output}")
        return 0
    if args.json:
        out = {"predictions": pred.tolist()}
        if classes:
            out["classes"] = pred.argmax(axis=1).tolist()
        print(json.dumps(out))
        return 0
    for row in pred:
        if classes:
            print(f"{int(np.argmax(row))}\t{float(np.max(row)):.4f}")
        else:
            print("\t".join(f"{v:.6g}" for v in np.atleast_1d(row)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ffnc import io

    meta = io.info(args.checkpoint)
    if args.json:
        print(json.dumps(meta))
        return 0
    model = meta["model"] or {}
    print(f"{meta['path']}: ffnc checkpoint v1, {meta['bytes']:,} bytes")
    print(f"model: {model.get('class')} {model.get('dtype')}, {meta['parameters']:,} "
          f"parameters, loss {json.dumps(model.get('loss'))}")
    if "input_shape" in model:
        print(f"  input shape {model['input_shape']}")
    layers = model.get("layers")
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        if not isinstance(layer, dict):  # a config only the model builder checks
            print(f"  layer {i}: {json.dumps(layer)}")
            continue
        desc = ", ".join(f"{k}={v}" for k, v in layer.items() if k != "class" and v is not None)
        print(f"  layer {i}: {layer.get('class')}({desc})")
    for name, (dtype, shape) in meta["tensors"].items():
        print(f"  tensor {name}: {dtype} {shape}")
    if meta["optimizer"]:
        print(f"optimizer: {json.dumps(meta['optimizer'])}")
    if meta["training"]:
        t = meta["training"]
        print(f"training state: epoch {t.get('epoch')}"
              f"{' (finished)' if t.get('finished') else ''}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ffnc.diagnosis import diagnose

    if args.checkpoint:
        model = _load_model(args.checkpoint)
        args.dtype = model.dtype.name
        x_train, _, y_train, _, what = _digits_split(args, args.data)
    else:
        x_train, _, y_train, _, what = _digits_split(args, args.data)
        loss = args.loss or _default_loss(y_train)
        model = build_model(x_train.shape[1], _outputs_for(loss, y_train),
                            _hidden(args.hidden), args.activation, loss, args.dtype, args.seed)
    report = diagnose(model, x_train, y_train, optimizer=args.optimizer, lr=args.lr,
                      rows=args.rows, seed=args.seed)
    if args.json:
        print(json.dumps({**report.to_dict(), "data": what}))
    else:
        print(report)
    return 0


# ---- the parser ---------------------------------------------------------------------------

def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x-key", default="x", help="array of inputs in an .npz (default: x)")
    p.add_argument("--y-key", default="y", help="array of targets in an .npz (default: y)")
    p.add_argument("--label-column", default="-1",
                   help="target column of a .csv: index or header name (default: -1, the last)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of the rows held out for testing (default: 0.2)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the train/test split (default: 0)")


def _model_options(p: argparse.ArgumentParser) -> None:
    from ffnc.nn.layers import ACTIVATION_NAMES
    from ffnc.nn.losses import LOSSES

    p.add_argument("--hidden", default=DEFAULT_HIDDEN,
                   help=f"hidden layer sizes, comma-separated (default: {DEFAULT_HIDDEN})")
    p.add_argument("--activation", default="relu", choices=ACTIVATION_NAMES,
                   help="hidden activation (default: relu)")
    p.add_argument("--loss", choices=[n for n in LOSSES if n not in ("gaussian_nll", "mdn")],
                   help="default: softmax_cross_entropy for integer labels, else mse")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initialization and the shuffling (default: 0)")


def make_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ffnc command."""
    from ffnc import train

    parser = _Parser(
        prog="ffnc", description="Train feedforward networks on CPUs with ffnc.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train an MLP (default: on the shipped digits)",
                       description="Trains an MLP and saves a checkpoint. With no arguments: "
                       "a 64-256-128-10 ReLU network, Adam (lr 2e-3, cosine decay), 30 "
                       "epochs of batches of 32 on the shipped UCI digits (stratified 80/20 "
                       "split), saved to " + DEFAULT_CHECKPOINT + ".")
    p.add_argument("--data", help="a .npz (x, y) or .csv (last column: label) file; default: "
                   "the shipped digits")
    _data_options(p)
    _model_options(p)
    p.add_argument("--optimizer", default="adam", choices=train.OPTIMIZER_NAMES,
                   help="default: adam")
    p.add_argument("--lr", type=float, help="learning rate (default: 2e-3 for adam, "
                   "otherwise the optimizer's default)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning rate: cosine decay to 0 over the run, or constant "
                   "(default: cosine)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                   help=f"default: {DEFAULT_EPOCHS}")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                   help=f"rows per step, 0 for full batch (default: {DEFAULT_BATCH})")
    p.add_argument("--validation-split", type=float, default=0.0,
                   help="share of the training rows used for validation (default: 0)")
    p.add_argument("--threads", type=int, help="threads (default: ffnc's setting)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of an MPI job, started with mpiexec -n N "
                        "ffnc train --distributed (needs ffnc[mpi]); --batch-size is the "
                        "global batch; threads default to the cores per rank")
    p.add_argument("--output", "-o", default=DEFAULT_CHECKPOINT,
                   help=f"checkpoint path (default: ./{DEFAULT_CHECKPOINT})")
    p.add_argument("--json", action="store_true", help="print one JSON summary")
    p.add_argument("--plot", metavar="PNG", help="save training curves (needs matplotlib)")
    p.add_argument("--profile", type=int, nargs="?", const=20, metavar="STEPS",
                   help="after training, time each instruction of the training plan over "
                        "STEPS steps (default 20) and report where a step's time goes")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    for name, func, text in (("evaluate", cmd_evaluate, "loss and accuracy of a checkpoint"),
                             ("predict", cmd_predict, "predictions of a checkpoint")):
        p = sub.add_parser(name, help=text, description=f"The {text} on DATA (default: the "
                           f"test split of the shipped digits).")
        p.add_argument("checkpoint", help="a .safetensors checkpoint")
        p.add_argument("data_file", nargs="?", metavar="DATA", help=".npz or .csv")
        _data_options(p)
        p.add_argument("--json", action="store_true")
        if name == "predict":
            p.add_argument("--output", "-o", help="write predictions to a .npy or .csv file")
            p.add_argument("--raw", action="store_true",
                           help="raw outputs instead of probabilities")
        p.set_defaults(func=func)

    p = sub.add_parser("diagnose", help="diagnose gradient descent (learning rate, L)",
                       description="Measures update/parameter ratios, probes the loss, "
                       "estimates the Lipschitz constant L of the gradient and proposes a "
                       "learning rate, for a checkpoint or a fresh MLP.")
    p.add_argument("checkpoint", nargs="?", help="a checkpoint (default: a fresh MLP)")
    p.add_argument("--data", help=".npz or .csv (default: the shipped digits)")
    _data_options(p)
    _model_options(p)
    p.add_argument("--optimizer", default="sgd", choices=train.OPTIMIZER_NAMES)
    p.add_argument("--lr", type=float, help="learning rate to diagnose")
    p.add_argument("--rows", type=int, help="rows in the probe batch (default: up to 4096)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ffnc command; returns the exit status."""
    parser = make_parser()
    from ffnc.train import TrainingDiverged

    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help: printed; the status, not an exception
            return exc.code if isinstance(exc.code, int) else 0
        if args.command is None:
            parser.print_help()
            return 2
        return args.func(args)
    except TrainingDiverged as exc:
        print(f"ffnc: {exc}", file=sys.stderr)
        return 1
    except (UsageError, ValueError, TypeError, OSError, MemoryError) as exc:
        if os.environ.get("FFNC_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        print(f"ffnc: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ffnc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
