"""Memory footprint: a compiled parameter is held once (by its plan; the node's value is a
read-only view of the plan's slot, see ffnc.compiler.compile for the rules over several
plans) and its private copy goes back to the system when handed over; a plan's gradient and
optimizer-state arenas cost nothing before its first step; a dense backward overwrites its
incoming gradient; `import ffnc` imports its subpackages, and ffnc.graph its optional
modules, only when they are used."""

from __future__ import annotations

import gc
import json
import mmap
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
from conftest import rss_leak_check

import ffnc.graph as G
from ffnc import nn
from ffnc.compiler import CompileError, Momentum, compile

F64 = np.float64


def _classifier(rng, dtype=F64):
    """x @ w + b -> softmax cross-entropy, 3 features and 4 classes."""
    x = G.placeholder((None, 3), dtype, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    w = G.parameter(rng.standard_normal((3, 4)).astype(dtype), name="w")
    b = G.parameter(rng.standard_normal(4).astype(dtype), name="b")
    out = x @ w + b
    return x, y, w, b, out, G.softmax_cross_entropy(out, y)


def _feed(rng, rows=8):
    return {"x": rng.standard_normal((rows, 3)), "y": rng.integers(0, 4, rows)}


def _train(x, y, loss, rng, steps=3):
    plan = compile(loss, loss=loss, optimizer=Momentum(0.5, 0.9), batch_size=8)
    for _ in range(steps):
        plan.run(_feed(rng))
    return plan


# ---- one copy: the plan's ---------------------------------------------------------------------


def test_compile_hands_the_private_copy_over_to_the_plan(rng):
    x, y, w, b, out, loss = _classifier(rng)
    initial = {p: p.value.copy() for p in (w, b)}
    copies = {p: weakref.ref(p.value) for p in (w, b)}
    plan = compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=8)
    for p in (w, b):
        assert copies[p]() is None, f"{p.label}: the node's own copy outlived compile"
        assert np.shares_memory(p.value, plan.params[p])
        assert np.shares_memory(p.value, plan.param_arena)
        assert not p.value.flags.writeable
        assert p.value.shape == p.shape and p.value.dtype == p.dtype
        np.testing.assert_array_equal(p.value, initial[p])
    with pytest.raises(ValueError, match="read-only"):
        w.value[0, 0] = 1.0


def test_frozen_parameters_are_handed_over_too(rng):
    """A parameter the plan does not train lives in its state arena; its copy goes as well."""
    x, y, w, b, out, loss = _classifier(rng)
    initial = {p: p.value.copy() for p in (w, b)}
    copy = weakref.ref(b.value)
    plan = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8, params=[w])
    assert copy() is None
    assert not b.value.flags.writeable and not np.shares_memory(b.value, plan.param_arena)
    for _ in range(2):
        plan.run(_feed(rng))
    np.testing.assert_array_equal(b.value, initial[b])  # frozen: the plan never changes it
    assert not np.array_equal(w.value, initial[w])
    xv = rng.standard_normal((2, 3))
    np.testing.assert_allclose(G.evaluate(out, {x: xv}), xv @ plan.params[w] + initial[b],
                               rtol=1e-12)


def test_the_graph_evaluates_with_the_trained_values(rng):
    x, y, w, b, out, loss = _classifier(rng)
    start = w.value.copy()
    plan = _train(x, y, loss, rng)
    assert not np.array_equal(w.value, start)
    np.testing.assert_array_equal(w.value, plan.params[w])
    np.testing.assert_array_equal(b.value, plan.params[b])
    xv = rng.standard_normal((5, 3))
    np.testing.assert_allclose(G.evaluate(out, {x: xv}), xv @ plan.params[w] + plan.params[b],
                               rtol=1e-12)


def test_writing_the_plan_changes_the_parameter(rng):
    """plan.params views and param_arena (a checkpoint loaded into the plan) are the storage."""
    x, y, w, b, out, loss = _classifier(rng)
    plan = compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=8)
    plan.params[w][...] = 2.0
    np.testing.assert_array_equal(w.value, np.full((3, 4), 2.0))
    loaded = rng.standard_normal(plan.param_arena.size)
    np.copyto(plan.param_arena, loaded)
    np.testing.assert_array_equal(np.concatenate([w.value.ravel(), b.value]), loaded)


