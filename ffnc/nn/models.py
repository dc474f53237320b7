"""Models: Sequential stacks and functional DAGs, with one flat parameter buffer.

A model builds its layers when it is created: it checks every shape (errors name the layer),
draws every initial parameter from one numpy Generator seeded with the model's seed, and lays
the parameters out in ONE flat buffer ``model.flat`` (1-D, the model's dtype) in
``named_parameters()`` order, C order, contiguous. Each parameter array is a view into that
buffer and each parameter node's ``.value`` is that view, so ``model.bind(arena)`` (used by
the trainer with its compiled plan's parameter arena) makes training update the model in
place with no copies.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

import ffnc.graph as G
from ffnc._memory import page_backed_empty
from ffnc.graph.ir import FLOAT_DTYPES, Node, format_shape
from ffnc.nn import losses as _losses
from ffnc.nn.layers import Layer, default_label, layer_from_config
from ffnc.nn.module import Module

Shape = tuple[int | None, ...]
_tensor_ids = itertools.count()


def _dtype(dtype: Any) -> np.dtype:
    try:  # not None: numpy reads it as float64, and float64 compares equal to None
        dt = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        dt = None
    if dt is None or dt not in FLOAT_DTYPES:
        raise TypeError(f"model dtype must be float32 or float64, got {dtype!r}")
    return dt


def _feature_shape(shape: Any, what: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                       for d in dims):
        raise ValueError(f"{what} must be a tuple of positive ints (the shape of one sample, "
                         f"without the batch dimension), got {shape!r}")
    return tuple(int(d) for d in dims)


def _seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    return int(seed)


class Tensor:
    """A symbolic value of the functional API: the output of ffnc.nn.Input or of a layer
    call. It holds a shape (batch dimension None) and how it was made, not data."""

    def __init__(self, shape: Shape, layer: Layer | None, inputs: Sequence[Tensor],
                 name: str | None = None) -> None:
        self.id = next(_tensor_ids)
        self.shape = tuple(shape)
        self.layer = layer
        self.inputs = list(inputs)
        self.name = name

    def __repr__(self) -> str:
        source = self.name or "Input" if self.layer is None else self.layer.label
        return f"<Tensor {source}: {format_shape(self.shape)}>"


def Input(shape: Any, name: str | None = None) -> Tensor:  # noqa: N802 (a constructor)
    """A model input of the functional API: shape is one sample's (no batch dimension).

    The model makes it a placeholder of its dtype, named `name` (default "input_0", ...).
    """
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise ValueError(f"Input: name must be a non-empty string without '.', got {name!r}")
    return Tensor((None,) + _feature_shape(shape, "Input shape"), None, [], name)


class Network(Module):
    """What Sequential and functional Models share: the build, the flat parameter buffer,
    the output graph, the loss, configs, summaries and the training entry points."""

    def __init__(self, dtype: Any, seed: Any, loss: Any) -> None:
        self.dtype = _dtype(dtype)
        self.seed = _seed(seed)
        self._loss = _losses.get(loss)
        self._graphs: dict[bool, Node] = {}
        self._param_nodes: dict[str, Node] = {}
        self.flat = np.zeros(0, dtype=self.dtype)
        # (layer, [input positions]) in evaluation order; positions index into the values list
        # that starts with the inputs and grows by one per layer
        self._steps: list[tuple[Layer, list[int]]] = []
        self.inputs: list[Node] = []

    # ---- building ------------------------------------------------------------------------

    def _build(self, input_specs: list[tuple[str, Shape]],
               steps: list[tuple[Layer, list[int]]]) -> None:
        self.inputs = [G.placeholder(shape, self.dtype, name=name) for name, shape in input_specs]
        shapes: list[Shape] = [shape for _, shape in input_specs]
        rng = np.random.default_rng(self.seed)
        initial: list[tuple[str, np.ndarray]] = []
        for layer, positions in steps:
            if layer._model is not None:
                raise ValueError(f"{layer._describe()} already belongs to a model; create a new "
                                 f"layer for another model")
            in_shapes = [shapes[p] for p in positions]
            out_shape = layer.output_shape(in_shapes)
            try:
                values = layer.initial_parameters(in_shapes, rng, self.dtype)
            except MemoryError as exc:  # the size guard's, before any allocation
                raise MemoryError(f"{layer._describe()}: {exc}") from None
            for local, value in values.items():
                initial.append((f"{layer.label}.{local}", value))
            layer.input_shapes, layer.built_output_shape = in_shapes, out_shape
            shapes.append(out_shape)
        total = sum(v.size for _, v in initial)
        flat = page_backed_empty((total,), self.dtype)  # freed at once when a plan binds
        offset = 0
        nodes: dict[str, Node] = {}
        for name, value in initial:
            view = flat[offset:offset + value.size].reshape(value.shape)
            view[...] = value
            node = G.parameter(view, name=name)
            node.value = view  # the node's value IS the model's storage, not a private copy
            nodes[name] = node
            offset += value.size
        for layer, _ in steps:
            layer._model = self
            layer._nodes = {name.split(".", 1)[1]: node for name, node in nodes.items()
                            if name.split(".", 1)[0] == layer.label}
        self.flat = flat
        self._param_nodes = nodes
        self._steps = steps
        self._shapes = shapes

    # ---- the contract --------------------------------------------------------------------

    def parameter_nodes(self) -> dict[str, Node]:
        """The parameter nodes by name ("<layer>.<param>"), in flat-buffer order."""
        return dict(self._param_nodes)

    @property
    def layers(self) -> list[Layer]:
        """The layers in evaluation order."""
        return [layer for layer, _ in self._steps]

    def bind(self, flat: np.ndarray) -> None:
        """Adopts `flat` (1-D, contiguous, writable, the model's dtype and size) as the
        parameter storage: the current values are copied into it first, then every parameter
        view and node value refers to it (e.g. a compiled plan's parameter arena, so that
        training updates the model in place)."""
        if not isinstance(flat, np.ndarray):
            raise TypeError(f"bind: flat must be a numpy array, got {type(flat).__name__}")
        if flat.dtype != self.dtype:
            raise TypeError(f"bind: flat is {flat.dtype.name} but the model is "
                            f"{self.dtype.name}")
        if flat.ndim != 1 or flat.size != self.flat.size:
            raise ValueError(f"bind: flat must be 1-D with {self.flat.size} elements (the "
                             f"model's parameters), got shape {flat.shape}")
        if not flat.flags.c_contiguous or not flat.flags.writeable:
            raise ValueError("bind: flat must be contiguous and writable")
        if flat is self.flat:
            return
        np.copyto(flat, self.flat)
        offset = 0
        for node in self._param_nodes.values():
            size = node.value.size
            node.value = flat[offset:offset + size].reshape(node.shape)
            offset += size
        self.flat = flat

    @property
    def loss(self) -> _losses.Loss | None:
        """The model's loss (an ffnc.nn.losses.Loss) or None; settable by name, config or
        Loss (checked against the output shape)."""
        return self._loss

    @loss.setter
    def loss(self, value: Any) -> None:
        loss = _losses.get(value)
        if loss is not None:
            loss.check_output(self.output_shape)
        self._loss = loss

    @property
    def output_shape(self) -> Shape:
        """The model output's shape, batch dimension None."""
        return self._shapes[self._output_index()]

    def _output_index(self) -> int:
        """The position of the output among the values (inputs, then one per layer)."""
        return -1

    def output(self, training: bool = False) -> Node:
        """The output graph over ``inputs`` and the parameter nodes; training=True enables
        dropout. Built once per mode and reused."""
        training = bool(training)
        if training not in self._graphs:
            values: list[Node] = list(self.inputs)
            for layer, positions in self._steps:
                values.append(layer.forward([values[p] for p in positions], training))
            self._graphs[training] = values[self._output_index()]
        return self._graphs[training]

    def check_inputs(self, arrays: Any) -> list[np.ndarray]:
        """The input arrays as a list, checked against the inputs: a TypeError for a wrong
        dtype, a ValueError naming the layer the input feeds for a wrong shape."""
        arrs = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
        if len(arrs) != len(self.inputs):
            raise ValueError(f"{type(self).__name__} takes {len(self.inputs)} input array(s) "
                             f"({', '.join(x.label for x in self.inputs)}), got {len(arrs)}")
        for position, (x, a) in enumerate(zip(self.inputs, arrs, strict=True)):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"input {x.label!r} must be a numpy array, got "
                                f"{type(a).__name__}")
            if a.dtype != self.dtype:
                raise TypeError(f"input {x.label!r} must be {self.dtype.name} (the model's "
                                f"dtype), got {a.dtype.name}; convert it explicitly")
            if a.ndim != len(x.shape) or a.shape[1:] != x.shape[1:]:
                consumer = self._consumer_of(position)
                raise ValueError(f"input {x.label!r} feeds layer {consumer.label!r} "
                                 f"({type(consumer).__name__}), which expects shape "
                                 f"{format_shape(x.shape)}; got an array of shape {a.shape}")
        return arrs

    def _consumer_of(self, position: int) -> Layer:
        for layer, positions in self._steps:
            if position in positions:
                return layer
        return self._steps[0][0]

    def forward(self, *arrays: np.ndarray, training: bool = False, step: int = 0) -> np.ndarray:
        """The model's output for input arrays, computed by the reference interpreter
        (ffnc.graph.evaluate); ``predict`` runs compiled plans and is the fast path.
        training=True enables dropout, whose masks depend on `step`."""
        arrs = self.check_inputs(list(arrays))
        return G.evaluate(self.output(training), dict(zip(self.inputs, arrs, strict=True)),
                          step=step)

    # ---- training entry points (ffnc.train) ----------------------------------------------

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Trains the model: ffnc.train.fit(model, ...)."""
        from ffnc import train

        return train.fit(self, *args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Predictions for inputs: ffnc.train.predict(model, ...)."""
        from ffnc import train

        return train.predict(self, *args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """The loss (and metrics) on data: ffnc.train.evaluate(model, ...)."""
        from ffnc import train

        return train.evaluate(self, *args, **kwargs)

    # ---- description ---------------------------------------------------------------------

    def _config_tail(self, cfg: dict[str, Any]) -> dict[str, Any]:
        cfg["loss"] = self._loss.get_config() if self._loss is not None else None
        if self.seed != 0:
            cfg["seed"] = self.seed
        return cfg

    def to_json(self) -> str:
        """get_config() as JSON."""
        return json.dumps(self.get_config())

    def _summary_rows(self) -> list[tuple[str, ...]]:
        raise TypeError(f"{type(self).__name__} does not define its summary rows")

    def summary(self) -> str:
        """A table of the layers (name, class, output shape, parameters), the totals, the
        dtype and the loss."""
        header, rows = self._summary_rows()
        table = [header] + rows
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        line = "-" * (sum(widths) + 2 * (len(widths) - 1))

        def fmt(row: tuple[str, ...]) -> str:
            cells = [c.ljust(w) if i < len(row) - 1 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            return "  ".join(cells).rstrip()

        n = self.n_parameters
        loss = self._loss.name if self._loss is not None else "none"
        lines = [f"{type(self).__name__} ({self.dtype.name}, seed {self.seed})", line,
                 fmt(header), line, *(fmt(r) for r in rows), line,
                 f"Parameters: {n:,} ({n * self.dtype.itemsize:,} bytes)",
                 f"Inputs: {', '.join(f'{x.label} {format_shape(x.shape)}' for x in self.inputs)}",
                 f"Output: {format_shape(self.output_shape)}; loss: {loss}"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {len(self._steps)} layers, {self.n_parameters} "
                f"parameters, {self.dtype.name}>")


def _layer_params(layer: Layer) -> int:
    return int(sum(n.value.size for n in layer._nodes.values()))


class Sequential(Network):
    """A stack of layers, each taking the previous one's output.

    layers: the layers in order; they are named "0", "1", ... (or by their explicit name),
    and their parameters "<layer>.<param>" (e.g. "0.weight" of shape (fan_in, units),
    "0.bias"). input_shape: one sample's shape, e.g. (64,). dtype: float32 or float64. seed:
    the seed of the Generator every initial value is drawn from (None: fresh entropy; the
    drawn seed is kept in ``seed`` and in the config). loss: a name, config or
    ffnc.nn.losses.Loss, or None.
    """

    def __init__(self, layers: Sequence[Layer], *, input_shape: Any, dtype: Any = "float32",
                 seed: int | None = 0, loss: Any = None, input_name: str = "x") -> None:
        super().__init__(dtype, seed, loss)
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        labels: list[str] = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layers[{i}] must be an ffnc.nn layer, got "
                                f"{type(layer).__name__}")
            if layer.n_inputs != 1:
                raise ValueError(f"Sequential: layers[{i}] ({type(layer).__name__}) joins "
                                 f"several inputs; use the functional ffnc.nn.Model")
            label = layer.name if layer.name is not None else str(i)
            if label in labels:
                raise ValueError(f"Sequential: two layers are named {label!r}")
            labels.append(label)
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("Sequential: a layer appears twice; create one layer per position")
        for layer, label in zip(layers, labels, strict=True):
            if layer._model is None:
                layer.label = label
        self.input_shape = _feature_shape(input_shape, "Sequential input_shape")
        self._build([(input_name, (None,) + self.input_shape)],
                    [(layer, [i]) for i, layer in enumerate(layers)])
        self.loss = self._loss

    def get_config(self) -> dict[str, Any]:
        """{"class": "Sequential", "dtype", "input_shape", "layers", "loss"}, and "seed" when
        it is not 0."""
        cfg: dict[str, Any] = {"class": "Sequential", "dtype": self.dtype.name,
                               "input_shape": list(self.input_shape),
                               "layers": [layer.get_config() for layer in self.layers]}
        return self._config_tail(cfg)

    def _summary_rows(self):
        header = ("Layer", "Class", "Output shape", "Parameters")
        rows = [(layer.label, type(layer).__name__ + _unit_note(layer),
                 format_shape(layer.built_output_shape), f"{_layer_params(layer):,}")
                for layer in self.layers]
        return header, rows


def _unit_note(layer: Layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is not None and type(layer).__name__ in ("Dense", "LowRank"):
        return f"({activation})"
    return ""


class Model(Network):
    """A functional model: any DAG of layers from ffnc.nn.Input tensors to one output tensor.

        x = ffnc.nn.Input((4,))
        h1 = ffnc.nn.Dense(8, activation="relu")(x)
        h2 = ffnc.nn.Dense(8, activation="tanh")(x)
        h = ffnc.nn.Concat()([h1, h2])          # f_{2,1}(h1, h2)
        y = ffnc.nn.Add()([ffnc.nn.Dense(8)(h), h1])   # a skip connection
        model = ffnc.nn.Model(x, ffnc.nn.Dense(1)(y), loss="mse")

    Layers are named by their explicit name or "<class>_<k>" ("dense_0", ...) in call order;
    parameters "<layer>.<param>". The rest of the contract is Sequential's.
    """

    def __init__(self, inputs: Tensor | Sequence[Tensor], outputs: Tensor, *,
                 dtype: Any = "float32", seed: int | None = 0, loss: Any = None) -> None:
        super().__init__(dtype, seed, loss)
        ins = [inputs] if isinstance(inputs, Tensor) else \
            list(inputs) if isinstance(inputs, (list, tuple)) else None
        if not ins or any(not isinstance(t, Tensor) or t.layer is not None for t in ins):
            raise TypeError("Model: inputs must be ffnc.nn.Input tensors")
        if not isinstance(outputs, Tensor):
            raise TypeError(f"Model: outputs must be one symbolic tensor (a layer's output), "
                            f"got {type(outputs).__name__}")
        # every tensor the output depends on, in creation order (a topological order)
        seen: dict[int, Tensor] = {}
        stack = [outputs]
        while stack:
            t = stack.pop()
            if t.id in seen:
                continue
            seen[t.id] = t
            stack.extend(t.inputs)
        tensors = [seen[i] for i in sorted(seen)]
        given = {t.id for t in ins}
        if len(given) != len(ins):
            raise ValueError("Model: an input is listed twice")
        for t in tensors:
            if t.layer is None and t.id not in given:
                raise ValueError(f"Model: the output depends on an Input with shape "
                                 f"{format_shape(t.shape)} that is not in inputs")
        names: list[str] = []
        for i, t in enumerate(ins):
            name = t.name or f"input_{i}"
            if name in names:
                raise ValueError(f"Model: two inputs are named {name!r}")
            names.append(name)
        position = {t.id: i for i, t in enumerate(ins)}
        steps: list[tuple[Layer, list[int]]] = []
        taken = list(names)
        for t in tensors:
            if t.layer is None:
                continue
            layer = t.layer
            label = layer.name or default_label(layer, taken)
            if label in taken:
                raise ValueError(f"Model: the name {label!r} is used twice (layers and inputs "
                                 f"need distinct names)")
            taken.append(label)
            layer.label = label
            position[t.id] = len(ins) + len(steps)
            steps.append((layer, [position[x.id] for x in t.inputs]))
        self._input_names = names
        self._output_position = position[outputs.id]
        self._build([(name, t.shape) for name, t in zip(names, ins, strict=True)], steps)
        self.loss = self._loss

    def _output_index(self) -> int:
        return self._output_position

    def _source_names(self) -> list[str]:
        return self._input_names + [layer.label for layer, _ in self._steps]

    def get_config(self) -> dict[str, Any]:
        """{"class": "Model", "dtype", "inputs": [{"name", "shape"}], "layers": [{"name",
        "layer", "inbound"}], "output", "loss"}, and "seed" when it is not 0."""
        sources = self._source_names()
        cfg: dict[str, Any] = {
            "class": "Model", "dtype": self.dtype.name,
            "inputs": [{"name": name, "shape": list(x.shape[1:])}
                       for name, x in zip(self._input_names, self.inputs, strict=True)],
            "layers": [{"name": layer.label,
                        "layer": {k: v for k, v in layer.get_config().items() if k != "name"},
                        "inbound": [sources[p] for p in positions]}
                       for layer, positions in self._steps],
            "output": sources[self._output_position]}
        return self._config_tail(cfg)

    def _summary_rows(self):
        sources = self._source_names()
        header = ("Layer", "Class", "Inputs", "Output shape", "Parameters")
        rows = [(layer.label, type(layer).__name__ + _unit_note(layer),
                 ", ".join(sources[p] for p in positions),
                 format_shape(layer.built_output_shape), f"{_layer_params(layer):,}")
                for layer, positions in self._steps]
        return header, rows


def _config_seed(cfg: dict[str, Any]) -> int:
    return cfg.get("seed", 0)


def from_config(cfg: dict[str, Any] | str) -> Module:
    """The model or layer a get_config() dict (or its JSON) describes. A model built from its
    config with the same seed has the same initial parameters (and so the same outputs)."""
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("class"), str):
        raise ValueError(f"a config must be a dict with a 'class', got {cfg!r}")
    kind = cfg["class"]
    if kind == "Sequential":
        _expect_keys(cfg, {"class", "dtype", "input_shape", "layers"}, {"loss", "seed"})
        return Sequential([layer_from_config(c) for c in cfg["layers"]],
                          input_shape=tuple(cfg["input_shape"]), dtype=cfg["dtype"],
                          seed=_config_seed(cfg), loss=cfg.get("loss"))
    if kind == "Model":
        _expect_keys(cfg, {"class", "dtype", "inputs", "layers", "output"}, {"loss", "seed"})
        tensors: dict[str, Tensor] = {}
        inputs = []
        for spec in cfg["inputs"]:
            t = Input(tuple(spec["shape"]), name=spec["name"])
            tensors[spec["name"]] = inputs.append(t) or t
        for entry in cfg["layers"]:
            layer = layer_from_config({**entry["layer"], "name": entry["name"]})
            missing = [n for n in entry["inbound"] if n not in tensors]
            if missing:
                raise ValueError(f"Model config: layer {entry['name']!r} takes {missing}, "
                                 f"which no earlier input or layer defines")
            args = [tensors[n] for n in entry["inbound"]]
            tensors[entry["name"]] = layer(args[0] if len(args) == 1 else args)
        if cfg["output"] not in tensors:
            raise ValueError(f"Model config: the output {cfg['output']!r} is not defined")
        return Model(inputs, tensors[cfg["output"]], dtype=cfg["dtype"],
                     seed=_config_seed(cfg), loss=cfg.get("loss"))
    return layer_from_config(cfg)


def _expect_keys(cfg: dict, required: set[str], optional: set[str]) -> None:
    missing = sorted(required - set(cfg))
    unknown = sorted(set(cfg) - required - optional)
    if missing or unknown:
        raise ValueError(f"{cfg['class']} config: "
                         + "; ".join(p for p in (f"missing keys {missing}" if missing else "",
                                                 f"unknown keys {unknown}" if unknown else "")
                                     if p))


__all__ = ["Input", "Model", "Network", "Sequential", "Tensor", "from_config"]
