"""Output units and their losses, each the negative log-likelihood of an output distribution.

A loss reads the model's output (the pre-activation of the output unit: the unit's nonlinearity
is part of the loss, computed in the numerically safe form) and a target, and gives the mean
over samples of the per-sample loss, optionally weighted: with per-sample weights w the loss is
sum_i w_i l_i / n (so weights of one give the unweighted loss).

    mse                   linear output, squared error: the Gaussian NLL with a fixed variance
                          (up to scale and a constant); mean over samples and output units
    l1                    linear output, absolute error (the conditional median)
    bce                   sigmoid output, binary cross-entropy from the logits z in the
                          softplus form softplus(z) - y z: it saturates only when the answer
                          is right
    softmax_cross_entropy softmax output, cross-entropy against integer labels (fused kernel)
                          or probability targets
    gaussian_nll          Gaussian with learned mean and precision: output [mu | r], precision
                          beta = softplus(r) (or exp(r)), NLL 1/2 (beta (y - mu)^2 - log beta
                          + log 2 pi) summed over the target's dimensions
    mdn                   mixture density network with K components: output [mixing logits
                          (K) | means (K d) | precisions' pre-activations (K d)], mixing
                          weights softmax, NLL -logsumexp_k(log pi_k + log N(y; mu_k, beta_k))

Every loss is built from registered graph ops with their VJP and JVP rules, so it compiles
and can be differentiated twice. ``predict(output)`` turns outputs into predictions
(probabilities, means); the Gaussian and MDN losses also sample from the predicted
distribution.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import ffnc.graph as G
from ffnc.graph.ir import INDEX_DTYPES, Node, format_shape
from ffnc.nn.config import Configured, parse_spec

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _sigmoid_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _softplus_np(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 0) + np.log1p(np.exp(-np.abs(r)))


def _output_array(output: Any, width: int | None, who: str) -> np.ndarray:
    out = np.asarray(output)
    if out.ndim != 2 or (width is not None and out.shape[1] != width):
        want = f"(n, {width})" if width is not None else "(n, outputs)"
        raise ValueError(f"{who}: model outputs must have shape {want}, got {out.shape}")
    if out.dtype not in (np.float32, np.float64):
        raise TypeError(f"{who}: model outputs must be float32 or float64, got {out.dtype}")
    return out


class Loss(Configured):
    """Base class: a loss on a model output node and a target node.

    Subclasses define ``per_sample(output, target)`` (an (n,) node) and may override
    ``__call__`` with a fused form of the unweighted mean.
    """

    name: str = ""

    def __call__(self, output: Node, target: Node, weight: Node | None = None) -> Node:
        """The mean over samples of the loss (weighted: sum_i w_i l_i / n), a scalar node."""
        self.check_output(output.shape)
        self.check_target(output, target)
        per_sample = self.per_sample(output, target)
        if weight is None:
            return G.mean(per_sample)
        return G.mean(per_sample * self._check_weight(output, weight))

    def per_sample(self, output: Node, target: Node) -> Node:
        """The loss of each sample, an (n,) node."""
        raise TypeError(f"{type(self).__name__} does not define per_sample()")

    def check_output(self, shape: tuple) -> None:
        """Raises ValueError when a model output of this shape cannot feed the loss."""
        if len(shape) != 2:
            raise ValueError(f"loss {self.name}: the model output must have shape (batch, "
                             f"outputs), got {format_shape(shape)}")

    def check_target(self, output: Node, target: Node) -> None:
        """Raises TypeError/ValueError when `target` does not fit `output`."""
        expected = self._target_spec(output.shape, output.dtype)
        if target.dtype != expected[1]:
            raise TypeError(f"loss {self.name}: target {target.label} must be "
                            f"{np.dtype(expected[1]).name}, got {target.dtype.name}")
        if target.shape != expected[0]:
            raise ValueError(f"loss {self.name}: target {target.label} must have shape "
                             f"{format_shape(expected[0])} for outputs of shape "
                             f"{format_shape(output.shape)}, got {format_shape(target.shape)}")

    def _target_spec(self, output_shape: tuple, dtype: np.dtype) -> tuple[tuple, np.dtype]:
        return tuple(output_shape), np.dtype(dtype)

    def _check_weight(self, output: Node, weight: Node) -> Node:
        if not isinstance(weight, Node):
            raise TypeError(f"loss {self.name}: weight must be a graph Node, got "
                            f"{type(weight).__name__}")
        if weight.dtype != output.dtype:
            raise TypeError(f"loss {self.name}: weight {weight.label} must be "
                            f"{output.dtype.name} like the outputs, got {weight.dtype.name}")
        if weight.shape != (output.shape[0],):
            raise ValueError(f"loss {self.name}: weight {weight.label} must have shape "
                             f"({'None' if output.shape[0] is None else output.shape[0]},) "
                             f"(one per sample), got {format_shape(weight.shape)}")
        return weight

    def target_placeholder(self, model: Any, name: str = "target") -> Node:
        """A placeholder for this loss's targets given `model` (its output shape and dtype),
        e.g. int64 (None,) for class labels."""
        output = model.output(False)
        self.check_output(output.shape)
        shape, dtype = self._target_spec(output.shape, output.dtype)
        return G.placeholder(shape, dtype, name=name)

    def weight_placeholder(self, model: Any, name: str = "weight") -> Node:
        """A placeholder for per-sample weights: (None,) in the model's dtype."""
        return G.placeholder((None,), model.dtype, name=name)

    def predict(self, output: np.ndarray) -> np.ndarray:
        """The prediction a model output stands for (e.g. class probabilities)."""
        return np.asarray(output)


