"""Data-parallel training over MPI (ffnc.distributed) and the plan's two-phase step under it.

The MPI tests launch this file under ``mpiexec -n R`` (the worker at the bottom) and compare
what the ranks wrote with a single-process reference computed here: R ranks sharing each
global batch of 128 rows must reach the weights one process reaches with batches of 128
(float64: to 1e-12; float32: to float32 rounding), and the ranks' weights must be bit-identical.
A rank that raises or dies must bring the whole job down promptly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import ffnc.graph as G
from ffnc import optim
from ffnc.compiler import compile as compile_plan

ROWS, FEATURES, HIDDEN, CLASSES = 300, 6, 16, 3  # 300 = 2 x 128 + 44: a smaller last batch
BATCH, EPOCHS = 128, 3
CONFIGS = [(np.float64, "momentum"), (np.float64, "adam_clip"), (np.float32, "momentum"),
           (np.float32, "adam_clip")]
TIMEOUT = 60  # seconds for one mpiexec run; they take ~2-4 s


def _optimizer(name: str):
    if name == "momentum":
        return optim.Momentum(lr=0.2, momentum=0.9, nesterov=True)
    # clipping by global norm must see the gradients combined over the ranks
    return optim.Adam(lr=0.02, weight_decay=1e-3, clip_norm=0.05)


def _data(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((ROWS, FEATURES)).astype(dtype)
    y = (np.abs(x[:, 0] * 2 + x[:, 1]) % CLASSES).astype(np.int64)
    return x, y


def build(dtype, opt_name: str, batch: int):
    """A 6-16-16-3 relu classifier trained with softmax cross-entropy: the plan and its
    scalar outputs (loss, accuracy)."""
    rng = np.random.default_rng(3)
    x = G.placeholder((None, FEATURES), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h = x
    sizes = [FEATURES, HIDDEN, HIDDEN, CLASSES]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = G.parameter((rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype), name=f"w{i}")
        bias = G.parameter(np.full(b, 0.01, dtype), name=f"b{i}")
        h = h @ w + bias
        if i < len(sizes) - 2:
            h = G.relu(h)
    loss = G.softmax_cross_entropy(h, y)
    accuracy = G.mean(G.cast(G.equal(G.argmax(h, 1), y), dtype))
    return compile_plan([loss, accuracy], loss=loss, optimizer=_optimizer(opt_name),
                        batch_size=batch)


def _epoch_feed(x, y, epoch):
    order = np.random.default_rng((11, epoch)).permutation(len(y))
    return {"x": np.ascontiguousarray(x[order]), "y": np.ascontiguousarray(y[order])}


def _lr_scale(epoch):
    steps = -(-ROWS // BATCH)
    return np.linspace(1.0, 0.5, steps) * (0.9 ** epoch)


def reference(dtype, opt_name):
    """One process, global batches of BATCH rows: final parameters and per-step records."""
    plan = build(dtype, opt_name, BATCH)
    x, y = _data(dtype)
    records = [plan.run_epoch(_epoch_feed(x, y, e), BATCH, lr_scale=_lr_scale(e))
               for e in range(EPOCHS)]
    return plan.param_arena.copy(), np.concatenate(records)


# ---- the worker, run under mpiexec ---------------------------------------------------------

def worker_equivalence(out_dir: str) -> None:
    from ffnc import distributed

    group = distributed.init(threads=1)
    for dtype, opt_name in CONFIGS:
        # compiled for the shards only: ceil(BATCH / ranks) rows
        plan = build(dtype, opt_name, -(-BATCH // group.size))
        if group.rank == 1:  # rank 0's initial weights must win
            plan.param_arena[:] = 123.0
        stepper = distributed.DistributedStepper(plan, group)
        x, y = _data(dtype)
        records = [stepper.run_epoch(_epoch_feed(x, y, e), BATCH, lr_scale=_lr_scale(e))
                   for e in range(EPOCHS)]
        assert stepper.verify()
        tag = f"{np.dtype(dtype).name}_{opt_name}"
        np.save(os.path.join(out_dir, f"params_{tag}_{group.rank}.npy"), plan.param_arena)
        np.save(os.path.join(out_dir, f"records_{tag}_{group.rank}.npy"),
                np.concatenate(records))
        np.save(os.path.join(out_dir, f"step_{tag}_{group.rank}.npy"), np.array(plan.step))


def fit_model():
    from ffnc import nn

    return nn.Sequential([nn.Dense(16, activation="relu"), nn.Dense(16, activation="relu"),
                          nn.Dense(CLASSES)], input_shape=(FEATURES,), dtype="float64",
                         loss="softmax_cross_entropy", seed=5)


def fit_kwargs(out_dir: str) -> dict:
    return dict(optimizer=optim.Momentum(lr=0.1, momentum=0.9), epochs=3, batch_size=BATCH,
                validation_split=0.2, seed=3, verbose=2,
                checkpoint=os.path.join(out_dir, "fit.safetensors"))


def worker_fit(out_dir: str) -> None:
    from ffnc import distributed, train

    rank = distributed.DataParallel().rank
    x, y = _data(np.float64)
    model = fit_model()
    history = train.fit(model, x, y, distributed=True, **fit_kwargs(out_dir))
    np.save(os.path.join(out_dir, f"fit_{rank}.npy"), model.flat)
    np.save(os.path.join(out_dir, f"fit_loss_{rank}.npy"), np.array(history["loss"]))
    # a rate far too large: every rank raises TrainingDiverged at the same step, catchable
    try:
        train.fit(fit_model(), x, y, optimizer=optim.SGD(lr=1e150), epochs=2,
                  batch_size=BATCH, verbose=0, distributed=True)
    except train.TrainingDiverged as exc:
        print(f"rank {rank} diverged at epoch {exc.epoch} step {exc.step}", flush=True)


def worker_fail(mode: str) -> None:
    from ffnc import distributed

    group = distributed.init(threads=1)
    plan = build(np.float64, "momentum", BATCH)
    stepper = distributed.DistributedStepper(plan, group)
    x, y = _data(np.float64)
    feed = {"x": x[:BATCH], "y": y[:BATCH]}
    if mode == "uncaught":  # outside any guard: the excepthook aborts the job
        for step in range(1000):
            if group.rank == 1 and step == 3:
                raise RuntimeError("rank 1 broke on purpose (uncaught)")
            stepper.step(feed)
    with group.guard():
        for step in range(1000):
            if group.rank == 1 and step == 3:
                if mode == "raise":
                    raise ValueError("rank 1 broke on purpose")
                if mode == "exit":
                    sys.exit(0)  # a clean exit would leave rank 0 in the allreduce forever
                if mode == "kill":
                    os.kill(os.getpid(), 9)
            stepper.step(feed)
    print("finished without the failure", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "equivalence":
        worker_equivalence(sys.argv[2])
    elif sys.argv[1] == "fit":
        worker_fit(sys.argv[2])
    else:
        worker_fail(sys.argv[2])
    sys.exit(0)


# ---- the tests ------------------------------------------------------------------------------

def _mpiexec() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip('mpi4py is not installed (pip install "ffnc[mpi]")')
    found = shutil.which("mpiexec")
    if found is None:
        pytest.skip('no mpiexec on PATH (pip install "ffnc[mpi]" provides MPICH\'s)')
    return found


def _launch(ranks: int, *args: str, timeout: float = TIMEOUT, module: str | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
    """mpiexec -n ranks python (this file | -m module) args. Give `python -m` a scratch cwd,
    so that it imports the installed ffnc rather than the source tree."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    target = ["-m", module] if module else [os.path.abspath(__file__)]
    return subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, *target, *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_match_one_process(tmp_path, ranks):
    """R ranks x BATCH/R rows per step reach the weights of 1 process x BATCH rows; the ranks
    are bit-identical. 3 ranks shard 128 rows as 42/43/43 and the last batch of 44 as
    14/15/15."""
    run = _launch(ranks, "equivalence", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    for dtype, opt_name in CONFIGS:
        tag = f"{np.dtype(dtype).name}_{opt_name}"
        params = [np.load(tmp_path / f"params_{tag}_{r}.npy") for r in range(ranks)]
        records = [np.load(tmp_path / f"records_{tag}_{r}.npy") for r in range(ranks)]
        for r in range(1, ranks):
            assert params[r].tobytes() == params[0].tobytes(), f"{tag}: rank {r} differs"
            assert records[r].tobytes() == records[0].tobytes(), f"{tag}: rank {r} records"
        expected, expected_records = reference(dtype, opt_name)
        assert int(np.load(tmp_path / f"step_{tag}_0.npy")) == EPOCHS * -(-ROWS // BATCH)
        assert not np.array_equal(expected, build(dtype, opt_name, BATCH).param_arena)
        if dtype == np.float64:
            np.testing.assert_allclose(params[0], expected, rtol=1e-11, atol=1e-13,
                                       err_msg=tag)
            np.testing.assert_allclose(records[0], expected_records, rtol=1e-11, atol=1e-13,
                                       err_msg=tag)
        else:
            np.testing.assert_allclose(params[0], expected, rtol=2e-4, atol=2e-5, err_msg=tag)
            np.testing.assert_allclose(records[0], expected_records, rtol=2e-4, atol=2e-5,
                                       err_msg=tag)


def test_fit_distributed(tmp_path):
    """fit(..., distributed=True) on 2 ranks: the single-process run's weights and losses,
    bit-identical ranks, one progress printer, rank 0's checkpoint; a divergence is raised
    as TrainingDiverged on every rank (not an abort)."""
    from ffnc import io, train

    run = _launch(2, "fit", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    flats = [np.load(tmp_path / f"fit_{r}.npy") for r in range(2)]
    assert flats[0].tobytes() == flats[1].tobytes()
    x, y = _data(np.float64)
    model = fit_model()
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    kwargs = fit_kwargs(str(reference_dir))
    kwargs["verbose"] = 0
    history = train.fit(model, x, y, **kwargs)
    np.testing.assert_allclose(flats[0], model.flat, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.load(tmp_path / "fit_loss_0.npy"), history["loss"],
                               rtol=1e-11)
    assert run.stdout.count("epoch 1/3") == 1  # only rank 0 reports progress
    np.testing.assert_array_equal(io.load(str(tmp_path / "fit.safetensors")).flat, flats[0])
    for r in range(2):
        assert f"rank {r} diverged at epoch 1 step 2" in run.stdout, run.stdout + run.stderr


def test_cli_train_distributed(tmp_path, capsys):
    """mpiexec -n 2 ffnc train --distributed: one report, from rank 0, with the single-process
    command's test results, and its checkpoint."""
    from ffnc import cli

    args = ["train", "--epochs", "4", "--hidden", "32", "--json", "--output"]
    run = _launch(2, *args, "model.safetensors", "--distributed", module="ffnc.cli",
                  cwd=str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    reports = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, run.stdout
    assert (tmp_path / "model.safetensors").exists()
    assert cli.main([*args, str(tmp_path / "single.safetensors")]) == 0
    single = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads(reports[0])
    # float32: the same training up to rounding; at most one test row may flip
    assert abs(report["test_accuracy"] - single["test_accuracy"]) <= 1.5 / 359
    assert report["test_loss"] == pytest.approx(single["test_loss"], rel=1e-3)


@pytest.mark.parametrize("mode, message", [
    ("raise", "ValueError: rank 1 broke on purpose"),
    ("uncaught", "RuntimeError: rank 1 broke on purpose (uncaught)"),
    ("exit", "rank 1 of 2 failed with the SystemExit"),
    ("kill", ""),
])
def test_a_failing_rank_stops_the_job(mode, message):
    """A rank that raises (inside or outside the guard), exits or is killed mid-training
    while the other waits in the allreduce: the job ends non-zero within seconds, with the
    error on stderr, instead of hanging."""
    started = time.perf_counter()
    run = _launch(2, "fail", mode, timeout=30)
    seconds = time.perf_counter() - started
    assert run.returncode != 0, run.stdout + run.stderr
    assert "finished without the failure" not in run.stdout
    assert message in run.stderr, run.stderr
    assert seconds < 20


def test_phases_equal_run():
    """compute_gradients + apply_update is run, bit for bit, with clipping in the update."""
    for dtype in (np.float32, np.float64):
        whole, split = build(dtype, "adam_clip", BATCH), build(dtype, "adam_clip", BATCH)
        x, y = _data(dtype)
        feed = {"x": x[:BATCH], "y": y[:BATCH]}
        assert split.instructions[split.update_begin].opcode == "clip_grad_norm"
        for _ in range(3):
            expected = whole.run(feed)
            assert split.compute_gradients(feed) == BATCH
            # the gradients phase leaves the raw gradients: their norm exceeds the clip
            assert np.linalg.norm(split.grad_arena.astype(np.float64)) > 0.05
            got = split.apply_update()
            assert [a.tobytes() for a in got] == [a.tobytes() for a in expected]
        assert whole.param_arena.tobytes() == split.param_arena.tobytes()
        assert whole.step == split.step == 3
        assert whole.grad_norm == split.grad_norm


def test_phase_errors():
    plan = build(np.float64, "momentum", 8)
    with pytest.raises(RuntimeError, match="call compute_gradients first"):
        plan.apply_update()
    x, y = _data(np.float64)
    with pytest.raises(ValueError, match="at most 8"):
        plan.compute_gradients({"x": x[:9], "y": y[:9]})
    with pytest.raises(RuntimeError, match="call compute_gradients first"):
        plan.apply_update()  # a failed compute_gradients leaves nothing to apply
    plan.compute_gradients({"x": x[:8], "y": y[:8]})
    plan.apply_update()
    with pytest.raises(RuntimeError, match="once per apply_update"):
        plan.apply_update()
    assert plan.step == 1
    inference = compile_plan(G.placeholder((None, 2), np.float64, name="x") * 2.0,
                             batch_size=4)
    assert inference.update_begin == len(inference.instructions)


def test_import_error_names_the_extra(monkeypatch):
    import ffnc.distributed as dist

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'pip install "ffnc\[mpi\]"'):
        dist.DataParallel()
    assert not dist.available()
