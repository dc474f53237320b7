"""Checkpoint loading against hostile files: every truncation, random byte mutations, lying
header lengths, offsets, shapes and dtypes, absurd declared sizes, configs naming unknown
layers, files that are not safetensors at all. Every loader (ffnc.io.load_checkpoint, load,
read, info, the C model API when libffnc is at hand, and the CLI's info and predict) must
accept the file or reject it with a clear error naming the file, never crash, never allocate
much more than the file, and never run code from it.

Every file tried is counted (the total is printed with the fuzz summary at the end of the
session); `pytest --slow` tries SLOW_FACTOR times as many random mutations."""

import contextlib
import ctypes
import io as pyio
import json
import os
import pickle
import struct
import tracemalloc

import numpy as np
import pytest
from conftest import SLOW_FACTOR, fuzz, fuzz_cases
from hypothesis import given
from hypothesis import strategies as st

import ffnc
from ffnc import cli, io, nn, optim, train

# ---- valid checkpoints to damage ----------------------------------------------------------


def _trained(tmp, dtype, optimizer):
    """A checkpoint written by fit: parameters, optimizer state and training metadata."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 5)).astype(dtype)
    y = np.arange(24) % 3
    model = nn.Sequential([nn.Dense(4, activation="tanh"), nn.Dense(3)], input_shape=(5,),
                          dtype=dtype, seed=1, loss="softmax_cross_entropy")
    path = os.path.join(tmp, f"fit-{dtype}.safetensors")
    train.fit(model, x, y, optimizer=optimizer, epochs=1, batch_size=8, checkpoint=path,
              verbose=0)
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("originals"))
    files = {"f32": _trained(tmp, "float32", optim.Adam(lr=0.01)),
             "f64": _trained(tmp, "float64", optim.Momentum(lr=0.05, momentum=0.9))}
    for data in files.values():  # fit wrote what is documented: all three metadata entries
        meta = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])["__metadata__"]
        assert {"model", "optimizer", "training"} <= set(meta)
    return files


def _split(data):
    """(header dict, tensor data bytes) of a safetensors file."""
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header, body, length=None):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body


# ---- the oracle ---------------------------------------------------------------------------

def _c_library():
    """libffnc's model loader through ctypes, when a developer build has it (test_io_c.py)."""
    stage = os.path.dirname(os.path.dirname(os.path.abspath(ffnc.__file__)))
    for path in (os.environ.get("FFNC_LIBRARY", ""),
                 os.path.join(os.path.dirname(stage), "libffnc.so")):
        if path and os.path.isfile(path):
            lib = ctypes.CDLL(path)
            lib.ffnc_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
            lib.ffnc_model_destroy.argtypes = [ctypes.c_void_p]
            return lib
    return None


C_LIB = _c_library()
C_STATUSES = {0, 2, 3, 5, 9, 10, 11, 12}  # ok, invalid, overflow, memory, io, format, unsupported,
#                                           not found: what ffnc_model_load may answer


class Tally:
    """Counts each file tried (in the session's fuzz summary, unless a hypothesis test counts
    its examples itself) and how the loaders answered."""

    def __init__(self, name, counted=True):
        self.name = name if counted else None
        self.loaded = self.rejected = 0

    def add(self, loaded):
        if self.name is not None:
            fuzz_cases[self.name] = fuzz_cases.get(self.name, 0) + 1
        if loaded:
            self.loaded += 1
        else:
            self.rejected += 1


def _python_loaders(path):
    """Runs every Python loader on `path`; True when they accept it, False when they all
    reject it with a CheckpointError naming the file; anything else fails the test."""
    answers = []
    for loader in (io.load_checkpoint, io.read, io.info):
        try:
            result = loader(path)
        except io.CheckpointError as exc:
            message = str(exc)
            assert message.startswith(str(path) + ":"), message
            assert len(message) < 1200, f"{loader.__name__}: an error of {len(message)} chars"
            answers.append(False)
        else:
            if loader is io.load_checkpoint:
                assert result.model.flat.size == sum(
                    v.size for v in result.model.named_parameters().values())
            answers.append(True)
    # info reads only the header: it may accept what the others reject (a config that cannot
    # be built); read and load_checkpoint reject nothing info accepts but the config's build
    assert answers[1] <= answers[2] and answers[0] <= answers[1], answers
    return answers[0]