def test_a_fed_parameter_overrides_one_evaluation_only(rng):
    x, y, w, b, out, loss = _classifier(rng)
    plan = _train(x, y, loss, rng, steps=1)
    trained = w.value.copy()
    xv = rng.standard_normal((2, 3))
    other = np.ones((3, 4))
    np.testing.assert_allclose(G.evaluate(out, {x: xv, w: other}), xv @ other + b.value,
                               rtol=1e-12)
    np.testing.assert_array_equal(w.value, trained)
    assert np.shares_memory(w.value, plan.params[w])


def test_a_failed_compile_leaves_the_parameters_alone(rng):
    x, y, w, b, out, loss = _classifier(rng)
    before = w.value
    with pytest.raises(CompileError, match="not listed in inputs"):
        compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=8, inputs=[x])
    assert w.value is before and w.value.flags.owndata


# ---- several plans ---------------------------------------------------------------------------


def test_plans_compiled_before_running_start_alike_and_the_last_trainer_holds(rng):
    x, y, w, b, out, loss = _classifier(rng)
    first = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    second = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    np.testing.assert_array_equal(first.param_arena, second.param_arena)
    assert not np.shares_memory(first.param_arena, second.param_arena)
    assert np.shares_memory(w.value, second.params[w])  # moved to the later training plan
    feed = _feed(rng)
    held = w.value.copy()
    first.run(feed)
    np.testing.assert_array_equal(w.value, held)  # the first plan trains its own copy
    second.run(feed)
    np.testing.assert_array_equal(w.value, second.params[w])
    np.testing.assert_array_equal(first.param_arena, second.param_arena)  # same start, same step


def test_a_plan_compiled_after_training_starts_from_the_trained_values(rng):
    x, y, w, b, out, loss = _classifier(rng)
    trainer = _train(x, y, loss, rng)
    resumed = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    np.testing.assert_array_equal(resumed.param_arena, trainer.param_arena)
    assert np.shares_memory(w.value, resumed.params[w])


def test_an_evaluation_plan_does_not_take_a_trained_parameter(rng):
    """A plan without an optimizer starts from a copy; the parameter stays with its trainer."""
    x, y, w, b, out, loss = _classifier(rng)
    trainer = _train(x, y, loss, rng)
    evaluator = compile(out, batch_size=8)
    np.testing.assert_array_equal(evaluator.params[w], trainer.params[w])
    assert np.shares_memory(w.value, trainer.params[w])
    snapshot = evaluator.params[w].copy()
    trainer.run(_feed(rng))
    np.testing.assert_array_equal(w.value, trainer.params[w])
    np.testing.assert_array_equal(evaluator.params[w], snapshot)
    gradients = compile(out, loss=loss, batch_size=8)  # differentiates, does not update
    assert not np.shares_memory(w.value, gradients.params[w])


def test_an_untrained_parameter_goes_to_the_first_plan_that_evaluates_it(rng):
    x, y, w, b, out, loss = _classifier(rng)
    copy = weakref.ref(w.value)
    evaluator = compile(out, batch_size=8)
    assert copy() is None and np.shares_memory(w.value, evaluator.params[w])
    trainer = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    assert np.shares_memory(w.value, trainer.params[w])


def test_a_collected_plan_gives_the_parameters_a_copy_of_their_last_values(rng):
    x, y, w, b, out, loss = _classifier(rng)
    plan = _train(x, y, loss, rng)
    last = plan.params[w].copy()
    arena = weakref.ref(plan.param_arena)  # what every view of the plan's parameters pins
    del plan
    gc.collect()
    assert arena() is None, "the parameters keep the collected plan's memory alive"
    assert w.value.flags.owndata and w.value.base is None and not w.value.flags.writeable
    np.testing.assert_array_equal(w.value, last)
    again = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    np.testing.assert_array_equal(again.params[w], last)
    assert np.shares_memory(w.value, again.params[w])


def test_a_plan_collected_after_another_took_the_parameter_leaves_it_there(rng):
    x, y, w, b, out, loss = _classifier(rng)
    first = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    second = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8)
    del first
    gc.collect()
    assert np.shares_memory(w.value, second.params[w])


