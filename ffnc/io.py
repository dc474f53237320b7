"""Checkpoints: models (and optimizer and training state) in safetensors files, format v1.

    >>> ffnc.io.save(model, "model.safetensors")
    >>> model = ffnc.io.load("model.safetensors")

A checkpoint is a safetensors file (https://huggingface.co/docs/safetensors) read and written
with the `safetensors` package: plain tensors and a JSON header, so loading one never runs
code. Format v1, shared with the C model API (ffnc_model_save / ffnc_model_load):

- every model parameter under its name ("0.weight", "0.bias", ...), in the model's dtype;
- optionally the optimizer state: "optimizer.<buffer>" ("optimizer.velocity",
  "optimizer.m", "optimizer.v", ...), 1-D, the size of the parameter arena, in
  named_parameters() order;
- "__metadata__": "format" = "ffnc", "format_version" = "1", "model" = the JSON of
  model.get_config(), optionally "optimizer" = JSON {"class", hyper-parameters..., "step"} and
  "training" = JSON resume state written by ffnc.train.fit.

Writes are atomic: the bytes go to a temporary file in the target's directory, which is
flushed to disk (fsync), renamed over the target (os.replace) and the directory synced, so a
crash leaves the old file or the complete new one, never a partial file.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Any, NamedTuple

import numpy as np

FORMAT = "ffnc"
FORMAT_VERSION = "1"
_MAX_HEADER = 100_000_000
_DTYPES = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}

class CheckpointError(ValueError):
    """A file that is not a valid ffnc checkpoint (names the file and the problem)."""


class Checkpoint(NamedTuple):
    """What load_checkpoint returns."""

    model: Any
    """The model (ffnc.nn), parameters loaded."""
    optimizer: Any
    """The optimizer (ffnc.optim) rebuilt from its config, or None."""
    step: int
    """The optimizer's step counter (updates made), 0 without an optimizer."""
    optimizer_state: dict[str, np.ndarray]
    """The optimizer buffers by name ("velocity", "m", "v", ...), each 1-D over the arena."""
    training: dict[str, Any] | None
    """The training state fit() saved for resuming, or None."""


# ---- optimizers as configs ----------------------------------------------------------------

def optimizer_config(optimizer: Any) -> dict[str, Any]:
    """The JSON-serialisable config of an ffnc.optim optimizer ({"class", settings})."""
    if not hasattr(optimizer, "get_config"):
        raise TypeError(f"optimizer must be an ffnc.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    return dict(optimizer.get_config())


# ---- writing ------------------------------------------------------------------------------

def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # a platform without directory handles (Windows): the rename is what we have
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (temporary file in the same directory, fsync,
    os.replace, fsync of the directory)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _model_check(model: Any) -> None:
    for attr in ("get_config", "named_parameters", "flat"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be an ffnc.nn model (Sequential or Model), got "
                            f"{type(model).__name__}")


def to_bytes(model: Any, *, optimizer: Any = None, optimizer_state: dict | None = None,
             step: int | None = None, training: dict | None = None) -> bytes:
    """The checkpoint bytes save() writes (see save)."""
    from safetensors.numpy import save as st_save

    _model_check(model)
    tensors: dict[str, np.ndarray] = {}
    for name, value in model.named_parameters().items():
        if name.startswith("optimizer.") or name == "__metadata__":
            raise ValueError(f"parameter name {name!r} collides with the checkpoint format")
        tensors[name] = np.ascontiguousarray(value)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "model": json.dumps(model.get_config())}
    if optimizer is not None:
        cfg = optimizer_config(optimizer) if not isinstance(optimizer, dict) else dict(optimizer)
        if step is not None:
            cfg["step"] = int(step)
        size = model.flat.size
        for buffer, value in (optimizer_state or {}).items():
            value = np.asarray(value)
            if value.dtype != model.dtype or value.shape != (size,):
                raise ValueError(f"optimizer state {buffer!r} must be {model.dtype.name} of "
                                 f"shape ({size},) (the parameter arena), got "
                                 f"{value.dtype.name} {value.shape}")
            tensors[f"optimizer.{buffer}"] = np.ascontiguousarray(value)
        metadata["optimizer"] = json.dumps(cfg)
    elif optimizer_state:
        raise ValueError("optimizer_state needs the optimizer it belongs to (optimizer=)")
    if training is not None:
        metadata["training"] = json.dumps(training)
    return st_save(tensors, metadata=metadata)


def save(model: Any, path: str | os.PathLike, *, optimizer: Any = None, plan: Any = None,
         training: dict | None = None) -> None:
    """Saves `model` to `path` (format v1, atomically).

    optimizer: the optimizer (ffnc.optim) to record in the metadata; with
    `plan` (the compiled training plan it runs in) its state buffers and step counter are
    saved too, so training can resume exactly. training: a JSON-serialisable dict stored as
    the "training" metadata (fit's resume state).
    """
    if plan is not None and optimizer is None:
        raise ValueError("plan= saves the optimizer state: pass the optimizer too")
    state, step = {}, None
    if plan is not None:
        state = plan.optimizer_state()
        step = plan.step
    data = to_bytes(model, optimizer=optimizer, optimizer_state=state, step=step,
                    training=training)
    write_atomic(path, data)


# ---- reading ------------------------------------------------------------------------------

def _read_file(path: str | os.PathLike) -> tuple[str, bytes]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    with open(path, "rb") as f:
        return path, f.read()


