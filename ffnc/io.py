"""Checkpoints: models (and optimizer and training state) in safetensors files, format v1.

    >>> ffnc.io.save(model, "model.safetensors")
    >>> model = ffnc.io.load("model.safetensors")

A checkpoint is a safetensors file (https://huggingface.co/docs/safetensors): plain tensors
and a JSON header, so loading one never runs code. It is written with the `safetensors`
package and read by a strict reader here, which checks the header against the file before
reading any data and never allocates much more than the file's size, whatever the file
claims. Format v1, shared with the C model API (ffnc_model_save / ffnc_model_load):

- every model parameter under its name ("0.weight", "0.bias", ...), in the model's dtype;
- optionally the optimizer state: "optimizer.<buffer>" ("optimizer.velocity",
  "optimizer.m", "optimizer.v", ...), 1-D, the size of the parameter arena, in
  named_parameters() order;
- "__metadata__": "format" = "ffnc", "format_version" = "1", "model" = the JSON of
  model.get_config(), optionally "optimizer" = JSON {"class", hyper-parameters..., "step"} and
  "training" = JSON resume state written by ffnc.train.fit.

Writes are atomic: the bytes go to a temporary file in the target's directory, which is
flushed to disk (fsync), renamed over the target (os.replace) and the directory synced, so a
crash leaves the old file or the complete new one, never a partial file. The temporary file
of a writer killed mid-write (".<name>.ffnc-<random>.tmp") is removed by the next write to
the same file (on POSIX systems, where writers lock their temporary files).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from typing import Any, BinaryIO, NamedTuple

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

FORMAT = "ffnc"
FORMAT_VERSION = "1"
_MAX_HEADER = 100_000_000

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

# A write goes through ".<target name>.ffnc-<random>.tmp" in the target's directory, locked
# (flock) by its writer until renamed. A writer killed before the rename leaves its temporary
# file unlocked: the next write to the same target removes it.
_TEMP_TAG = ".ffnc-"
_TEMP_SUFFIX = ".tmp"


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


def _lock(fd: int, wait: bool) -> bool:
    """An exclusive flock on fd: False when another process holds one and wait is False.
    Without locks (Windows, a file system refusing them) writers go on unlocked and cleanups
    remove nothing."""
    if fcntl is None:
        return wait
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return wait
    return True


def _remove_stale_temps(directory: str, target: str) -> None:
    """Removes the temporary files of earlier writes to `target` whose writer died (their lock
    is free); a live writer's file is locked and left alone."""
    if fcntl is None:
        return
    prefix = f".{target}{_TEMP_TAG}"
    try:
        names = [e.name for e in os.scandir(directory)
                 if e.name.startswith(prefix) and e.name.endswith(_TEMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        tmp = os.path.join(directory, name)
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue  # gone meanwhile (renamed by its writer), or not ours to open
        try:
            # the name must still be the file locked: its writer may have renamed it
            if _lock(fd, wait=False) and os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                os.unlink(tmp)
        except OSError:
            pass
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically: to a temporary file in the same directory, flushed
    to disk (fsync), renamed over `path` (os.replace), then the directory synced. Readers see
    the old file or the new one, never a mix, even if the process is killed; temporary files
    left by killed writers are removed by the next write to `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    target = os.path.basename(path)
    _remove_stale_temps(directory, target)
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{target}{_TEMP_TAG}", suffix=_TEMP_SUFFIX,
                                   dir=directory)
        # Another writer's cleanup may have taken the file between its creation and the lock;
        # once locked it stays.
        if _lock(fd, wait=True) and os.fstat(fd).st_nlink > 0:
            break
        os.close(fd)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
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
    finally:
        os.close(fd)  # the lock goes with it, after the rename
    _fsync_dir(directory)


def _model_check(model: Any) -> None:
    for attr in ("get_config", "named_parameters", "flat"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be an ffnc.nn model (Sequential or Model), got "
                            f"{type(model).__name__}")


def to_bytes(model: Any, *, optimizer: Any = None, optimizer_state: dict | None = None,
             step: int | None = None, training: dict | None = None) -> bytes:
    """The checkpoint bytes save() writes (see save): the same arguments give the same
    bytes."""
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
        if not isinstance(training, dict):
            raise TypeError(f"training must be a dict or None, got {type(training).__name__}")
        try:
            metadata["training"] = json.dumps(training)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"training must be JSON-serialisable: {exc}") from None
    return _safetensors_bytes(tensors, metadata)


def _safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file of float32/float64 tensors, in the given order, with compact JSON
    (metadata sorted), the header padded with spaces so the data starts at a multiple of 8
    bytes. Deterministic, unlike the safetensors package (its metadata order varies)."""
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name, value in tensors.items():
        value = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        header[name] = {"dtype": {"float32": "F32", "float64": "F64"}[value.dtype.name],
                        "shape": list(value.shape),
                        "data_offsets": [offset, offset + value.nbytes]}
        chunks.append(value.tobytes())
        offset += value.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def save(model: Any, path: str | os.PathLike, *, optimizer: Any = None, plan: Any = None,
         training: dict | None = None) -> None:
    """Saves `model` to `path` (format v1, atomically).

    optimizer: the optimizer (ffnc.optim) to record in the metadata; with
    `plan` (the compiled training plan it runs in) its state buffers and step counter are
    saved too, so training can resume exactly. training: a JSON-serialisable dict stored as
    the "training" metadata (fit's resume state).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
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
# The reader trusts nothing in the file: it checks the header against the file's size before
# reading any tensor data, and every tensor's dtype, shape and byte range before making an
# array of it, so it never allocates more than the file's own size, whatever the header
# claims. Checks as strict as the C reader's (see ffnc.h): no duplicate keys, no unknown
# entry fields, ranges that tile the data exactly (no overlap, no hole, no trailing byte).

# safetensors dtypes numpy holds (little-endian in the file); BF16 and the F8s have no numpy
# twin and are reported as unsupported
_ST_DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2",
              "F16": "<f2", "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8",
              "I64": "<i8", "F64": "<f8"}
_ST_UNSUPPORTED = ("BF16", "F8_E5M2", "F8_E4M3")
_MAX_DIMS = 32  # numpy's limit on every platform it supports


class _Entry(NamedTuple):
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return d


def _json(path: str, text: str | bytes, what: str, invalid: str = "is not valid JSON") -> Any:
    """JSON decoded, or a CheckpointError saying why `what` is not."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        problem = f"{invalid} (not UTF-8)"
    except _DuplicateKey as key:
        problem = f"has the key {str(key)!r:.100} twice"
    except RecursionError:
        problem = "nests too deeply"
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        problem = f"{invalid} ({exc})"
    raise CheckpointError(f"{path}: {what} {problem}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _entries(path: str, header: Any) -> tuple[list[_Entry], dict[str, str]]:
    """The tensors of a safetensors header, checked and sorted by offset, and its metadata."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (the header is not a JSON "
                              f"object)")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    entries = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{where}: an entry must have exactly dtype, shape and "
                                  f"data_offsets, got {entry!r:.200}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            raise CheckpointError(f"{where}: the dtype must be a string, got {dtype!r:.100}")
        if dtype in _ST_UNSUPPORTED:
            raise CheckpointError(f"{where}: dtype {dtype} is not supported (numpy has no "
                                  f"such type)")
        if dtype not in _ST_DTYPES:
            raise CheckpointError(f"{where}: unknown dtype {dtype!r:.40}")
        if not (isinstance(shape, list) and len(shape) <= _MAX_DIMS
                and all(_is_int(d) and d >= 0 for d in shape)):
            raise CheckpointError(f"{where}: the shape must be a list of at most {_MAX_DIMS} "
                                  f"integers >= 0, got {shape!r:.200}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(_is_int(o) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise CheckpointError(f"{where}: data_offsets must be [begin, end] with 0 <= begin "
                                  f"<= end, got {offsets!r:.200}")
        npdtype = np.dtype(_ST_DTYPES[dtype])
        nbytes = math.prod(shape) * npdtype.itemsize  # exact: Python integers
        if nbytes != offsets[1] - offsets[0]:
            raise CheckpointError(f"{where}: shape {shape} of {dtype} is {nbytes:,} bytes but "
                                  f"data_offsets {offsets} span {offsets[1] - offsets[0]:,}")
        entries.append(_Entry(name, npdtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e.begin, e.end))
    end = 0
    for e in entries:
        if e.begin != end:
            problem = "overlaps the previous tensor" if e.begin < end else \
                f"leaves a gap of {e.begin - end:,} bytes after the previous tensor"
            raise CheckpointError(f"{path}: tensor {e.name!r} (bytes {e.begin:,} to "
                                  f"{e.end:,}) {problem}")
        end = e.end
    return entries, metadata


def _open(path: str | os.PathLike) -> tuple[str, BinaryIO, int]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a checkpoint file")
    if not os.path.isfile(path):  # also keeps FIFOs and devices (/dev/zero) out
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    f = open(path, "rb")  # noqa: SIM115 (closed by the callers)
    return path, f, os.fstat(f.fileno()).st_size


def _read_exact(path: str, f: BinaryIO, n: int, what: str) -> bytearray:
    buf = bytearray(n)
    got = f.readinto(buf)
    if got != n:  # the file shrank while being read
        raise CheckpointError(f"{path}: truncated ({what}: {got:,} of {n:,} bytes)")
    return buf


def _layout(path: str, f: BinaryIO, size: int) -> tuple[list[_Entry], dict[str, str], int]:
    """The checked header of the open file: (tensors by offset, metadata, data length); the
    file position is then at the data."""
    if size < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({size} bytes; too short for "
                              f"the 8-byte header length)")
    (n,) = struct.unpack("<Q", _read_exact(path, f, 8, "header length"))
    if n < 2 or n > _MAX_HEADER:
        raise CheckpointError(f"{path}: not a safetensors file (header length {n:,}; a "
                              f"header is 2 to {_MAX_HEADER:,} bytes)")
    if n > size - 8:
        raise CheckpointError(f"{path}: truncated (the header needs {n:,} bytes, the file has "
                              f"{size - 8:,} after the length)")
    header = _json(path, bytes(_read_exact(path, f, n, "header")),
                   "not a safetensors file: the header", "is not JSON")
    entries, metadata = _entries(path, header)
    data_len = entries[-1].end if entries else 0
    if 8 + n + data_len > size:
        raise CheckpointError(f"{path}: truncated (the tensors need {data_len:,} bytes of "
                              f"data, the file has {size - 8 - n:,})")
    if 8 + n + data_len < size:
        raise CheckpointError(f"{path}: {size - 8 - n - data_len:,} bytes after the last "
                              f"tensor's data (not a safetensors file, or a damaged one)")
    return entries, metadata, data_len


def _arrays(entries: list[_Entry], data: bytearray) -> dict[str, np.ndarray]:
    """The tensors as writable arrays over `data` (copied where unaligned), native order."""
    tensors = {}
    for e in entries:
        count = (e.end - e.begin) // e.dtype.itemsize
        a = np.frombuffer(data, e.dtype, count, e.begin).reshape(e.shape)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        elif e.begin % e.dtype.alignment:
            a = a.copy()
        tensors[e.name] = a
    return tensors


def _metadata_json(path: str, metadata: dict[str, str], key: str, required: bool) -> Any:
    text = metadata.get(key)
    if text is None:
        if required:
            raise CheckpointError(f"{path}: the metadata has no {key!r} entry")
        return None
    value = _json(path, text, f"the {key!r} metadata")
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: the {key!r} metadata is not a JSON object "
                              f"({type(value).__name__})")
    return value


def _decoded(path: str, metadata: dict[str, str]) -> dict[str, Any]:
    """The metadata with the format checked and "model", "optimizer", "training" decoded."""
    if metadata.get("format") != FORMAT:
        found = metadata.get("format")
        raise CheckpointError(f"{path}: not an ffnc checkpoint (metadata format is "
                              f"{found!r:.100}, expected {FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version "
                              f"{metadata.get('format_version')!r:.100} is not supported by "
                              f"this ffnc (it reads version {FORMAT_VERSION})")
    decoded: dict[str, Any] = dict(metadata)
    decoded["model"] = _metadata_json(path, metadata, "model", True)
    decoded["optimizer"] = _metadata_json(path, metadata, "optimizer", False)
    decoded["training"] = _metadata_json(path, metadata, "training", False)
    return decoded


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The raw contents of a checkpoint: (tensors by name, metadata with "model",
    "optimizer" and "training" decoded from JSON objects). Checks the format tag and
    version."""
    path, f, size = _open(path)
    with f:
        entries, metadata, data_len = _layout(path, f, size)
        decoded = _decoded(path, metadata)
        data = _read_exact(path, f, data_len, "tensor data")
    return _arrays(entries, data), decoded


_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
                 RecursionError)
"""What building a model or optimizer from an arbitrary (JSON) config may raise."""


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The model, optimizer config and state, and training state of a checkpoint.

    Raises FileNotFoundError for a missing file (IsADirectoryError for a directory) and
    CheckpointError (a ValueError) for a file that is not a valid ffnc checkpoint:
    truncated, not safetensors, another format or version, a model config ffnc cannot build
    or that declares more parameters than the file holds, tensors missing, unexpected or
    with shapes or dtypes that do not match the architecture. Never runs code from the file
    and never allocates much more than the file's size.
    """
    from ffnc import nn, optim

    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    tensors, meta = read(path)
    # The model's values come from the file: build it without drawing initial values, and
    # with not many more parameters than the file holds (room for a mismatch to be reported
    # tensor by tensor below; none for a config asking for gigabytes).
    held = sum(v.size for k, v in tensors.items() if not k.startswith("optimizer."))
    try:
        with nn.initializers.skip_draws(2 * held + 2**20):
            model = nn.from_config(meta["model"])
    except _BUILD_ERRORS as exc:
        raise CheckpointError(f"{path}: the model config cannot be built: {exc} (the file "
                              f"holds {held:,} parameter values)") from None
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
        try:
            optimizer = optim.from_config(optimizer_cfg)
        except _BUILD_ERRORS as exc:
            raise CheckpointError(f"{path}: the optimizer config cannot be built: {exc}") \
                from None
        if not isinstance(optimizer, optim.Optimizer):
            raise CheckpointError(f"{path}: the optimizer metadata describes a "
                                  f"{type(optimizer).__name__}, not an optimizer")
        step = optimizer_cfg.get("step", 0)
        if not _is_int(step) or not 0 <= step < 2**63:
            raise CheckpointError(f"{path}: the optimizer step {step!r:.100} is not an integer "
                                  f"in [0, 2**63)")
    state: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if name in params:
            continue
        if not name.startswith("optimizer."):
            raise CheckpointError(f"{path}: unexpected tensor {name!r:.200} (not a parameter "
                                  f"of the model nor an optimizer buffer)")
        if optimizer is None:
            raise CheckpointError(f"{path}: optimizer tensor {name!r:.200} without optimizer "
                                  f"metadata")
        if value.dtype != model.dtype or value.shape != (model.flat.size,):
            raise CheckpointError(f"{path}: optimizer tensor {name!r:.200} has "
                                  f"{value.dtype.name} {value.shape}, expected "
                                  f"{model.dtype.name} ({model.flat.size},)")
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
    """A description of a checkpoint from its header alone (no tensor data is read, no model
    built): file size, model config, tensors (name -> (dtype, shape)), parameter count,
    optimizer config and training state. The same checks as read() on everything but the
    tensor values."""
    path, f, size = _open(path)
    with f:
        entries, metadata, _ = _layout(path, f, size)
    meta = _decoded(path, metadata)
    return {"path": path, "bytes": size, "model": meta["model"],
            "tensors": {e.name: (e.dtype.name, list(e.shape)) for e in entries},
            "parameters": int(sum(math.prod(e.shape) for e in entries
                                  if not e.name.startswith("optimizer."))),
            "optimizer": meta["optimizer"], "training": meta["training"]}


__all__ = ["Checkpoint", "CheckpointError", "FORMAT", "FORMAT_VERSION", "info", "load",
           "load_checkpoint", "optimizer_config", "read", "save", "to_bytes", "write_atomic"]
