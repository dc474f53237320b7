"""Layers: the building blocks of Sequential and functional models.

A layer describes a function of its inputs and its parameters. A model builds it: it asks the
layer for its output shape (``output_shape``, which checks the input shapes and names the
layer in any error), draws the initial parameters from the model's one Generator
(``initial_parameters``), stores them in the model's flat buffer as parameter nodes, and
builds the layer's graph (``forward``). A layer belongs to one model and, in a functional
model, is called once.

Hidden units: Dense (affine, optional fused activation), LowRank (W = V U), Maxout, RBF, PReLU,
every activation of ffnc.graph.ACTIVATIONS as a layer (Activation, ReLU, ...), Softmax and
LogSoftmax, Dropout, Identity; Add and Concat join several inputs (skip connections, the
lecture's f_{2,1}(h1, h2)).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

import ffnc.graph as G
from ffnc._validate import count, flag
from ffnc.graph.ir import Node, finite_float, format_shape
from ffnc.nn import initializers
from ffnc.nn.initializers import Initializer
from ffnc.nn.module import Module

Shape = tuple[int | None, ...]
ACTIVATION_NAMES = ("identity",) + tuple(G.ACTIVATIONS)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _check_activation(layer: str, activation: str, alpha: float | None) -> None:
    if activation not in ACTIVATION_NAMES:
        raise ValueError(f"{layer}: activation must be one of {', '.join(ACTIVATION_NAMES)}; "
                         f"got {activation!r}")
    takes_alpha = activation != "identity" and G.ACTIVATIONS[activation].default_alpha is not None
    if alpha is not None:
        if not takes_alpha:
            raise ValueError(f"{layer}: activation {activation!r} takes no alpha (got "
                             f"alpha={alpha!r})")
        if finite_float(alpha) is None or alpha < 0:
            raise ValueError(f"{layer}: alpha must be a finite number >= 0, got {alpha!r}")


class Layer(Module):
    """Base class of layers.

    Subclasses define ``output_shape(input_shapes)``, ``initial_parameters(...)`` (for layers
    with parameters), ``forward(inputs, training)`` and ``get_config()``. ``n_inputs`` is the
    number of inputs the layer takes (None: two or more).
    """

    n_inputs: int | None = 1

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string without "
                             f"'.', got {name!r}")
        self.name = name
        self.label = name or type(self).__name__  # the model sets the name it gives the layer
        self._nodes: dict[str, Node] = {}
        self._model: Any = None
        self._called = False
        self.input_shapes: list[Shape] | None = None
        self.built_output_shape: Shape | None = None

    # ---- what subclasses define ----------------------------------------------------------

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        """The output shape (batch dimension None) for these input shapes; a ValueError naming
        the layer when they do not fit it."""
        return self._single(input_shapes)

    def initial_parameters(self, input_shapes: list[Shape], rng: np.random.Generator,
                           dtype: np.dtype) -> dict[str, np.ndarray]:
        """The parameters' initial values by local name, drawn from rng (the model's)."""
        return {}

    def forward(self, inputs: list[Node], training: bool) -> Node:
        """The layer's output graph from its input nodes (parameters: ``self.param(name)``)."""
        raise TypeError(f"{type(self).__name__} does not define forward()")

    def get_config(self) -> dict[str, Any]:
        return self._config()

    # ---- shared machinery ----------------------------------------------------------------

    def error(self, message: str) -> ValueError:
        """A ValueError whose message names the layer."""
        return ValueError(f"layer {self.label!r} ({type(self).__name__}): {message}")

    def _single(self, input_shapes: list[Shape]) -> Shape:
        if len(input_shapes) != 1:
            raise self.error(f"takes one input, got {len(input_shapes)}")
        return input_shapes[0]

    def _features(self, input_shapes: list[Shape]) -> int:
        """The number of features of a (batch, features) input."""
        shape = self._single(input_shapes)
        if len(shape) != 2 or shape[1] is None:
            raise self.error(f"expects inputs of shape (batch, features), got "
                             f"{format_shape(shape)}")
        return int(shape[1])

    def _config(self, **options: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {"class": type(self).__name__, **options}
        if self.name is not None:
            cfg["name"] = self.name
        return cfg

    def param(self, name: str) -> Node:
        """The parameter node `name` of this (built) layer."""
        return self._nodes[name]

    def parameter_nodes(self) -> dict[str, Node]:
        """The layer's parameter nodes by local name ("weight", "bias", ...); empty until a
        model has built the layer."""
        return dict(self._nodes)

    def _describe(self) -> str:
        return f"layer {self.label!r} ({type(self).__name__})"

    def __call__(self, inputs: Any) -> Any:
        """Functional API: applies the layer to symbolic tensors (ffnc.nn.Input or other
        layers' outputs) and returns the symbolic output tensor."""
        from ffnc.nn.models import Tensor

        tensors = [inputs] if isinstance(inputs, Tensor) else list(inputs) \
            if isinstance(inputs, (list, tuple)) else None
        if not tensors or any(not isinstance(t, Tensor) for t in tensors):
            raise TypeError(f"{self._describe()}: call it on symbolic tensors (ffnc.nn.Input "
                            f"or another layer's output), got {inputs!r}")
        if self._called or self._model is not None:
            raise ValueError(f"{self._describe()} is already used; a layer is called once "
                             f"(create another layer for another use)")
        shape = self.output_shape([t.shape for t in tensors])
        self._called = True
        return Tensor(shape, self, tensors)

    def __repr__(self) -> str:
        options = {k: v for k, v in self.get_config().items() if k != "class"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


def _initializer_options(**pairs: tuple[Initializer, str]) -> dict:
    """The initializers that differ from their defaults, as config entries."""
    out = {}
    for key, (init, default) in pairs.items():
        if init != initializers.get(default):
            out[key] = init.get_config()
    return out


# ---- affine layers ---------------------------------------------------------------------------


class Dense(Layer):
    """y = activation(x @ weight + bias): weight (fan_in, units), bias (units,).

    activation: "identity" or a name of ffnc.graph.ACTIVATIONS (fused with the affine map by
    the compiler into one GEMM epilogue); alpha: the slope of leaky_relu / the scale of elu
    (None: their defaults). Defaults: Glorot-uniform weights, zero biases (use
    kernel_initializer="he_normal", bias_initializer=Constant(0.1) for relu units, as in the
    lecture).
    """

    def __init__(self, units: int, activation: str = "identity", alpha: float | None = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", name: str | None = None) -> None:
        super().__init__(name)
        self.units = count("Dense: units", units, 1)
        _check_activation("Dense", activation, alpha)
        self.activation, self.alpha = activation, None if alpha is None else float(alpha)
        self.use_bias = flag("Dense: use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, input_shapes):
        self._features(input_shapes)
        return (input_shapes[0][0], self.units)

    def initial_parameters(self, input_shapes, rng, dtype):
        fan_in = self._features(input_shapes)
        params = {"weight": self.kernel_initializer((fan_in, self.units), fan_in, self.units,
                                                    rng, dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((self.units,), fan_in, self.units, rng, dtype)
        return params

    def forward(self, inputs, training):
        z = inputs[0] @ self.param("weight")
        if self.use_bias:
            z = z + self.param("bias")
        return G.activation(z, self.activation, self.alpha)

    def get_config(self):
        return self._config(units=self.units, activation=self.activation, alpha=self.alpha,
                            use_bias=self.use_bias, **_initializer_options(
                                kernel_initializer=(self.kernel_initializer,
                                                          "glorot_uniform"),
                                bias_initializer=(self.bias_initializer, "zeros")))


class LowRank(Dense):
    """A dense layer whose weight matrix has rank at most r: W = V U with V (fan_in, rank) and
    U (rank, units), so rank (fan_in + units) parameters instead of fan_in units.

    y = activation((x @ V) @ U + bias). The factors start as the best rank-r approximation
    (truncated SVD) of a full weight drawn from kernel_initializer, split evenly: V = P S^1/2,
    U = S^1/2 Q^T.
    """

    def __init__(self, units: int, rank: int, activation: str = "identity",
                 alpha: float | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 name: str | None = None) -> None:
        super().__init__(units, activation, alpha, use_bias, kernel_initializer,
                         bias_initializer, name)
        self.rank = count("LowRank: rank", rank, 1)

    def output_shape(self, input_shapes):
        fan_in = self._features(input_shapes)
        if self.rank > min(fan_in, self.units):
            raise self.error(f"rank {self.rank} exceeds min(fan_in, units) = "
                             f"min({fan_in}, {self.units}); a full Dense layer is cheaper")
        return (input_shapes[0][0], self.units)

    def initial_parameters(self, input_shapes, rng, dtype):
        fan_in = self._features(input_shapes)
        if initializers.skipping_draws():  # values to be overwritten: only the shapes count
            params = {"v": self.kernel_initializer((fan_in, self.rank), fan_in, self.units,
                                                   rng, dtype),
                      "u": self.kernel_initializer((self.rank, self.units), fan_in,
                                                   self.units, rng, dtype)}
        else:
            initializers.check_draw(self.kernel_initializer, (fan_in, self.units))
            full = self.kernel_initializer.draw((fan_in, self.units), fan_in, self.units, rng)
            p, s, qt = np.linalg.svd(full, full_matrices=False)
            root = np.sqrt(s[:self.rank])
            params = {"v": (p[:, :self.rank] * root).astype(dtype),
                      "u": (root[:, None] * qt[:self.rank]).astype(dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((self.units,), fan_in, self.units, rng, dtype)
        return params

    def forward(self, inputs, training):
        z = (inputs[0] @ self.param("v")) @ self.param("u")
        if self.use_bias:
            z = z + self.param("bias")
        return G.activation(z, self.activation, self.alpha)

    def get_config(self):
        cfg = super().get_config()  # Dense's keys, with rank placed after units
        return {"class": cfg.pop("class"), "units": cfg.pop("units"), "rank": self.rank, **cfg}


class Maxout(Layer):
    """Maxout units: each of `units` outputs is the maximum of `pieces` affine functions of x,
    y_u = max_k (x @ W + b)[u pieces + k]; weight (fan_in, units * pieces).

    The derivative goes to the first maximum (the argmax the forward saves). With 2 pieces a
    unit represents relu (pieces 0 and x) and abs (pieces -x and x) exactly.
    """

    def __init__(self, units: int, pieces: int = 2, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 name: str | None = None) -> None:
        super().__init__(name)
        self.units = count("Maxout: units", units, 1)
        self.pieces = count("Maxout: pieces", pieces, 1)
        self.use_bias = flag("Maxout: use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def output_shape(self, input_shapes):
        self._features(input_shapes)
        return (input_shapes[0][0], self.units)

    def initial_parameters(self, input_shapes, rng, dtype):
        fan_in = self._features(input_shapes)
        width = self.units * self.pieces
        params = {"weight": self.kernel_initializer((fan_in, width), fan_in, self.units, rng,
                                                    dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((width,), fan_in, self.units, rng, dtype)
        return params

    def forward(self, inputs, training):
        z = inputs[0] @ self.param("weight")
        if self.use_bias:
            z = z + self.param("bias")
        return G.maxout(z, self.pieces)

    def get_config(self):
        return self._config(units=self.units, pieces=self.pieces, use_bias=self.use_bias,
                            **_initializer_options(
                                kernel_initializer=(self.kernel_initializer,
                                                          "glorot_uniform"),
                                bias_initializer=(self.bias_initializer, "zeros")))


class RBF(Layer):
    """Radial basis function units: y_i = exp(-|x - c_i|^2 / sigma_i^2), with learned centres
    c (units, fan_in) and widths sigma (units,).

    Defaults: centres from a standard normal (inputs are expected standardized), widths
    sqrt(fan_in) (so a typical squared distance, about 2 fan_in, gives exp(-2)).
    """

    def __init__(self, units: int, centers_initializer: Any = None,
                 width_initializer: Any = None, name: str | None = None) -> None:
        super().__init__(name)
        self.units = count("RBF: units", units, 1)
        self.centers_initializer = initializers.get(
            centers_initializer if centers_initializer is not None
            else initializers.Normal(0.0, 1.0))
        self.width_initializer = (None if width_initializer is None
                                  else initializers.get(width_initializer))

    def output_shape(self, input_shapes):
        self._features(input_shapes)
        return (input_shapes[0][0], self.units)

    def initial_parameters(self, input_shapes, rng, dtype):
        fan_in = self._features(input_shapes)
        width = self.width_initializer or initializers.Constant(math.sqrt(fan_in))
        return {"centers": self.centers_initializer((self.units, fan_in), fan_in, self.units,
                                                    rng, dtype),
                "sigma": width((self.units,), fan_in, self.units, rng, dtype)}

    def forward(self, inputs, training):
        d2 = G.sqdist(inputs[0], self.param("centers"))
        return G.exp(-(d2 / G.square(self.param("sigma"))))

    def get_config(self):
        options = {}
        if self.centers_initializer != initializers.Normal(0.0, 1.0):
            options["centers_initializer"] = self.centers_initializer.get_config()
        if self.width_initializer is not None:
            options["width_initializer"] = self.width_initializer.get_config()
        return self._config(units=self.units, **options)


class PReLU(Layer):
    """The parametric relu x > 0 ? x : alpha x with a learned slope alpha, one per unit or
    (shared=True) one for the whole layer; alpha starts at alpha_initializer (0.25)."""

    def __init__(self, shared: bool = False, alpha_initializer: Any = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.shared = flag("PReLU: shared", shared)
        self.alpha_initializer = initializers.get(
            alpha_initializer if alpha_initializer is not None else initializers.Constant(0.25))

    def output_shape(self, input_shapes):
        self._features(input_shapes)
        return input_shapes[0]

    def initial_parameters(self, input_shapes, rng, dtype):
        units = self._features(input_shapes)
        n = 1 if self.shared else units
        return {"alpha": self.alpha_initializer((n,), units, units, rng, dtype)}

    def forward(self, inputs, training):
        return G.prelu(inputs[0], self.param("alpha"))

    def get_config(self):
        options = {}
        if self.alpha_initializer != initializers.Constant(0.25):
            options["alpha_initializer"] = self.alpha_initializer.get_config()
        return self._config(shared=self.shared, **options)


# ---- parameter-free layers -------------------------------------------------------------------


class Identity(Layer):
    """Returns its input unchanged (a named pass-through, e.g. the identity branch of a skip
    connection)."""

    def forward(self, inputs, training):
        return inputs[0]


class Activation(Layer):
    """An activation of ffnc.graph.ACTIVATIONS (or "identity") as a layer."""

    def __init__(self, activation: str, alpha: float | None = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        _check_activation(type(self).__name__, activation, alpha)
        self.activation, self.alpha = activation, None if alpha is None else float(alpha)

    def forward(self, inputs, training):
        return G.activation(inputs[0], self.activation, self.alpha)

    def get_config(self):
        return self._config(activation=self.activation, alpha=self.alpha)


def _activation_layer(class_name: str, activation: str, takes_alpha: bool) -> type:
    if takes_alpha:
        def __init__(self, alpha: float | None = None, name: str | None = None) -> None:
            Activation.__init__(self, activation, alpha, name)

        def get_config(self):
            return self._config(alpha=self.alpha)
    else:
        def __init__(self, name: str | None = None) -> None:
            Activation.__init__(self, activation, None, name)

        def get_config(self):
            return self._config()
    doc = f"The {activation} activation as a layer" + (
        f" (alpha: default {G.ACTIVATIONS[activation].default_alpha})." if takes_alpha else ".")
    return type(class_name, (Activation,), {"__init__": __init__, "get_config": get_config,
                                            "__doc__": doc, "__module__": __name__})


ReLU = _activation_layer("ReLU", "relu", False)
LeakyReLU = _activation_layer("LeakyReLU", "leaky_relu", True)
Abs = _activation_layer("Abs", "abs", False)
Tanh = _activation_layer("Tanh", "tanh", False)
Sigmoid = _activation_layer("Sigmoid", "sigmoid", False)
Softplus = _activation_layer("Softplus", "softplus", False)
HardTanh = _activation_layer("HardTanh", "hard_tanh", False)
ELU = _activation_layer("ELU", "elu", True)
GELU = _activation_layer("GELU", "gelu", False)
ACTIVATION_LAYERS = {"relu": ReLU, "leaky_relu": LeakyReLU, "abs": Abs, "tanh": Tanh,
                     "sigmoid": Sigmoid, "softplus": Softplus, "hard_tanh": HardTanh,
                     "elu": ELU, "gelu": GELU}


class Softmax(Layer):
    """The softmax over the last axis (stable: shifted by the row maximum)."""

    def forward(self, inputs, training):
        return G.softmax(inputs[0], -1)


class LogSoftmax(Layer):
    """The log of the softmax over the last axis, computed stably."""

    def forward(self, inputs, training):
        return G.log_softmax(inputs[0], -1)


class Dropout(Layer):
    """Inverted dropout: while training, each element is zeroed with probability `rate` and
    the survivors are scaled by 1 / (1 - rate); at inference the layer is the identity.

    The mask is a function of (seed, step, element index) (ffnc.graph.dropout), so a run is
    reproducible. seed: None draws one from the model's Generator when the model is built.
    """

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if not (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                and 0 <= rate < 1):
            raise ValueError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise ValueError(f"Dropout: seed must be None or an int >= 0, got {seed!r}")
        self.rate = float(rate)
        self.seed = seed
        self._drawn_seed: int | None = seed

    def initial_parameters(self, input_shapes, rng, dtype):
        if self.seed is None:
            self._drawn_seed = int(rng.integers(0, 2**31 - 1))
        return {}

    def forward(self, inputs, training):
        if not training or self.rate == 0:
            return inputs[0]
        return G.dropout(inputs[0], self.rate, self._drawn_seed)

    def get_config(self):
        return self._config(rate=self.rate, **({"seed": self.seed} if self.seed is not None
                                               else {}))


# ---- joins -----------------------------------------------------------------------------------


class Add(Layer):
    """The sum of two or more inputs of the same shape (e.g. a residual h + f(h))."""

    n_inputs = None

    def output_shape(self, input_shapes):
        if len(input_shapes) < 2:
            raise self.error(f"takes two or more inputs, got {len(input_shapes)}")
        first = input_shapes[0]
        for i, shape in enumerate(input_shapes[1:], start=1):
            if shape != first:
                raise self.error(f"inputs must have the same shape; input 0 is "
                                 f"{format_shape(first)} and input {i} is "
                                 f"{format_shape(shape)}")
        return first

    def forward(self, inputs, training):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total


class Concat(Layer):
    """Two or more inputs joined along the last (feature) axis."""

    n_inputs = None

    def output_shape(self, input_shapes):
        if len(input_shapes) < 2:
            raise self.error(f"takes two or more inputs, got {len(input_shapes)}")
        first = input_shapes[0]
        for i, shape in enumerate(input_shapes):
            if len(shape) < 2 or shape[:-1] != first[:-1]:
                raise self.error(f"inputs must agree in every dimension but the last; input 0 "
                                 f"is {format_shape(first)} and input {i} is "
                                 f"{format_shape(shape)}")
        return first[:-1] + (sum(s[-1] for s in input_shapes),)

    def forward(self, inputs, training):
        return G.concat(list(inputs), -1)


LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    Dense, LowRank, Maxout, RBF, PReLU, Identity, Activation, *ACTIVATION_LAYERS.values(),
    Softmax, LogSoftmax, Dropout, Add, Concat)}


def layer_from_config(cfg: dict[str, Any]) -> Layer:
    """The layer a get_config() dict describes."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("class"), str):
        raise ValueError(f"a layer config must be a dict with a 'class', got {cfg!r}")
    cls = LAYERS.get(cfg["class"])
    if cls is None:
        raise ValueError(f"unknown layer class {cfg['class']!r}; known: {', '.join(LAYERS)}")
    options = {k: v for k, v in cfg.items() if k != "class"}
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"layer config {cfg!r}: {exc}") from None


def default_label(layer: Layer, taken: Sequence[str]) -> str:
    """"dense_0", "dense_1", ...: the first free name for an unnamed layer of this class."""
    base = _snake(type(layer).__name__)
    k = 0
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


__all__ = ["ACTIVATION_LAYERS", "ACTIVATION_NAMES", "ELU", "GELU", "LAYERS", "Abs",
           "Activation", "Add", "Concat", "Dense", "Dropout", "HardTanh", "Identity", "Layer",
           "LeakyReLU", "LogSoftmax", "LowRank", "Maxout", "PReLU", "RBF", "ReLU", "Sigmoid",
           "Softmax", "Softplus", "Tanh", "layer_from_config"]