def _parse(path: str, data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of safetensors bytes, with errors that say what is wrong."""
    from safetensors.numpy import load as st_load

    if len(data) < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({len(data)} bytes; too short "
                              f"for the 8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or n < 2:
        raise CheckpointError(f"{path}: not a safetensors file (header length {n})")
    if 8 + n > len(data):
        raise CheckpointError(f"{path}: truncated (the header needs {n} bytes, the file has "
                              f"{len(data) - 8} after the length)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file (the header is not JSON)") \
            from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (the header is not an object)")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{path}: tensor {name!r} has no valid data_offsets")
        end = max(end, offsets[1])
    if 8 + n + end > len(data):
        raise CheckpointError(f"{path}: truncated (the tensors need {end} bytes of data, the "
                              f"file has {len(data) - 8 - n})")
    try:
        tensors = st_load(data)
    except Exception as exc:  # the safetensors package raises its own SafetensorError
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: __metadata__ is not an object")
    return tensors, metadata


def _metadata_json(path: str, metadata: dict[str, str], key: str, required: bool) -> Any:
    text = metadata.get(key)
    if text is None:
        if required:
            raise CheckpointError(f"{path}: the metadata has no {key!r} entry")
        return None
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: the {key!r} metadata is not valid JSON") from None


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The raw contents of a checkpoint: (tensors by name, metadata with "model",
    "optimizer" and "training" decoded from JSON). Checks the format tag and version."""
    path, data = _read_file(path)
    tensors, metadata = _parse(path, data)
    if metadata.get("format") != FORMAT:
        found = metadata.get("format")
        raise CheckpointError(f"{path}: not an ffnc checkpoint (metadata format is "
                              f"{found!r}, expected {FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version "
                              f"{metadata.get('format_version')!r} is not supported by this "
                              f"ffnc (it reads version {FORMAT_VERSION})")
    decoded: dict[str, Any] = dict(metadata)
    decoded["model"] = _metadata_json(path, metadata, "model", True)
    decoded["optimizer"] = _metadata_json(path, metadata, "optimizer", False)
    decoded["training"] = _metadata_json(path, metadata, "training", False)
    return tensors, decoded


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The model, optimizer config and state, and training state of a checkpoint.

    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError) for a file
    that is not a valid ffnc checkpoint: truncated, not safetensors, another format or
    version, a model config ffnc cannot build, tensors missing, unexpected or with shapes
    or dtypes that do not match the architecture.
    """
    from ffnc import nn

    path = os.fspath(path)
    tensors, meta = read(path)
    try:
        model = nn.from_config(meta["model"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: the model config cannot be built: {exc}") from None
    params = model.named_parameters()
    for name, expected in params.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: tensor {name!r} of the model is missing")
        got = tensors[name]
        if got.dtype != expected.dtype:
            raise CheckpointError(f"{path}: tensor {name!r} is {got.dtype.name}, the model "
                                  f"({meta['model'].get('dtype')}) needs {expected.dtype.name}")
        if got.shape != expected.shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {got.shape}, the "
                                  f"architecture needs {expected.shape}")
    optimizer_cfg = meta["optimizer"]
    optimizer, step = None, 0
    if optimizer_cfg is not None:
        from ffnc import optim

        if not isinstance(optimizer_cfg, dict):
            raise CheckpointError(f"{path}: the optimizer metadata is not a JSON object")
        try:
            optimizer = optim.from_config(optimizer_cfg)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: the optimizer config cannot be built: {exc}") \
                from None
        step = optimizer_cfg.get("step", 0)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise CheckpointError(f"{path}: the optimizer step {step!r} is not an int >= 0")
    state: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if name in params:
            continue
        if not name.startswith("optimizer."):
            raise CheckpointError(f"{path}: unexpected tensor {name!r} (not a parameter of "
                                  f"the model nor an optimizer buffer)")
        if optimizer is None:
            raise CheckpointError(f"{path}: optimizer tensor {name!r} without optimizer "
                                  f"metadata")
        if value.dtype != model.dtype or value.shape != (model.flat.size,):
            raise CheckpointError(f"{path}: optimizer tensor {name!r} has {value.dtype.name} "
                                  f"{value.shape}, expected {model.dtype.name} "
                                  f"({model.flat.size},)")
        state[name[len("optimizer."):]] = value
    if optimizer is not None:
        expected = set(optimizer.state_names)
        if state and set(state) != expected:
            raise CheckpointError(f"{path}: optimizer buffers {sorted(state)} do not match "
                                  f"{optimizer_cfg['class']}'s {sorted(expected)}")
    model.load_state_dict({name: tensors[name] for name in params})
    return Checkpoint(model, optimizer, step, state, meta["training"])


def load(path: str | os.PathLike) -> Any:
    """The model saved at `path` (see load_checkpoint for the errors)."""
    return load_checkpoint(path).model


def info(path: str | os.PathLike) -> dict[str, Any]:
    """A description of a checkpoint without building the model: file size, model config,
    tensors (name -> (dtype, shape)), optimizer config and training state."""
    path = os.fspath(path)
    tensors, meta = read(path)
    return {"path": path, "bytes": os.path.getsize(path), "model": meta["model"],
            "tensors": {k: (v.dtype.name, list(v.shape)) for k, v in tensors.items()},
            "parameters": int(sum(v.size for k, v in tensors.items()
                                  if not k.startswith("optimizer."))),
            "optimizer": meta["optimizer"], "training": meta["training"]}


__all__ = ["Checkpoint", "CheckpointError", "FORMAT", "FORMAT_VERSION", "info", "load",
           "load_checkpoint", "optimizer_config", "read", "save", "to_bytes", "write_atomic"]