def _c_loader(path):
    if C_LIB is None:
        return
    handle = ctypes.c_void_p()
    status = C_LIB.ffnc_model_load(str(path).encode(), ctypes.byref(handle))
    assert status in C_STATUSES, f"ffnc_model_load returned {status}"
    if status == 0:
        C_LIB.ffnc_model_destroy(handle)
    else:
        assert not handle.value


def check_file(path, data, tally, cli_data=None, peak=False):
    """Writes `data` to `path` and runs every loader on it (the CLI too with cli_data); with
    peak, checks that the Python loaders allocate little."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a new file: rewriting one in place makes ext4 flush it at close
    with open(path, "wb") as f:
        f.write(data)
    with _small_peak() if peak else contextlib.nullcontext():
        loaded = _python_loaders(path)
    _c_loader(path)
    if cli_data is not None:
        _cli(["info", str(path)])
        _cli(["predict", str(path), str(cli_data), "--json"])
    tally.add(loaded)
    return loaded


def _cli(argv):
    """The ffnc command: 0, or 2 with one "ffnc: error: ..." line; never an exception."""
    out, err = pyio.StringIO(), pyio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    assert code in (0, 2), (argv, code, err.getvalue())
    if code == 2:
        assert err.getvalue().startswith("ffnc: error: "), err.getvalue()


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "x.npz"
    np.savez(path, x=np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32))
    return path


# ---- truncation and random damage ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["f32", "f64"])
def test_every_truncation(originals, tmp_path, kind):
    data = originals[kind]
    tally = Tally(f"truncation_{kind}")
    path = tmp_path / "cut.safetensors"
    assert check_file(path, data, tally)  # the whole file loads
    for cut in range(len(data)):
        assert not check_file(path, data[:cut], tally), f"{cut} of {len(data)} bytes loaded"
    assert tally.rejected == len(data)


def _mutate(data, rng):
    """1-8 random edits: bytes overwritten, bits flipped, bytes inserted or deleted; most fall
    in the header, which is most of a small checkpoint."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        kind = rng.integers(4)
        at = int(rng.integers(len(b))) if b else 0
        if kind == 0 and b:
            b[at] = int(rng.integers(256))
        elif kind == 1 and b:
            b[at] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            b[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 4)), dtype=np.uint8))
        elif b:
            del b[at:at + int(rng.integers(1, 4))]
    return bytes(b)


def _mutation_count(request):
    return 1000 * (SLOW_FACTOR if request.config.getoption("--slow") else 1)


@pytest.mark.parametrize("kind", ["f32", "f64"])
def test_random_byte_mutations(originals, tmp_path, cli_data, request, kind):
    rng = np.random.default_rng(2024 + (kind == "f64"))
    tally = Tally(f"byte_mutations_{kind}")
    path = tmp_path / "mutated.safetensors"
    for i in range(_mutation_count(request)):
        check_file(path, _mutate(originals[kind], rng), tally,
                   cli_data if i % 25 == 0 else None)
    # most edits break the file; some only change tensor values, which is still a checkpoint
    assert tally.rejected > tally.loaded > 0


# ---- lying headers --------------------------------------------------------------------------

def test_header_length_lies(originals, tmp_path):
    data = originals["f32"]
    n = struct.unpack("<Q", data[:8])[0]
    tally = Tally("header_length")
    path = tmp_path / "lying.safetensors"
    for length in (0, 1, 2, n - 1, n + 1, len(data) - 8, len(data) - 7, len(data),
                   100_000_000, 100_000_001, 2**31, 2**32 + n, 2**63, 2**64 - 1):
        assert not check_file(path, struct.pack("<Q", length) + data[8:], tally), length
    # a header length of up to 100 MB that the file does not back
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 99_999_999) + b"{}")
    with _small_peak(), pytest.raises(io.CheckpointError, match="truncated"):
        io.load(path)


