"""Faults: a process killed (SIGKILL) while saving a checkpoint leaves an intact checkpoint and
no growing pile of temporary files; Ctrl-C (SIGINT) during fit stops after the current step,
returns the history, and leaves a model equal to a run of exactly the steps completed; a
second Ctrl-C while fit stops raises KeyboardInterrupt as usual; a plan interrupted between
two steps trains on exactly as if never interrupted.

The kill test runs KILL_TRIALS kills (SLOW_FACTOR times as many with `pytest --slow` or
FFNC_SLOW=1) and prints its counts (pytest -s); every kill is one trial whose checkpoint must
be intact."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import SLOW_FACTOR

import ffnc
from ffnc import io, nn, optim, train
from ffnc.compiler import PlanInterrupted
from ffnc.compiler import compile as compile_plan

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"),
                                reason="POSIX signals and fork")

KILL_TRIALS = 200


def _slow(request):
    return request.config.getoption("--slow") or os.environ.get("FFNC_SLOW") == "1"


def _env():
    """The environment of a child Python: this ffnc first on the path, one BLAS thread."""
    stage = os.path.dirname(os.path.dirname(os.path.abspath(ffnc.__file__)))
    path = os.pathsep.join([stage] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    return dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# ---- SIGKILL while saving -----------------------------------------------------------------

KILLER = """
    # Forks writers that save two checkpoint versions in turn to one path and kills each at a
    # random moment; after every kill the file must be one of the two versions, whole.
    import json, os, random, signal, sys, time
    import numpy as np
    from ffnc import io, nn, optim

    directory, trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = os.path.join(directory, "model.safetensors")
    temp_prefix = ".model.safetensors.ffnc-"

    class Plan:  # what io.save reads from a training plan: optimizer buffers and step
        def __init__(self, model, step):
            rng = np.random.default_rng(step)
            self.step = step
            self.state = {k: rng.standard_normal(model.flat.size).astype(model.dtype)
                          for k in ("m", "v")}

        def optimizer_state(self):
            return self.state

    def version(seed, step, dtype):
        model = nn.Sequential([nn.Dense(96, activation="relu"), nn.Dense(10)],
                              input_shape=(64,), dtype=dtype, seed=seed,
                              loss="softmax_cross_entropy")
        return model, Plan(model, step), {"epoch": step, "note": "v" * step}

    versions = [version(1, 10, "float32"), version(2, 20, "float64")]
    adam = optim.Adam(lr=1e-3)

    def save(i):
        model, plan, training = versions[i]
        io.save(model, path, optimizer=adam, plan=plan, training=training)

    expected = []
    for i in (0, 1):
        save(i)
        with open(path, "rb") as f:
            expected.append(f.read())
    save(0)
    tic = time.perf_counter()
    for i in range(10):
        save(i % 2)
    per_save = (time.perf_counter() - tic) / 10

    rng = random.Random(seed)
    counts = {"trials": 0, "intact": 0, "versions": [0, 0], "stale_temps_seen": 0,
              "max_temps": 0, "per_save_ms": per_save * 1e3, "bad": []}
    for trial in range(trials):
        done_one, told = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer: saves until killed
            try:
                os.close(done_one)
                i = trial % 2
                save(i)
                os.write(told, b"1")
                while True:
                    i ^= 1
                    save(i)
            finally:
                os._exit(1)
        # The kill comes at a random time after the writer's first whole save (version
        # trial % 2): on a loaded machine, a kill timed from the fork alone could always land
        # before any save completed, and no trial would see the other version.
        os.close(told)
        os.read(done_one, 1)
        os.close(done_one)
        time.sleep(rng.uniform(0, 2 * per_save))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        counts["trials"] += 1
        with open(path, "rb") as f:
            data = f.read()
        which = expected.index(data) if data in expected else -1
        try:
            ck = io.load_checkpoint(path)
            model, plan, training = versions[which]
            ok = (which >= 0 and os.WIFSIGNALED(status)
                  and np.array_equal(ck.model.flat, model.flat) and ck.step == plan.step
                  and all(np.array_equal(ck.optimizer_state[k], plan.state[k]) for k in "mv")
                  and ck.training == training)
        except Exception as exc:
            ok = False
            counts["bad"].append(f"trial {trial}: {exc!r}"[:300])
        if ok:
            counts["intact"] += 1
            counts["versions"][which] += 1
        elif len(counts["bad"]) < 5:
            counts["bad"].append(f"trial {trial}: {len(data)} bytes, version {which}")
        temps = [n for n in os.listdir(directory) if n.startswith(temp_prefix)]
        counts["stale_temps_seen"] += bool(temps)
        counts["max_temps"] = max(counts["max_temps"], len(temps))
    save(0)  # a write after the last kill removes what the killed writers left
    counts["temps_after"] = [n for n in os.listdir(directory) if n != "model.safetensors"]
    print(json.dumps(counts))