def _mean_over_units(x: Node) -> Node:
    return G.mean(x, tuple(range(1, x.ndim))) if x.ndim > 1 else x


class MSE(Loss):
    """Linear output and squared error (p - t)^2, averaged over samples and output units:
    the NLL of a Gaussian with fixed variance, up to scale and a constant."""

    name = "mse"

    def __call__(self, output, target, weight=None):
        if weight is None:
            self.check_output(output.shape)
            self.check_target(output, target)
            return G.mse(output, target)
        return super().__call__(output, target, weight)

    def per_sample(self, output, target):
        return _mean_over_units(G.square(output - target))


class L1(Loss):
    """Linear output and absolute error |p - t| (the conditional median), averaged over
    samples and output units; derivative sign(p - t), 0 at 0."""

    name = "l1"

    def __call__(self, output, target, weight=None):
        if weight is None:
            self.check_output(output.shape)
            self.check_target(output, target)
            return G.l1(output, target)
        return super().__call__(output, target, weight)

    def per_sample(self, output, target):
        return _mean_over_units(G.abs(output - target))


class BCE(Loss):
    """Sigmoid output and binary cross-entropy from the logits z against targets y in [0, 1]:
    softplus(z) - y z per unit (= softplus((1 - 2y) z) for y in {0, 1}), averaged over samples
    and units. Its gradient sigmoid(z) - y vanishes only when the prediction is right."""

    name = "bce"

    def __call__(self, output, target, weight=None):
        if weight is None:
            self.check_output(output.shape)
            self.check_target(output, target)
            return G.bce_with_logits(output, target)
        return super().__call__(output, target, weight)

    def per_sample(self, output, target):
        return _mean_over_units(G.softplus(output) - target * output)

    def predict(self, output):
        return _sigmoid_np(np.asarray(output))


class SoftmaxCrossEntropy(Loss):
    """Softmax output and cross-entropy: -log softmax(z)[label] for integer labels (the fused,
    stable kernel), or -sum_k t_k log softmax(z)_k for probability targets t (rows summing to
    one). probabilities: which kind ``target_placeholder`` makes; a call takes either, told
    apart by the target's dtype (integer labels or floats)."""

    name = "softmax_cross_entropy"

    def __init__(self, probabilities: bool = False) -> None:
        self.probabilities = bool(probabilities)

    def _target_spec(self, output_shape, dtype):
        if self.probabilities:
            return tuple(output_shape), np.dtype(dtype)
        return (output_shape[0],), np.dtype(np.int64)

    def check_target(self, output, target):
        if target.dtype in INDEX_DTYPES:
            if target.shape != (output.shape[0],):
                raise ValueError(f"loss {self.name}: labels {target.label} must have shape "
                                 f"({'None' if output.shape[0] is None else output.shape[0]},)"
                                 f" for outputs of shape {format_shape(output.shape)}, got "
                                 f"{format_shape(target.shape)}")
            return
        if target.dtype != output.dtype:
            raise TypeError(f"loss {self.name}: target {target.label} must be int class labels "
                            f"or {output.dtype.name} probabilities, got {target.dtype.name}")
        if target.shape != output.shape:
            raise ValueError(f"loss {self.name}: probability targets {target.label} must have "
                             f"the outputs' shape {format_shape(output.shape)}, got "
                             f"{format_shape(target.shape)}")

    def __call__(self, output, target, weight=None):
        if weight is None and target.dtype in INDEX_DTYPES:
            self.check_output(output.shape)
            self.check_target(output, target)
            return G.softmax_cross_entropy(output, target)
        return super().__call__(output, target, weight)

    def per_sample(self, output, target):
        if target.dtype in INDEX_DTYPES:
            picked = G.sum(output * G.one_hot(target, output.shape[1], output.dtype), 1)
            return G.logsumexp(output, 1) - picked
        return -G.sum(target * G.log_softmax(output, 1), 1)

    def predict(self, output):
        return _softmax_np(np.asarray(output))

    def get_config(self):
        return {"class": self.name, **({"probabilities": True} if self.probabilities else {})}