def test_model_parameters_stay_in_the_model(rng):
    """An nn model's parameters are writable views of model.flat: compile copies them and
    leaves them bound to the model (fit binds the model to its plan itself)."""
    model = nn.Sequential([nn.Dense(4)], input_shape=(3,), dtype=F64, seed=0,
                          loss="softmax_cross_entropy")
    nodes = list(model.parameter_nodes().values())
    out = model.output()
    y = G.placeholder((None,), np.int64, name="y")
    loss = G.softmax_cross_entropy(out, y)
    plan = compile(loss, loss=loss, optimizer=Momentum(0.5), batch_size=8, params=nodes,
                   inputs=list(model.inputs) + [y])
    for node in nodes:
        assert np.shares_memory(node.value, model.flat)
        assert not np.shares_memory(node.value, plan.param_arena)
        assert node.value.flags.writeable
    flat = model.flat.copy()
    plan.run({model.inputs[0]: rng.standard_normal((8, 3)), y: rng.integers(0, 4, 8)})
    np.testing.assert_array_equal(model.flat, flat)


# ---- resident memory ---------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@rss_leak_check
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_a_compiled_training_plan_holds_one_copy_of_the_parameters():
    """A 40 MiB parameter (above glibc's largest mmap threshold, so freed blocks go back to
    the system at once): after compiling its training step, the process holds it once (the
    plan's parameter arena; the node's copy is gone and the gradient and momentum arenas are
    not touched before the first step). It held it three times over before, plus the copy."""
    rows, cols = 2560, 4096
    x = G.placeholder((None, rows), np.float32, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    w = G.parameter(np.full((rows, cols), 0.5, np.float32), name="w")
    loss = G.softmax_cross_entropy(x @ w, y)
    size = w.value.nbytes
    gc.collect()
    before = _rss_bytes()
    plan = compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=1)
    growth = _rss_bytes() - before
    assert growth < size // 4, f"compile added {growth / 2**20:.1f} MiB for a " \
                               f"{size / 2**20:.0f} MiB parameter"
    assert np.shares_memory(w.value, plan.param_arena) and float(w.value[-1, -1]) == 0.5


def test_large_parameter_copies_have_pages_of_their_own(rng):
    """A parameter copy of 64 KiB or more is an anonymous mapping (freed at once when compile
    hands it over, where a heap block would stay resident); a smaller one is numpy's."""
    big = G.parameter(rng.standard_normal((128, 64)))  # exactly 64 KiB
    small = G.parameter(rng.standard_normal((127, 64)))
    assert isinstance(big.value.base, mmap.mmap) and small.value.flags.owndata
    assert not big.value.flags.writeable and not small.value.flags.writeable
    x = G.placeholder((None, 128), F64, name="x")
    loss = G.sum(G.square(x @ big))
    before = big.value.copy()
    copy = weakref.ref(big.value.base)
    plan = compile(loss, batch_size=2)  # evaluation only: the plan still takes the copy
    gc.collect()
    assert copy() is None and np.shares_memory(big.value, plan.param_arena)
    np.testing.assert_array_equal(big.value, before)
    del plan
    gc.collect()  # the collected plan gives the parameter a copy of its own again
    assert isinstance(big.value.base, mmap.mmap)
    np.testing.assert_array_equal(big.value, before)


def test_a_dense_backward_overwrites_what_dies_in_it(rng):
    """relu layers: each dense backward's diff_pre takes the slot of its diff_dst, and its
    diff_src the slot of the saved activation, when nothing after it reads them."""
    x = G.placeholder((None, 20), F64, name="x")
    y = G.placeholder((None,), np.int64, name="y")
    h = x
    for a, b in ((20, 30), (30, 30), (30, 5)):
        h = h @ G.parameter(rng.standard_normal((a, b)) / 5) + G.parameter(np.zeros(b))
        h = G.relu(h) if b != 5 else h
    loss = G.softmax_cross_entropy(h, y)
    plan = compile(loss, loss=loss, optimizer=Momentum(0.1, 0.9), batch_size=16)
    backward = [ins for ins in plan.instructions if ins.opcode == "dense_backward"]
    in_place = [ins for ins in backward if ins.refs[4] is not None]
    assert len(in_place) == 2
    for ins in in_place:
        (dst, _), (pre, _) = ins.refs[3], ins.refs[4]
        assert dst is not pre and (pre.arena, pre.offset) == (dst.arena, dst.offset)
    (saved, _), (diff_src, _) = in_place[0].refs[2], in_place[0].refs[5]  # the 30 -> 30 layer
    assert saved is not diff_src and (saved.arena, saved.offset) == ("acts", diff_src.offset)
    # three 16 x 30 buffers (h1; h2, then dh1 over it; dh2) and the logits' small ones
    assert plan.memory.arena <= 3 * 16 * 30 + 256 < plan.memory.naive
    # the step still equals the reference interpreter's gradients
    feed = {x: rng.standard_normal((16, 20)), y: rng.integers(0, 5, 16)}
    params = list(plan.params)
    grads = G.evaluate(G.grad(loss, params), feed)
    kept = compile(loss, loss=loss, batch_size=16)
    kept.run(feed)
    for p, g in zip(params, grads, strict=True):
        np.testing.assert_allclose(kept.grads[p], g, rtol=1e-12, atol=1e-14)