"""


def test_sigkill_while_saving_leaves_an_intact_checkpoint(tmp_path, request):
    trials = KILL_TRIALS * (SLOW_FACTOR if _slow(request) else 1)
    script = _script(tmp_path, "killer.py", KILLER)
    tic = time.perf_counter()
    killers = []  # two at once: a save mostly waits on fsync
    for seed in (7, 8):
        work = tmp_path / f"work{seed}"
        work.mkdir()
        killers.append(subprocess.Popen([sys.executable, "-P", script, str(work),
                                         str(trials // 2), str(seed)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=_env()))
    counts = {"trials": 0, "intact": 0, "versions": [0, 0], "stale_temps_seen": 0,
              "max_temps": 0, "per_save_ms": 0.0, "bad": [], "temps_after": []}
    for killer in killers:
        out, err = killer.communicate(timeout=600)
        assert killer.returncode == 0, err[-3000:]
        one = json.loads(out.strip().splitlines()[-1])
        for key in ("trials", "intact", "stale_temps_seen", "bad", "temps_after"):
            counts[key] += one[key]
        counts["versions"] = [a + b for a, b in
                              zip(counts["versions"], one["versions"], strict=True)]
        counts["max_temps"] = max(counts["max_temps"], one["max_temps"])
        counts["per_save_ms"] += one["per_save_ms"] / len(killers)
    seconds = time.perf_counter() - tic
    print(f"\nSIGKILL during save: {counts['trials']} kills, {counts['intact']} intact "
          f"(versions {counts['versions']}), a killed writer's temporary file seen after "
          f"{counts['stale_temps_seen']} kills, at most {counts['max_temps']} at once; "
          f"{counts['per_save_ms']:.2f} ms per save; {seconds:.1f} s")
    assert counts["trials"] == trials
    assert counts["intact"] == trials, counts["bad"]
    # the kills hit both sides of the rename, and inside writes
    assert min(counts["versions"]) > 0 and counts["stale_temps_seen"] > 0, counts
    # each write removes the temporary files of killed writers: they never pile up
    assert counts["max_temps"] <= 1 and counts["temps_after"] == [], counts


def test_stale_temporary_files_are_removed_but_not_live_ones(tmp_path):
    """Only unlocked files of the naming pattern of the same target go."""
    import fcntl

    model = nn.Sequential([nn.Dense(2)], input_shape=(3,))
    path = tmp_path / "m.safetensors"
    stale = tmp_path / ".m.safetensors.ffnc-dead.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / ".m.safetensors.ffnc-live.tmp"
    live.write_bytes(b"being written")
    others = [tmp_path / ".other.safetensors.ffnc-dead.tmp", tmp_path / "m.safetensors.tmp",
              tmp_path / ".m.safetensors.ffnc-dead.tmp.keep"]
    for p in others:
        p.write_bytes(b"not ours")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a writer still at work
        io.save(model, path)
        assert not stale.exists() and live.exists() and all(p.exists() for p in others)
    io.save(model, path)
    assert not live.exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["m.safetensors"] + [p.name for p in others])
    np.testing.assert_array_equal(io.load(path).flat, model.flat)


# ---- Ctrl-C during fit --------------------------------------------------------------------

FIT = """
    # fit, interrupted by the parent (mode "once") or by a thread of its own that sends two
    # SIGINTs, the second while fit is still stopping (mode "twice").
    import json, os, signal, sys, threading, time
    import numpy as np
    from ffnc import nn, train

    mode, out = sys.argv[1], sys.argv[2]
    rows, features, batch, hidden = (64000, 64, 16, 2048) if mode == "once" else \\
        (8192, 1024, 2048, 1024)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    model = nn.Sequential([nn.Dense(hidden, activation="relu"), nn.Dense(10)],
                          input_shape=(features,), seed=3, loss="softmax_cross_entropy")

    def two_sigints():
        # blocked here, so sigpending() shows a SIGINT until another thread has taken it
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        time.sleep(0.3)  # in the first epoch, in the middle of a step of ~0.3 s
        os.kill(os.getpid(), signal.SIGINT)
        while signal.SIGINT in signal.sigpending():  # until the first is being handled
            time.sleep(0.0002)
        os.kill(os.getpid(), signal.SIGINT)

    class Begin(train.Callback):
        def on_train_begin(self, model):
            print("training", flush=True)
            if mode == "twice":
                threading.Thread(target=two_sigints, daemon=True).start()

    result = {}
    tic = time.perf_counter()
    try:
        history = train.fit(model, x, y, optimizer="adam", epochs=3, batch_size=batch,
                            shuffle=False, threads=1, verbose=0, callbacks=[Begin()])
        result.update(interrupted=history.interrupted, partial=history.partial,
                      epochs=history.epoch)
    except KeyboardInterrupt as exc:
        result["raised"] = type(exc).__name__
    result["seconds"] = time.perf_counter() - tic
    np.save(out, model.flat)
    print(json.dumps(result), flush=True)
    # the model is usable and trains on
    more = train.fit(model, x[:512], y[:512], optimizer="adam", epochs=1, batch_size=batch,
                     threads=1, verbose=0)
    assert np.isfinite(model.flat).all() and np.isfinite(more["loss"][0])
    print("trained on", flush=True)
