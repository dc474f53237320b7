"""A plan's step counter at its limit (2**63 - 1, set so or reached): the next run is refused
with a message that says so and names the limit. It said "instruction 0: an argument is
outside its valid range" before, though no instruction was at fault."""

import numpy as np
import pytest

import ffnc.graph as G
from ffnc import optim
from ffnc.compiler import compile as compile_plan

LIMIT = 2**63 - 1
MESSAGE = r"the step counter would pass its limit, 2\*\*63 - 1"


def _plan():
    x = G.placeholder((None, 3), np.float64, name="x")
    w = G.parameter(np.full((3, 2), 0.5), name="w")
    y = G.matmul(x, w)
    loss = G.mean(G.sum(y * y, axis=1))
    return compile_plan([loss], batch_size=4, loss=loss, params=[w],
                        optimizer=optim.Adam(1e-3)), w


FEED = {"x": np.ones((4, 3))}


@pytest.mark.parametrize("call, where", [
    (lambda plan: plan.run(FEED), "plan.run"),
    (lambda plan: plan.run_epoch({"x": np.ones((9, 3))}, 4), "plan.run_epoch"),
    (lambda plan: plan.compute_gradients(FEED), "plan.compute_gradients"),
])
def test_a_run_at_the_limit_names_the_problem(call, where):
    plan, w = _plan()
    plan.step = LIMIT
    before = plan.params[w].copy()
    with pytest.raises(ValueError, match=rf"^{where}: {MESSAGE}") as info:
        call(plan)
    assert "instruction" not in str(info.value) and "step 0" not in str(info.value)
    assert plan.step == LIMIT
    np.testing.assert_array_equal(plan.params[w], before)


def test_an_epoch_that_would_count_past_the_limit_is_refused_whole():
    plan, w = _plan()
    plan.step = LIMIT - 2
    before = plan.params[w].copy()
    with pytest.raises(ValueError, match=rf"^plan.run_epoch: {MESSAGE}"):
        plan.run_epoch({"x": np.ones((9, 3))}, 4)  # three steps; two fit
    assert plan.step == LIMIT - 2
    np.testing.assert_array_equal(plan.params[w], before)
    plan.run_epoch({"x": np.ones((8, 3))}, 4)  # two do
    assert plan.step == LIMIT
    with pytest.raises(ValueError, match=MESSAGE):
        plan.run(FEED)
    plan.step = 7  # a smaller step runs again
    plan.run(FEED)
    assert plan.step == 8