@contextlib.contextmanager
def _small_peak(limit=8 << 20):
    """Fails when the block allocates more than `limit` bytes at once (Python and numpy)."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak allocation {peak:,} bytes"


HUGE = [2**31, 2**32, 2**40, 2**50, 2**62, 2**63, 2**64, 2**64 + 1, 10**30]
JUNK = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=8),
                 st.integers(-2**70, 2**70), st.sampled_from(HUGE),
                 st.lists(st.integers(-4, 2**64), max_size=4), st.dictionaries(
                     st.text(max_size=4), st.integers(), max_size=2))
DTYPES = ["F32", "F64", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "f32", "float32", "",
          "F32 ", "F6"]


@st.composite
def lying_headers(draw, names):
    """Edits to one tensor entry of the header: dtype, shape, offsets (swapped, overlapping,
    out of range, huge), extra or missing fields, or the entry replaced or duplicated."""
    name = draw(st.sampled_from(names))
    field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra", "drop", "entry",
                                  "rename", "offsets_of"]))
    if field == "dtype":
        return name, field, draw(st.one_of(st.sampled_from(DTYPES), JUNK))
    if field == "shape":
        dims = st.one_of(st.integers(0, 12), st.sampled_from(HUGE), st.integers(-3, -1))
        return name, field, draw(st.one_of(st.lists(dims, max_size=5), JUNK))
    if field == "data_offsets":
        ends = st.one_of(st.integers(-8, 300), st.sampled_from(HUGE))
        return name, field, draw(st.one_of(st.lists(ends, min_size=2, max_size=2), JUNK))
    if field == "extra":
        return name, field, draw(st.text(min_size=1, max_size=6))
    if field in ("entry", "rename"):
        return name, field, draw(JUNK if field == "entry" else st.text(max_size=12))
    if field == "offsets_of":  # another tensor's byte range: overlapping, out of order
        return name, field, draw(st.sampled_from(names))
    return name, field, None


def _apply(header, edit):
    name, field, value = edit
    header = json.loads(json.dumps(header))
    entry = header[name]
    if field in ("dtype", "shape", "data_offsets"):
        entry[field] = value
    elif field == "extra":
        entry[value] = 0
    elif field == "drop":
        del entry["shape"]
    elif field == "entry":
        header[name] = value
    elif field == "rename":
        header[value] = header.pop(name)
    else:
        entry["data_offsets"] = list(header[value]["data_offsets"])
    return header


@fuzz(300)
@given(st.data())
def test_lying_tensor_entries(originals, tmp_path, cli_data, data):
    kind = data.draw(st.sampled_from(["f32", "f64"]))
    header, body = _split(originals[kind])
    names = sorted(k for k in header if k != "__metadata__")
    edit = data.draw(lying_headers(names))
    path = tmp_path / "lying.safetensors"
    edited = _apply(header, edit)
    loaded = check_file(path, _join(edited, body), Tally("lying", counted=False),
                        cli_data if data.draw(st.integers(0, 7)) == 0 else None, peak=True)
    if loaded:  # only an edit that changed nothing leaves a checkpoint
        assert edited == header, edit


def test_petabyte_shapes_allocate_nothing(originals, tmp_path):
    header, body = _split(originals["f32"])
    tally = Tally("petabyte_shapes")
    path = tmp_path / "huge.safetensors"
    for shape, offsets in [([2**25, 2**25], [0, 2**52]), ([2**50], [0, 2**52]),
                           ([2**62, 4], [0, 32]), ([2**32] * 3, [0, 160]),
                           ([10**15], [0, 4 * 10**15])]:
        h = json.loads(json.dumps(header))
        h["0.weight"]["shape"], h["0.weight"]["data_offsets"] = shape, offsets
        assert not check_file(path, _join(h, body), tally, peak=True)
        with pytest.raises(io.CheckpointError, match=r"tensor '[^']+'|truncated"):
            io.load(path)


# ---- lying metadata -----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**66, 2**66), st.floats(allow_nan=False),
              st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=12)
LAYER_CLASSES = ["Dense", "LowRank", "Maxout", "RBF", "PReLU", "ReLU", "Dropout", "Conv2D",
                 "__import__", "os.system", "eval", "", "dense", "Sequential", "Model"]
ACTIVATIONS = ["relu", "tanh", "identity", "swish", "eval", "os.system", "", "RELU"]
SIZES = st.one_of(st.integers(-2, 12), st.sampled_from(HUGE + [10**15, 2**63 - 1]),
                  st.sampled_from([1.5, "8", True, None, [4], float("inf")]))


@st.composite
def model_configs(draw, original):
    """The model config with one part replaced: a layer's class, activation or size, the
    input shape, the dtype, the loss, or the whole config by any JSON value."""
    cfg = json.loads(json.dumps(original))
    part = draw(st.sampled_from(["class", "activation", "units", "extra", "input_shape",
                                 "dtype", "loss", "layers", "model", "rank"]))
    layer = cfg["layers"][draw(st.integers(0, len(cfg["layers"]) - 1))]
    if part == "class":
        layer["class"] = draw(st.one_of(st.sampled_from(LAYER_CLASSES), JSON_VALUES))
    elif part == "activation":
        layer["activation"] = draw(st.one_of(st.sampled_from(ACTIVATIONS), JSON_VALUES))
    elif part == "units":
        layer["units"] = draw(SIZES)
    elif part == "rank":  # a LowRank layer that would draw a units x fan_in matrix
        layer.update({"class": "LowRank", "rank": draw(SIZES), "units": draw(SIZES)})
    elif part == "extra":
        layer[draw(st.text(max_size=8))] = draw(JSON_VALUES)
    elif part == "input_shape":
        cfg["input_shape"] = draw(st.one_of(st.lists(SIZES, max_size=3), JSON_VALUES))
    elif part == "dtype":
        cfg["dtype"] = draw(st.one_of(st.sampled_from(["float16", "int64", "object", "O",
                                                       "float64", "float32"]), JSON_VALUES))
    elif part == "loss":
        cfg["loss"] = draw(st.one_of(st.sampled_from(
            ["mdn", "bce", "nope", {"class": "mdn", "components": 2**40}]), JSON_VALUES))
    elif part == "layers":
        cfg["layers"] = draw(JSON_VALUES)
    else:
        cfg = draw(JSON_VALUES)
    return cfg


@fuzz(250)
@given(st.data())
def test_lying_model_configs(originals, tmp_path, cli_data, data):
    kind = data.draw(st.sampled_from(["f32", "f64"]))
    header, body = _split(originals[kind])
    original = json.loads(header["__metadata__"]["model"])
    cfg = data.draw(model_configs(original))
    header["__metadata__"]["model"] = json.dumps(cfg)
    path = tmp_path / "config.safetensors"
    loaded = check_file(path, _join(header, body), Tally("configs", counted=False),
                        cli_data if data.draw(st.integers(0, 7)) == 0 else None, peak=True)
    if loaded:
        assert io.load(path).get_config() == nn.from_config(cfg).get_config()


OPTIMIZER_EDITS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"class": st.sampled_from(["adam", "momentum", "sgd", "step_lr",
                                                     "cosine", "reduce_lr_on_plateau",
                                                     "nope", "Adam"]),
                           "lr": st.one_of(st.floats(), st.integers(-1, 2), st.text())}),
)


@fuzz(200)
@given(st.data())
def test_lying_metadata(originals, tmp_path, data):
    """format, version, optimizer, step and training entries of any JSON (or none at all),
    and metadata that is not JSON or not strings."""
    header, body = _split(originals[data.draw(st.sampled_from(["f32", "f64"]))])
    meta = header["__metadata__"]
    key = data.draw(st.sampled_from(["format", "format_version", "optimizer", "step",
                                     "training", "model_text", "metadata", "drop"]))
    if key == "step":
        opt = json.loads(meta["optimizer"])
        opt["step"] = data.draw(st.one_of(SIZES, st.integers(-2**70, 2**70)))
        meta["optimizer"] = json.dumps(opt)
    elif key == "optimizer":
        meta["optimizer"] = json.dumps(data.draw(OPTIMIZER_EDITS))
    elif key == "model_text":
        meta["model"] = data.draw(st.one_of(
            st.text(max_size=40), st.sampled_from(["[" * 5000, "{" * 3000 + "}" * 3000,
                                                   "1" * 5000, "NaN", "\udcff"])))
    elif key == "metadata":
        header["__metadata__"] = data.draw(st.one_of(JSON_VALUES, st.dictionaries(
            st.sampled_from(["format", "model"]), JSON_VALUES, max_size=2)))
    elif key == "drop":
        del meta[data.draw(st.sampled_from(sorted(meta)))]
    else:
        meta[key] = json.dumps(data.draw(JSON_VALUES)) if key == "training" else \
            data.draw(st.text(max_size=6))
    check_file(tmp_path / "meta.safetensors", _join(header, body), Tally("meta", counted=False))


def test_duplicate_keys_and_deep_nesting(originals, tmp_path):
    header, body = _split(originals["f32"])
    raw = json.dumps(header)
    first = json.dumps({"0.bias": header["0.bias"]})[1:-1]
    tally = Tally("json_structure")
    path = tmp_path / "dup.safetensors"
    duplicated = "{" + first + ", " + raw[1:]
    assert not check_file(path, struct.pack("<Q", len(duplicated)) + duplicated.encode() + body,
                          tally)
    with pytest.raises(io.CheckpointError, match="'0.bias' twice"):
        io.load(path)
    for text in ("[" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "[" * 900 + "]" * 900):
        assert not check_file(path, struct.pack("<Q", len(text)) + text.encode(), tally)


# ---- not checkpoints at all ---------------------------------------------------------------

class _Payload:
    """Unpickling this creates the marker file: the proof that loading ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_other_files_are_rejected_without_running_them(tmp_path, cli_data):
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Payload(str(marker)))
    npz = tmp_path / "a.npz"
    np.savez(npz, x=np.zeros(3), obj=np.array([_Payload(str(marker))], dtype=object))
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(10.0))
    rng = np.random.default_rng(5)
    files = {"pickle": payload, "pickle-protocol-0": pickle.dumps(_Payload(str(marker)), 0),
             "npz": npz.read_bytes(), "npy": npy.read_bytes(), "empty": b"",
             "json": b'{"format": "ffnc"}', "text": b"hello\n" * 100,
             # a safetensors header whose metadata carries a pickle: it stays a string
             "pickle-in-metadata": _join({"__metadata__": {
                 "format": "ffnc", "format_version": "1",
                 "model": payload.decode("latin-1")}}, b""),
             **{f"random-{n}": rng.integers(0, 256, n, dtype=np.uint8).tobytes()
                for n in (1, 7, 8, 9, 64, 4096, 1 << 20)}}
    tally = Tally("other_files")
    for name, data in files.items():
        assert not check_file(tmp_path / f"{name}.safetensors", data, tally, cli_data), name
    assert not marker.exists()
    for loader in (io.load, io.load_checkpoint, io.read, io.info):
        with pytest.raises(IsADirectoryError, match="is a directory"):
            loader(tmp_path)
        with pytest.raises(FileNotFoundError, match="no such checkpoint"):
            loader(tmp_path / "missing.safetensors")
        with pytest.raises(TypeError, match="path must be"):
            loader(3)
    if hasattr(os, "mkfifo"):  # a FIFO would block a reader that opened it
        fifo = tmp_path / "fifo.safetensors"
        os.mkfifo(fifo)
        with pytest.raises(FileNotFoundError):
            io.load(fifo)
    assert not marker.exists()
    _cli(["info", str(tmp_path)])
    _cli(["predict", str(tmp_path / "missing.safetensors"), str(cli_data)])


COUNTED = ("truncation_f32", "truncation_f64", "byte_mutations_f32", "byte_mutations_f64",
           "header_length", "test_lying_tensor_entries", "petabyte_shapes",
           "test_lying_model_configs", "test_lying_metadata", "json_structure", "other_files")


def test_counts_are_reported():
    """Runs last in this file (pytest keeps file order): the counts are printed with the fuzz
    summary at the end of the session; here, a floor, so that a fuzz that silently shrank
    fails."""
    mine = {k: fuzz_cases[k] for k in COUNTED if k in fuzz_cases}
    if len(mine) < len(COUNTED):
        pytest.skip("run the whole file to check the counts")
    assert sum(mine.values()) >= 5000, mine