"""


def _fit_child(tmp_path, mode):
    script = _script(tmp_path, "fit.py", FIT)
    weights = tmp_path / "weights.npy"
    child = subprocess.Popen([sys.executable, "-P", script, mode, str(weights)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env())
    return child, weights


def test_ctrl_c_stops_fit_after_the_current_step(tmp_path):
    child, weights = _fit_child(tmp_path, "once")
    try:
        assert child.stdout.readline().strip() == "training", child.stderr.read()
        time.sleep(0.3)
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline()
        latency = time.perf_counter() - sent
        rest, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert rest.strip() == "trained on"
    result = json.loads(line)
    partial = result["partial"]
    # stopped in the first epoch (4000 steps, seconds long), within a step or so
    assert result["interrupted"] and result["epochs"] == [] and partial["epoch"] == 1, result
    assert 0 < partial["steps"] < partial["steps_per_epoch"] == 4000, result
    assert latency < 1.0, f"fit took {latency:.2f} s to return after Ctrl-C"
    assert np.isfinite(partial["loss"]) and 0 <= partial["accuracy"] <= 1
    print(f"\nCtrl-C: fit returned {latency * 1e3:.1f} ms after the signal, after "
          f"{partial['steps']} of 4000 steps")

    # the weights are those of exactly the steps completed
    got = np.load(weights)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64000, 64), dtype=np.float32)
    y = rng.integers(0, 10, 64000)
    model = nn.Sequential([nn.Dense(2048, activation="relu"), nn.Dense(10)], input_shape=(64,),
                          seed=3, loss="softmax_cross_entropy")
    rows = partial["steps"] * 16
    history = train.fit(model, x[:rows], y[:rows], optimizer="adam", epochs=1, batch_size=16,
                        shuffle=False, threads=1, verbose=0)
    np.testing.assert_array_equal(got, model.flat)
    assert history["loss"][0] == pytest.approx(partial["loss"], rel=1e-12)


def test_second_ctrl_c_while_stopping_raises_keyboard_interrupt(tmp_path):
    child, _ = _fit_child(tmp_path, "twice")
    try:
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "training" and lines[-1] == "trained on", out
    result = json.loads(lines[1])
    assert result.get("raised") == "KeyboardInterrupt", result
    assert result["seconds"] < 2.5, result  # within the first epoch's steps, not after it


def _fit_raising_sigint(callback, **kwargs):
    """fit with a callback that raises SIGINT in this process: fit's own handler takes it
    (a KeyboardInterrupt escaping fit fails the test rather than stopping the session)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not left to Python's default handler here")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((80, 6), dtype=np.float32)
    y = rng.integers(0, 3, 80)
    model = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(3)], input_shape=(6,),
                          seed=2, loss="softmax_cross_entropy")
    try:
        history = train.fit(model, x, y, optimizer="adam", epochs=3, batch_size=8,
                            shuffle=False, verbose=0, callbacks=[callback], **kwargs)
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped fit")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    return history, model, x, y


def _same_as_steps(model, x, y, epochs, steps):
    """model's weights equal those of `epochs` whole epochs then `steps` steps."""
    reference = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(3)], input_shape=(6,),
                              seed=2, loss="softmax_cross_entropy")
    xs = np.concatenate([x] * epochs + [x[:steps * 8]])
    ys = np.concatenate([y] * epochs + [y[:steps * 8]])
    train.fit(reference, xs, ys, optimizer="adam", epochs=1, batch_size=8, shuffle=False,
              verbose=0)
    np.testing.assert_array_equal(model.flat, reference.flat)


