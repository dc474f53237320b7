"""The C kernels, one call each: validated, GIL released, float32 and float64.

These are the building blocks the graph compiler fuses into plans; they are also useful on
their own and are what the tests compare against numpy references.
"""

from ffnc._core import (
    ACTIVATIONS,
    activation_backward,
    activation_forward,
    activation_saves,
    bias_backward,
    bias_forward,
    prelu_backward,
    prelu_forward,
)

__all__ = [
    "ACTIVATIONS",
    "activation_backward",
    "activation_forward",
    "activation_saves",
    "bias_backward",
    "bias_forward",
    "prelu_backward",
    "prelu_forward",
]