_PRECISIONS = ("softplus", "exp")


def _check_precision(who: str, precision: str) -> str:
    if precision not in _PRECISIONS:
        raise ValueError(f"{who}: precision must be 'softplus' or 'exp', got {precision!r}")
    return precision


# Below this pre-activation log(softplus(r)) = r - e^r / 2 + ... is r to within 5e-14.
_LOG_SOFTPLUS_LINEAR = -30.0


def _log_softplus(r: Node) -> Node:
    """log(softplus(r)), finite with finite derivatives for every finite r.

    softplus(r) underflows to 0 below about -745 (float64) or -104 (float32), where the log
    would be -inf and its derivative sigmoid(r) / softplus(r) = 0 / 0; there log softplus(r)
    is r itself. The log branch sees r clamped, so its masked-out derivative stays finite
    (a where() with a NaN in the unused branch would still poison the gradient).
    """
    clamped = G.maximum(r, _LOG_SOFTPLUS_LINEAR)
    return G.where(G.greater(r, _LOG_SOFTPLUS_LINEAR), G.log(G.softplus(clamped)), r)


def _precision_and_log(raw: Node, precision: str) -> tuple[Node, Node]:
    """The precision beta > 0 from its pre-activation, and log beta (stable)."""
    if precision == "exp":
        return G.exp(raw), raw
    return G.softplus(raw), _log_softplus(raw)


def _precision_np(raw: np.ndarray, precision: str) -> np.ndarray:
    return np.exp(raw) if precision == "exp" else _softplus_np(raw)