def test_ctrl_c_between_steps_in_python_stops_fit_there():
    """With a per-step callback, a Ctrl-C in Python code between two steps stops fit before
    the next step."""
    class CtrlCAt(train.Callback):
        def on_batch_end(self, step, logs):
            if step == 5:
                signal.raise_signal(signal.SIGINT)

    history, model, x, y = _fit_raising_sigint(CtrlCAt())
    assert history.interrupted and history.epoch == []
    assert {k: history.partial[k] for k in ("epoch", "steps", "steps_per_epoch")} == {
        "epoch": 1, "steps": 5, "steps_per_epoch": 10}
    _same_as_steps(model, x, y, 0, 5)


def test_ctrl_c_between_epochs_stops_fit_before_the_next(tmp_path):
    """A Ctrl-C in an epoch's bookkeeping lets that epoch finish (history, checkpoint) and
    stops before the next; resuming from the checkpoint then ends as an uninterrupted run."""
    class CtrlCAfterFirst(train.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                signal.raise_signal(signal.SIGINT)

    path = tmp_path / "fit.safetensors"
    history, model, x, y = _fit_raising_sigint(CtrlCAfterFirst(), checkpoint=path)
    assert history.interrupted and history.epoch == [1]
    assert history.partial == {"epoch": 2, "steps": 0, "steps_per_epoch": 10}
    _same_as_steps(model, x, y, 1, 0)
    assert io.load_checkpoint(path).training["epoch"] == 1
    resumed = train.fit(model, x, y, optimizer="adam", epochs=3, batch_size=8, shuffle=False,
                        verbose=0, checkpoint=path)
    assert resumed.epoch == [1, 2, 3] and not resumed.interrupted
    _same_as_steps(model, x, y, 3, 0)


# ---- an interrupted plan trains on --------------------------------------------------------

def _training_plan(seed=0):
    model = nn.Sequential([nn.Dense(32, activation="tanh"), nn.Dense(4)], input_shape=(16,),
                          seed=seed, loss="softmax_cross_entropy")
    out = model.output(True)
    target = model.loss.target_placeholder(model)
    objective = model.loss(out, target)
    plan = compile_plan([objective], batch_size=4, loss=objective,
                        optimizer=optim.Adam(lr=1e-3),
                        params=list(model.parameter_nodes().values()),
                        inputs=list(model.inputs) + [target])
    return plan, model.inputs[0], target


def _same_state(a, b):
    return (a.step == b.step and np.array_equal(a.param_arena, b.param_arena)
            and all(np.array_equal(v, b.optimizer_state()[k])
                    for k, v in a.optimizer_state().items()))


def test_an_interrupted_plan_trains_on_as_if_never_interrupted():
    rows = 200_000
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, 16), dtype=np.float32)
    y = rng.integers(0, 4, rows)
    plan, xs, ys = _training_plan()
    reference, rxs, rys = _training_plan()

    # a request made before the run stops it before its first step, and is used up
    plan.interrupt()
    with pytest.raises(PlanInterrupted) as stopped:
        plan.run_epoch({xs: x[:40], ys: y[:40]}, 4)
    assert stopped.value.steps == 0 and stopped.value.total == 10 and plan.step == 0
    assert stopped.value.records.shape == (0, 1) and _same_state(plan, reference)

    # from another thread, during the epoch (50 000 steps, far longer than the wait)
    timer = threading.Timer(0.05, plan.interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt) as stopped:  # a PlanInterrupted is one
        plan.run_epoch({xs: x, ys: y}, 4)
    timer.join()
    done = stopped.value.steps
    assert 0 < done < rows // 4 and plan.step == done
    assert np.isfinite(stopped.value.records).all() and len(stopped.value.records) == done

    # the rest of the epoch, then one more: as the uninterrupted plan, bit for bit
    records = plan.run_epoch({xs: x[done * 4:], ys: y[done * 4:]}, 4)
    expected = reference.run_epoch({rxs: x, rys: y}, 4)
    np.testing.assert_array_equal(np.concatenate([stopped.value.records, records]), expected)
    assert _same_state(plan, reference)
    plan.run_epoch({xs: x[:4000], ys: y[:4000]}, 4)
    reference.run_epoch({rxs: x[:4000], rys: y[:4000]}, 4)
    assert _same_state(plan, reference)


def test_ctrl_c_during_ffnc_train_saves_the_stopped_model(tmp_path):
    """`ffnc train` on Ctrl-C: exit status 130 and the model as trained so far saved."""
    output = tmp_path / "digits.safetensors"
    child = subprocess.Popen([sys.executable, "-P", "-m", "ffnc.cli", "train", "--epochs",
                              "100000", "--output", str(output), "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env())
    try:
        assert child.stdout.readline().startswith("ffnc "), child.stderr.read()
        time.sleep(1.5)  # past the compile, into the epochs
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "interrupted in epoch" in err and str(output) in err, err
    model = io.load(output)
    assert np.isfinite(model.flat).all()
