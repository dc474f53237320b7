"""The C kernels, one call each: validated, GIL released, float32 and float64.

These are the building blocks the graph compiler fuses into plans; they are also useful on
their own and are what the tests compare against numpy references.
"""

from ffnc._core import (
    ACTIVATIONS,
    activation_backward,
    activation_forward,
    activation_saves,
    adam_update,
    bce_with_logits,
    bce_with_logits_backward,
    bias_backward,
    bias_forward,
    dense,
    dense_backward,
    gemm,
    l1,
    l1_backward,
    log_softmax,
    log_softmax_backward,
    momentum_update,
    mse,
    mse_backward,
    prelu_backward,
    prelu_forward,
    sgd_update,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)

__all__ = [
    "ACTIVATIONS",
    "activation_backward",
    "activation_forward",
    "activation_saves",
    "adam_update",
    "bce_with_logits",
    "bce_with_logits_backward",
    "bias_backward",
    "bias_forward",
    "dense",
    "dense_backward",
    "gemm",
    "l1",
    "l1_backward",
    "log_softmax",
    "log_softmax_backward",
    "momentum_update",
    "mse",
    "mse_backward",
    "prelu_backward",
    "prelu_forward",
    "sgd_update",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
]