class GaussianNLL(Loss):
    """A Gaussian output with learned mean and (diagonal) precision, heteroscedastic.

    The model output is [mu | r] with d columns each for a d-dimensional target; the precision
    is beta = softplus(r) (default) or exp(r), and the per-sample NLL is
    sum_j 1/2 (beta_j (y_j - mu_j)^2 - log beta_j + log 2 pi).
    """

    name = "gaussian_nll"

    def __init__(self, precision: str = "softplus") -> None:
        self.precision = _check_precision("gaussian_nll", precision)

    def check_output(self, shape):
        super().check_output(shape)
        if shape[1] is None or shape[1] % 2:
            raise ValueError(f"loss {self.name}: the model output [mean | precision] needs an "
                             f"even number of columns, got {format_shape(shape)}")

    def _target_spec(self, output_shape, dtype):
        return (output_shape[0], output_shape[1] // 2), np.dtype(dtype)

    def per_sample(self, output, target):
        d = output.shape[1] // 2
        mu, raw = G.split(output, [d, d], 1)
        beta, log_beta = _precision_and_log(raw, self.precision)
        terms = beta * G.square(target - mu) - log_beta
        return G.sum(terms, 1) * 0.5 + d * _HALF_LOG_2PI

    def initial_bias(self, targets: np.ndarray) -> np.ndarray:
        """A bias for the output layer that starts the prediction at the targets' marginal
        distribution: mean mean(y), standard deviation std(y), per dimension."""
        y = np.asarray(targets, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or len(y) == 0:
            raise ValueError(f"gaussian_nll.initial_bias: targets must have shape (n, d) with "
                             f"n >= 1, got {y.shape}")
        beta = 1 / np.maximum(np.var(y, axis=0), 1e-12)
        raw = np.log(beta) if self.precision == "exp" else beta + np.log(-np.expm1(-beta))
        return np.concatenate([np.mean(y, axis=0), raw])

    def parts(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, precision) from outputs of shape (n, 2d)."""
        out = _output_array(output, None, self.name)
        d = out.shape[1] // 2
        return out[:, :d], _precision_np(out[:, d:], self.precision)

    def predict(self, output):
        """The predicted mean."""
        return self.parts(output)[0]

    def log_density(self, output: np.ndarray, y: np.ndarray) -> np.ndarray:
        """log p(y | x) under the predicted Gaussians: outputs (n, 2d), y (n, d) or (n, m, d)
        for m points per row; returns (n,) or (n, m)."""
        mu, beta = self.parts(output)
        y = np.asarray(y, dtype=np.float64)
        single = y.ndim == 2
        pts = y[:, None, :] if single else y
        terms = 0.5 * (np.log(beta)[:, None] - beta[:, None] * (pts - mu[:, None]) ** 2)
        result = np.sum(terms, axis=-1) - mu.shape[1] * _HALF_LOG_2PI
        return result[:, 0] if single else result

    def std(self, output: np.ndarray) -> np.ndarray:
        """The predicted standard deviation 1 / sqrt(beta)."""
        return 1 / np.sqrt(self.parts(output)[1])

    def sample(self, output: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws per row from the predicted Gaussians: shape (rows, n, d)."""
        mu, beta = self.parts(output)
        noise = rng.standard_normal((mu.shape[0], n, mu.shape[1]))
        return mu[:, None, :] + noise / np.sqrt(beta)[:, None, :]

    def get_config(self):
        return {"class": self.name,
                **({"precision": self.precision} if self.precision != "softplus" else {})}


class MDN(Loss):
    """A mixture density network output: K Gaussian components with diagonal precisions for a
    d-dimensional target.

    The model output has K (1 + 2d) columns (``units``): mixing logits (K), means (K d, the d
    of component 0 first), precision pre-activations (K d; beta = softplus or exp). Mixing
    weights are the softmax of the logits. The per-sample NLL is
    -logsumexp_k(log pi_k + sum_j 1/2 (log beta_kj - beta_kj (y_j - mu_kj)^2 - log 2 pi)),
    computed with log_softmax and logsumexp (stable for any logits).
    """

    name = "mdn"

    def __init__(self, components: int, dims: int = 1, precision: str = "softplus") -> None:
        for what, v in (("components", components), ("dims", dims)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"mdn: {what} must be an int >= 1, got {v!r}")
        self.components, self.dims = int(components), int(dims)
        self.precision = _check_precision("mdn", precision)

    @property
    def units(self) -> int:
        """The number of model outputs the mixture needs: K (1 + 2d)."""
        return self.components * (1 + 2 * self.dims)

    def check_output(self, shape):
        super().check_output(shape)
        if shape[1] != self.units:
            raise ValueError(f"loss {self.name}: {self.components} components of dimension "
                             f"{self.dims} need {self.units} model outputs (K logits, K d "
                             f"means, K d precisions), got {format_shape(shape)}")

    def _target_spec(self, output_shape, dtype):
        return (output_shape[0], self.dims), np.dtype(dtype)

    def per_sample(self, output, target):
        k, d = self.components, self.dims
        logits, mu, raw = G.split(output, [k, k * d, k * d], 1)
        beta, log_beta = _precision_and_log(raw, self.precision)
        if d == 1:
            y = target  # (n, 1) broadcasts against the (n, K) means
        else:
            # every component's copy of y, (n, K d), through a constant 0/1 matrix
            y = target @ G.constant(np.tile(np.eye(d), (1, k)).astype(output.dtype))
        half = (log_beta - beta * G.square(y - mu)) * 0.5
        if d > 1:  # sum each component's d terms: (n, K d) @ (K d, K)
            half = half @ G.constant(np.repeat(np.eye(k), d, axis=0).astype(output.dtype))
        log_joint = G.log_softmax(logits, 1) + half - d * _HALF_LOG_2PI
        return -G.logsumexp(log_joint, 1)

    def initial_bias(self, targets: np.ndarray) -> np.ndarray:
        """A bias for the output layer that starts the mixture spread over the targets: equal
        weights, means at the K quantiles (k + 1/2) / K of each target dimension, standard
        deviations 2 std(y) / K (neighbours overlap). With it (and small output weights) the
        components begin on different parts of the data instead of all at the mean, which
        makes them less likely to collapse onto one another early in training."""
        y = np.asarray(targets, dtype=np.float64)
        if y.ndim == 1 and self.dims == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != self.dims or len(y) == 0:
            raise ValueError(f"mdn.initial_bias: targets must have shape (n, {self.dims}) with "
                             f"n >= 1, got {y.shape}")
        k, d = self.components, self.dims
        means = np.quantile(y, (np.arange(k) + 0.5) / k, axis=0)  # (K, d)
        sd = np.maximum(2 * np.std(y, axis=0) / k, 1e-6)  # (d,)
        beta = np.broadcast_to(1 / sd ** 2, (k, d))
        raw = np.log(beta) if self.precision == "exp" else beta + np.log(-np.expm1(-beta))
        return np.concatenate([np.zeros(k), means.ravel(), raw.ravel()])

    def mixture(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights (n, K), means (n, K, d), precisions (n, K, d)) from outputs."""
        out = _output_array(output, self.units, self.name)
        k, d = self.components, self.dims
        pi = _softmax_np(out[:, :k])
        mu = out[:, k:k + k * d].reshape(-1, k, d)
        beta = _precision_np(out[:, k + k * d:], self.precision).reshape(-1, k, d)
        return pi, mu, beta

    def log_density(self, output: np.ndarray, y: np.ndarray) -> np.ndarray:
        """log p(y | x) under the predicted mixtures: outputs (n, units), y (n, d) or
        (n, m, d) for m points per row; returns (n,) or (n, m)."""
        pi, mu, beta = self.mixture(output)
        y = np.asarray(y, dtype=np.float64)
        single = y.ndim == 2
        pts = y[:, None, :] if single else y  # (n, m, d)
        diff = pts[:, :, None, :] - mu[:, None, :, :]  # (n, m, K, d)
        comp = 0.5 * np.sum(np.log(beta)[:, None] - beta[:, None] * diff ** 2, axis=-1) \
            - self.dims * _HALF_LOG_2PI
        with np.errstate(divide="ignore"):
            joint = np.log(pi)[:, None, :] + comp
        top = np.max(joint, axis=-1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0)
        result = np.log(np.sum(np.exp(joint - top), axis=-1)) + top[..., 0]
        return result[:, 0] if single else result

    def mean(self, output: np.ndarray) -> np.ndarray:
        """The mixture mean sum_k pi_k mu_k, shape (n, d)."""
        pi, mu, _ = self.mixture(output)
        return np.einsum("nk,nkd->nd", pi, mu)

    def mode(self, output: np.ndarray) -> np.ndarray:
        """The component mean where the mixture density is highest, shape (n, d): the mode
        when the components are separated (a mixture's exact mode has no closed form)."""
        _, mu, _ = self.mixture(output)
        density = self.log_density(output, mu)  # (n, K)
        best = np.argmax(density, axis=1)
        return mu[np.arange(mu.shape[0]), best]

    def sample(self, output: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws per row from the predicted mixtures, shape (rows, n, d)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"mdn.sample: n must be an int >= 1, got {n!r}")
        pi, mu, beta = self.mixture(output)
        rows = pi.shape[0]
        cdf = np.cumsum(pi, axis=1)
        u = rng.random((rows, n))
        comp = np.minimum((u[:, :, None] > cdf[:, None, :]).sum(-1), self.components - 1)
        idx = np.arange(rows)[:, None]
        noise = rng.standard_normal((rows, n, self.dims))
        return mu[idx, comp] + noise / np.sqrt(beta[idx, comp])

    def predict(self, output):
        """The mixture mean (see also mode and sample)."""
        return self.mean(output)

    def get_config(self):
        cfg: dict[str, Any] = {"class": self.name, "components": self.components,
                               "dims": self.dims}
        if self.precision != "softplus":
            cfg["precision"] = self.precision
        return cfg


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (
    SoftmaxCrossEntropy, BCE, MSE, L1, GaussianNLL, MDN)}


def get(spec: str | dict | Loss | None) -> Loss | None:
    """A loss from a name ("mse"), a config dict ({"class": "mdn", "components": 3}) or a Loss
    (returned as is); None stays None."""
    if spec is None or isinstance(spec, Loss):
        return spec
    name, options = parse_spec(spec, "loss", "an ffnc.nn.losses.Loss")
    cls = LOSSES.get(name)
    if cls is None:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"loss {name!r}: bad options {options}: {exc}") from None


__all__ = ["BCE", "L1", "LOSSES", "MDN", "MSE", "GaussianNLL", "Loss", "SoftmaxCrossEntropy",
           "get"]
