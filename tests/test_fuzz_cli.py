"""Fuzz: the ffnc command (ffnc.cli.main, in-process) with generated argument lists.

argv is built from each subcommand's flags with values that mix good ones, bad ones (wrong
type, out of range, NaN, absurd sizes, missing or wrong files) and junk tokens. Every run must
return an exit status (0, or 2 for a mistake, with exactly one line "ffnc: error: ..." on
stderr), never raise or print a traceback. Runs stay cheap: the data is a 24-row file and the
epochs are few, so valid runs train a tiny model for real.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fuzz
from hypothesis import given
from hypothesis import strategies as st

from ffnc import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small data files, good and broken, and a checkpoint trained on the good one."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    paths = {"data": d / "d.npz", "csv": d / "d.csv", "reg": d / "r.npz",
             "nan": d / "nan.npz", "f64": d / "f64.npz", "empty": d / "e.npz",
             "onecol": d / "one.csv", "text": d / "t.csv", "blank": d / "b.csv",
             "obj": d / "o.npz", "ck": d / "m.safetensors", "bad_ck": d / "bad.safetensors",
             "out": d / "out.safetensors", "pred": d / "p.npy", "dir": d,
             "missing": d / "missing.npz", "nodir": d / "no" / "x.safetensors"}
    np.savez(paths["data"], x=x, y=y)
    np.savetxt(paths["csv"], np.hstack([x, y[:, None]]), delimiter=",")
    np.savez(paths["reg"], x=x, y=x[:, :1] * 2)
    nan = x.copy()
    nan[3, 1] = np.nan
    np.savez(paths["nan"], x=nan, y=y)
    np.savez(paths["f64"], x=x.astype(np.float64)[:, :, None], y=y)
    np.savez(paths["empty"], x=x[:0], y=y[:0])
    np.savetxt(paths["onecol"], y[:, None], delimiter=",")
    paths["text"].write_text("a,b,c\n1,2,x\n")
    paths["blank"].write_text("")
    np.savez(paths["obj"], x=np.array([object()] * 3), y=y[:3])
    paths["bad_ck"].write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    status = cli.main(["train", "--data", str(paths["data"]), "--hidden", "4", "--epochs", "1",
                       "-q", "-o", str(paths["ck"])])
    assert status == 0
    return {k: str(v) for k, v in paths.items()}


FILES = ["data", "csv", "reg", "nan", "f64", "empty", "onecol", "text", "blank", "obj",
         "bad_ck", "dir", "missing"]
NUMBERS = ["0", "1", "2", "-1", "0.5", "nan", "inf", "-inf", "1e400", "x", "", "3.0",
           str(2**40), str(2**80), "0x10", "1_0"]
# flag -> the values it is given (a "@" prefix names a file of the fixture)
TRAIN_FLAGS = {
    "--data": ["@" + f for f in FILES],
    "--hidden": ["4", "4,2", "", "none", "0", "-3", "4,,2", "x", str(2**40), "2," * 3],
    "--activation": ["relu", "tanh", "elu", "nope"],
    "--loss": ["mse", "softmax_cross_entropy", "bce", "l1", "mdn", "nope"],
    "--dtype": ["float32", "float64", "float16"],
    "--optimizer": ["sgd", "adam", "nesterov", "rmsprop", "adamw", "lbfgs"],
    "--lr": NUMBERS, "--epochs": ["0", "1", "2", "-1", "x", "1.5", "1e3"],
    "--batch-size": ["0", "4", "-3", "x", str(2**80)],
    "--validation-split": ["0", "0.25", "0.99", "1", "-0.5", "nan", "x"],
    "--test-fraction": ["0.25", "0", "1", "2", "nan", "x"],
    "--split-seed": ["0", "-1", "x"], "--seed": ["0", "3", "-1", str(2**80), "x"],
    "--threads": ["1", "0", "-2", "x"],
    "--schedule": ["cosine", "constant", "linear"],
    "--x-key": ["x", "nope"], "--y-key": ["y", "x", "nope"],
    "--label-column": ["-1", "0", "99", "nope"],
    "--output": ["@out", "@dir", "@nodir"], "--plot": ["@nodir"],
    "--json": None, "--quiet": None, "--distributed": None,
}
EVAL_FLAGS = {"--json": None, "--x-key": ["x", "nope"], "--y-key": ["y", "nope"],
              "--label-column": ["-1", "7"], "--test-fraction": ["0.25", "nan", "3"],
              "--split-seed": ["1", "x"]}
PREDICT_FLAGS = {**EVAL_FLAGS, "--raw": None, "--output": ["@pred", "@dir", "@nodir", "a.txt"]}
DIAGNOSE_FLAGS = {**{k: TRAIN_FLAGS[k] for k in ("--data", "--hidden", "--activation",
                                                  "--loss", "--dtype", "--seed", "--lr")},
                  "--optimizer": ["sgd", "momentum", "nope"],
                  "--rows": ["4", "0", "-1", "x", str(2**80)], "--json": None}
COMMANDS = {"train": TRAIN_FLAGS, "evaluate": EVAL_FLAGS, "predict": PREDICT_FLAGS,
            "diagnose": DIAGNOSE_FLAGS, "info": {"--json": None}}
POSITIONAL = {"evaluate": ["@ck", "@bad_ck", "@missing", "@dir", "@data"],
              "predict": ["@ck", "@bad_ck", "@missing"],
              "diagnose": ["@ck", "@bad_ck", "@missing"],
              "info": ["@ck", "@bad_ck", "@missing", "@dir", "@data"]}
JUNK = ["--bogus", "-x", "train", "--", "-", "--epochs=1", "--lr=", "\x00", "é", "--json=1"]


@st.composite
def argvs(draw):
    """An argv: a (usually) known command, cheap defaults, then random flags and junk."""
    command = draw(st.sampled_from(list(COMMANDS) * 4 + ["bogus", "", "--help-me"]))
    argv = [command] if command else []
    flags = COMMANDS.get(command, {})
    if command == "train":  # cheap unless the flags drawn below say otherwise
        argv += ["--data", "@data", "--hidden", "4", "--epochs", "1", "-q", "-o", "@out"]
    if command == "diagnose":
        argv += ["--data", "@data", "--hidden", "4", "--rows", "8"]
    if command in POSITIONAL and draw(st.integers(0, 5)):
        argv.append(draw(st.sampled_from(POSITIONAL[command])))
        if command in ("evaluate", "predict") and draw(st.booleans()):
            argv.append(draw(st.sampled_from(["@data", "@csv", "@reg", "@nan", "@f64",
                                              "@empty", "@text", "@obj", "@missing"])))
    for _ in range(draw(st.integers(0, 3))):
        if flags and draw(st.integers(0, 4)):
            flag = draw(st.sampled_from(sorted(flags)))
            argv.append(flag)
            if flags[flag] is not None and draw(st.integers(0, 9)):
                argv.append(draw(st.sampled_from(flags[flag])))
        else:
            argv.append(draw(st.sampled_from(JUNK)))
    return argv


@fuzz(200)
@given(argv=argvs())
def test_cli_returns_a_status_and_one_line_per_mistake(argv, files, capsys, monkeypatch):
    monkeypatch.setenv("FFNC_DEBUG", "")
    monkeypatch.delenv("FFNC_DEBUG")
    args = [files[a[1:]] if a.startswith("@") and a[1:] in files else a for a in argv]
    status = cli.main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    assert status in (0, 2), (args, status, err)
    if status == 2 and argv:  # (no arguments at all print the help)
        # (--distributed's note that no MPI job runs is not part of the error)
        lines = [line for line in err.strip().splitlines()
                 if not line.startswith("ffnc: --distributed without mpiexec")]
        assert len(lines) == 1 and lines[0].startswith("ffnc: error: "), (args, err)
    elif status == 0:
        assert not err.strip() or "--distributed" in args, (args, err)


@pytest.mark.parametrize("argv", [["bogus"], ["train", "--epochs", "x"], ["train", "--bogus"],
                                  ["info"], ["train", "--validation-split", "nan"]])
def test_argument_errors_are_one_line_with_status_2(argv, capsys):
    """argparse used to print its usage and raise SystemExit(2)."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("ffnc: error: ")
