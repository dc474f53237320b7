"""ffnc.compiler: graphs to native plans, one C call per training step.

    >>> import numpy as np, ffnc.graph as G
    >>> from ffnc.compiler import compile, Momentum
    >>> x = G.placeholder((None, 2), np.float32, name="x")
    >>> y = G.placeholder((None,), np.int64, name="y")
    >>> w = G.parameter(np.zeros((2, 2), np.float32), name="w")
    >>> loss = G.softmax_cross_entropy(x @ w, y)
    >>> plan = compile(loss, loss=loss, optimizer=Momentum(0.1), batch_size=4)
    >>> float(plan.run({"x": np.ones((4, 2), np.float32), "y": np.zeros(4, np.int64)}))
    0.6931...

See ffnc.compiler.lower for the fusions and ffnc.compiler.memory for the memory plan. The
optimizers (SGD, Momentum, Adam, AdamW, RMSprop) are those of ffnc.optim, re-exported here.
"""

from ffnc.compiler.compile import compile
from ffnc.compiler.lower import SUPPORTED_OPS
from ffnc.compiler.memory import MemoryReport
from ffnc.compiler.plan import Plan, PlanInterrupted, PlanProfile
from ffnc.compiler.program import CompileError
from ffnc.optim import SGD, Adam, AdamW, Momentum, RMSprop

__all__ = ["SGD", "SUPPORTED_OPS", "Adam", "AdamW", "CompileError", "MemoryReport", "Momentum",
           "Plan", "PlanInterrupted", "PlanProfile", "RMSprop", "compile"]