# ---- import ffnc --------------------------------------------------------------------------------

LAZY = ("compiler", "datasets", "diagnosis", "graph", "io", "kernels", "nn", "optim", "train")


def _run_python(code: str) -> dict:
    result = subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_ffnc_imports_no_subpackage_until_used():
    result = _run_python(f"""
        import json, sys
        import ffnc
        loaded = sorted(m for m in sys.modules if m.startswith("ffnc."))
        lazy = {LAZY!r}
        first = ffnc.nn
        print(json.dumps({{
            "loaded": loaded,
            "nn": first is sys.modules["ffnc.nn"] and first is ffnc.nn,
            "after_nn": [m for m in lazy if "ffnc." + m in sys.modules],
        }}))
        """)
    assert not [m for m in result["loaded"] if m.split(".")[1] in LAZY], result["loaded"]
    assert result["nn"] and "nn" in result["after_nn"]


def test_ffnc_graph_imports_its_optional_modules_on_first_use():
    result = _run_python("""
        import json, sys
        import ffnc.graph as G
        optional = ["check", "forward", "higher", "interpreter"]
        before = [m for m in optional if "ffnc.graph." + m in sys.modules]
        evaluate, hvp, names = G.evaluate, G.hvp, dir(G)
        try:
            G.no_such_name
            missing = "no error"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({
            "before": before,
            "same": [evaluate is sys.modules["ffnc.graph.interpreter"].evaluate,
                     hvp is sys.modules["ffnc.graph.higher"].hvp],
            "dir": all(n in names for n in G.__all__), "missing": missing,
        }))
        """)
    assert result["before"] == [] and all(result["same"]) and result["dir"]
    assert "no_such_name" in result["missing"]


def test_every_public_name_resolves_as_before():
    result = _run_python("""
        import json, sys
        import ffnc
        names = {name: type(getattr(ffnc, name)).__name__ for name in ffnc.__all__}
        from ffnc import diagnose, load, nn, save
        from ffnc import compiler as c, graph as g, train as t
        import ffnc.io
        try:
            ffnc.no_such_name
            missing = "no error"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({
            "names": names,
            "dir": sorted(dir(ffnc)),
            "same": [load is ffnc.io.load, save is ffnc.io.save, nn is sys.modules["ffnc.nn"],
                     diagnose is sys.modules["ffnc.diagnosis"].diagnose,
                     c is sys.modules["ffnc.compiler"], g is sys.modules["ffnc.graph"],
                     t is sys.modules["ffnc.train"]],
            "missing": missing,
            "hasattr": hasattr(ffnc, "no_such_name"),
        }))
        """)
    names = result["names"]
    for name in ("nn", "optim", "datasets", "kernels"):
        assert names[name] == "module", name
    for name in ("load", "save", "diagnose", "show_config", "set_num_threads", "get_isa"):
        assert names[name] in ("function", "builtin_function_or_method",
                               "cython_function_or_method"), (name, names[name])
    assert all(result["same"]), result["same"]
    assert "no_such_name" in result["missing"] and not result["hasattr"]
    assert set(names) | set(LAZY) <= set(result["dir"])


def test_star_import_gives_every_public_name():
    result = _run_python("""
        import json
        from ffnc import *  # noqa: F403
        import ffnc
        print(json.dumps([name for name in ffnc.__all__ if name not in globals()]))
        """)
    assert result == []
