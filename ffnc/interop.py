"""PyTorch interop: ffnc Sequential MLPs to and from ``torch.nn.Sequential``.

An ffnc Sequential of Dense layers (each with its activation), activation layers and Dropout
maps onto ``torch.nn.Sequential(Linear, activation, Linear, ..., )``: a Dense layer with a
non-identity activation becomes two torch modules (Linear, then the activation), so torch's
module indices differ from ffnc's layer names. Weights are transposed: ffnc stores a Dense
weight as (fan_in, units) (y = x W + b), torch's Linear as (out_features, in_features).

    >>> sd = ffnc.interop.torch_state_dict(model)        # numpy arrays, torch's names
    >>> ffnc.interop.save_torch(model, "mlp.safetensors")
    >>> # in PyTorch:  module.load_state_dict(safetensors.torch.load_file("mlp.safetensors"))
    >>> module = ffnc.interop.to_torch(model)          # builds the torch module (needs torch)
    >>> back = ffnc.interop.from_torch(module)          # an ffnc Sequential again

``import ffnc`` never imports torch; only to_torch (and from_torch given torch objects) use it.
Activations map by name: relu/ReLU, leaky_relu/LeakyReLU (alpha = negative_slope), tanh/Tanh,
sigmoid/Sigmoid, softplus/Softplus (beta 1), hard_tanh/Hardtanh(-1, 1), elu/ELU (alpha),
gelu/GELU (exact, erf form), identity/Identity. ffnc's "abs" has no torch module and is
rejected with a clear error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import ffnc.graph as G
import ffnc.nn as nn

# ffnc activation name -> (torch module class name, name of its alpha argument or None)
TORCH_ACTIVATIONS = {
    "relu": ("ReLU", None), "leaky_relu": ("LeakyReLU", "negative_slope"),
    "tanh": ("Tanh", None), "sigmoid": ("Sigmoid", None), "softplus": ("Softplus", None),
    "hard_tanh": ("Hardtanh", None), "elu": ("ELU", "alpha"), "gelu": ("GELU", None),
}
_FROM_TORCH = {torch_name: (name, arg) for name, (torch_name, arg) in TORCH_ACTIVATIONS.items()}

__all__ = ["TORCH_ACTIVATIONS", "from_torch", "save_torch", "to_torch", "torch_layers",
           "torch_state_dict"]


# ---- ffnc -> torch ----------------------------------------------------------------------------

def _activation_spec(activation: str, alpha: float | None, where: str) -> dict[str, Any]:
    if activation not in TORCH_ACTIVATIONS:
        raise ValueError(f"{where}: activation {activation!r} has no torch.nn module; "
                         f"supported: identity, {', '.join(TORCH_ACTIVATIONS)}")
    module, arg = TORCH_ACTIVATIONS[activation]
    spec: dict[str, Any] = {"module": module}
    if arg is not None:
        default = G.ACTIVATIONS[activation].default_alpha
        spec[arg] = float(default if alpha is None else alpha)
    return spec


def torch_layers(model: nn.Sequential) -> list[dict[str, Any]]:
    """The torch.nn.Sequential equivalent of an ffnc Sequential, one dict per torch module:
    {"module": "Linear", "in_features", "out_features", "bias", "ffnc_layer"} or
    {"module": "ReLU"} (activations with their torch arguments) or {"module": "Dropout", "p"}.
    A ValueError names the first layer that has no torch counterpart."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an ffnc.nn.Sequential, got {type(model).__name__}")
    if len(model.input_shape) != 1:
        raise ValueError(f"the model's input must be a vector (input_shape (features,)), got "
                         f"{model.input_shape}")
    modules: list[dict[str, Any]] = []
    for layer in model.layers:
        where = f"layer {layer.label!r} ({type(layer).__name__})"
        if type(layer) is nn.Dense:
            fan_in = layer.input_shapes[0][1]
            modules.append({"module": "Linear", "in_features": int(fan_in),
                            "out_features": layer.units, "bias": layer.use_bias,
                            "ffnc_layer": layer.label})
            if layer.activation != "identity":
                modules.append(_activation_spec(layer.activation, layer.alpha, where))
        elif isinstance(layer, nn.Dropout):
            modules.append({"module": "Dropout", "p": layer.rate})
        elif isinstance(layer, nn.Activation):
            modules.append({"module": "Identity"} if layer.activation == "identity"
                           else _activation_spec(layer.activation, layer.alpha, where))
        elif isinstance(layer, nn.Identity):
            modules.append({"module": "Identity"})
        else:
            raise ValueError(f"{where} has no torch.nn.Sequential counterpart; supported: "
                             f"Dense, activation layers, Dropout, Identity")
    return modules


def torch_state_dict(model: nn.Sequential) -> dict[str, np.ndarray]:
    """The model's parameters under torch.nn.Sequential's names ("0.weight", "0.bias",
    "2.weight", ...; see torch_layers), Linear weights transposed to (out, in); copies, in the
    model's dtype, C-contiguous."""
    params = model.named_parameters()
    state: dict[str, np.ndarray] = {}
    for index, spec in enumerate(torch_layers(model)):
        if spec["module"] != "Linear":
            continue
        label = spec["ffnc_layer"]
        state[f"{index}.weight"] = np.ascontiguousarray(params[f"{label}.weight"].T)
        if spec["bias"]:
            state[f"{index}.bias"] = np.array(params[f"{label}.bias"])
    return state


def save_torch(model: nn.Sequential, path: str | os.PathLike) -> None:
    """Writes torch_state_dict(model) as a safetensors file that
    ``torch.nn.Sequential(...).load_state_dict(safetensors.torch.load_file(path))`` loads; its
    metadata "torch_modules" holds torch_layers(model) as JSON (the architecture), "format"
    is "ffnc-torch"."""
    from safetensors.numpy import save_file

    modules = [{k: v for k, v in m.items() if k != "ffnc_layer"} for m in torch_layers(model)]
    save_file(torch_state_dict(model), os.fspath(path),
              metadata={"format": "ffnc-torch", "torch_modules": json.dumps(modules)})


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError('this needs PyTorch, an optional extra of ffnc: pip install '
                          '"ffnc[torch]"') from exc
    return torch


def to_torch(model: nn.Sequential) -> Any:
    """A torch.nn.Sequential computing what the ffnc model computes (its output units, before
    the loss: logits for classifiers), with the model's weights and dtype."""
    torch = _torch()
    modules = []
    for spec in torch_layers(model):
        options = {k: v for k, v in spec.items() if k not in ("module", "ffnc_layer")}
        modules.append(getattr(torch.nn, spec["module"])(**options))
    module = torch.nn.Sequential(*modules).to(
        torch.float64 if model.dtype == np.float64 else torch.float32)
    state = {name: torch.from_numpy(value) for name, value in torch_state_dict(model).items()}
    module.load_state_dict(state)
    return module


# ---- torch -> ffnc ----------------------------------------------------------------------------

def _as_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"state dict entry {name!r} must be a tensor or numpy array, got "
                        f"{type(value).__name__}")
    return value


def _specs_of_module(module: Any) -> list[dict[str, Any]]:
    specs = []
    for index, child in enumerate(module.children()):
        kind = type(child).__name__
        if kind == "Linear":
            specs.append({"module": "Linear", "in_features": child.in_features,
                          "out_features": child.out_features, "bias": child.bias is not None})
        elif kind == "Dropout":
            specs.append({"module": "Dropout", "p": float(child.p)})
        elif kind == "Identity":
            specs.append({"module": "Identity"})
        elif kind in _FROM_TORCH:
            spec: dict[str, Any] = {"module": kind}
            _, arg = _FROM_TORCH[kind]
            if arg is not None:
                spec[arg] = float(getattr(child, arg))
            if kind == "GELU" and child.approximate != "none":
                raise ValueError(f"module {index} is GELU(approximate={child.approximate!r}); "
                                 f"ffnc's gelu is the exact (erf) form")
            if kind == "Softplus" and child.beta != 1:
                raise ValueError(f"module {index} is Softplus(beta={child.beta}); ffnc's "
                                 f"softplus has beta 1")
            if kind == "Hardtanh" and (child.min_val, child.max_val) != (-1.0, 1.0):
                raise ValueError(f"module {index} is Hardtanh({child.min_val}, "
                                 f"{child.max_val}); ffnc's hard_tanh clips to [-1, 1]")
            specs.append(spec)
        else:
            raise ValueError(f"module {index} ({kind}) has no ffnc counterpart; supported: "
                             f"Linear, Dropout, Identity, {', '.join(_FROM_TORCH)}")
    return specs


def _specs_of_state_dict(state: Mapping[str, np.ndarray],
                         activations: Sequence[str] | None) -> list[dict[str, Any]]:
    indices = sorted({int(k.split(".")[0]) for k in state if k.split(".")[0].isdigit()})
    unknown = [k for k in state if k.split(".")[0] not in {str(i) for i in indices}
               or k.split(".", 1)[1] not in ("weight", "bias")]
    if unknown:
        raise ValueError(f"state dict keys must be '<index>.weight' / '<index>.bias' of "
                         f"torch.nn.Sequential Linear modules; got {unknown[:3]}")
    if not indices:
        raise ValueError("the state dict has no Linear weights")
    if activations is None:
        activations = ["relu"] * (len(indices) - 1) + ["identity"]
    activations = list(activations)
    if len(activations) != len(indices):
        raise ValueError(f"activations has {len(activations)} entries for {len(indices)} "
                         f"Linear layers")
    specs = []
    for i, activation in zip(indices, activations, strict=True):
        weight = state.get(f"{i}.weight")
        if weight is None or weight.ndim != 2:
            raise ValueError(f"state dict entry '{i}.weight' must be a 2-D (out, in) weight")
        specs.append({"module": "Linear", "in_features": weight.shape[1],
                      "out_features": weight.shape[0], "bias": f"{i}.bias" in state,
                      "index": i})
        if activation != "identity":
            specs.append(_activation_spec(activation, None, f"activations for module {i}"))
    return specs


def from_torch(source: Any, *, activations: Sequence[str] | None = None, loss: Any = None,
               dtype: Any = None) -> nn.Sequential:
    """An ffnc Sequential from a torch.nn.Sequential of Linear / activation / Dropout modules,
    from its state dict (torch tensors or numpy arrays under "<index>.weight" names), or from
    a safetensors file of one (save_torch's or torch's).

    A Linear followed by an activation becomes one Dense layer with that activation. For a
    bare state dict the activations are not in the data: give one name per Linear layer
    (default "relu" between layers and "identity" after the last); a file written by
    save_torch carries its modules. loss: the ffnc loss for the model (e.g.
    "softmax_cross_entropy"). dtype: default the weights' (float32 or float64).
    """
    specs: list[dict[str, Any]]
    if isinstance(source, (str, os.PathLike)):
        from safetensors import safe_open

        with safe_open(os.fspath(source), framework="numpy") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        if "torch_modules" in metadata and activations is None:
            specs = json.loads(metadata["torch_modules"])
            for i, spec in enumerate(specs):
                spec["index"] = i  # a module's index in the torch Sequential
        else:
            specs = _specs_of_state_dict(state, activations)
    elif hasattr(source, "state_dict") and hasattr(source, "children"):
        if activations is not None:
            raise ValueError("activations is for state dicts; a module carries its own")
        specs = _specs_of_module(source)
        for i, spec in enumerate(specs):
            spec["index"] = i
        state = {k: _as_numpy(v, k) for k, v in source.state_dict().items()}
    elif isinstance(source, Mapping):
        state = {k: _as_numpy(v, k) for k, v in source.items()}
        specs = _specs_of_state_dict(state, activations)
    else:
        raise TypeError(f"source must be a torch.nn.Sequential, a state dict or a safetensors "
                        f"path, got {type(source).__name__}")
    return _build(specs, state, loss, dtype)


def _build(specs: list[dict[str, Any]], state: Mapping[str, np.ndarray], loss: Any,
           dtype: Any) -> nn.Sequential:
    linears = [s for s in specs if s["module"] == "Linear"]
    if not linears:
        raise ValueError("no Linear module: nothing to import")
    weights = [state[f"{s['index']}.weight"] for s in linears]
    dtypes = {a.dtype.name for a in state.values()}
    if dtype is None:
        if len(dtypes) != 1:
            raise TypeError(f"the weights mix dtypes {sorted(dtypes)}; pass dtype= to convert "
                            f"them to one")
        dtype = weights[0].dtype
    dtype = np.dtype(dtype)
    layers: list[nn.Layer] = []
    values: list[tuple[np.ndarray, np.ndarray | None]] = []
    previous_linear = False
    for spec in specs:
        kind = spec["module"]
        if kind == "Linear":
            layers.append(nn.Dense(spec["out_features"], use_bias=spec["bias"]))
            bias = state.get(f"{spec['index']}.bias") if spec["bias"] else None
            values.append((state[f"{spec['index']}.weight"], bias))
            previous_linear = True
            continue
        if kind == "Dropout":
            layers.append(nn.Dropout(spec["p"]))
        elif kind == "Identity":
            layers.append(nn.Identity())
        else:
            name, arg = _FROM_TORCH[kind]
            alpha = spec.get(arg) if arg is not None else None
            if previous_linear and layers[-1].activation == "identity":
                dense = layers[-1]
                layers[-1] = nn.Dense(dense.units, activation=name, alpha=alpha,
                                      use_bias=dense.use_bias)
            else:
                layers.append(nn.Activation(name, alpha))
        previous_linear = False
    model = nn.Sequential(layers, input_shape=(linears[0]["in_features"],), dtype=dtype,
                          loss=loss)
    dense_layers = [layer for layer in model.layers if type(layer) is nn.Dense]
    params = model.named_parameters()
    for layer, (weight, bias) in zip(dense_layers, values, strict=True):
        target = params[f"{layer.label}.weight"]
        if weight.T.shape != target.shape:
            raise ValueError(f"Linear weight of shape {weight.shape} does not fit layer "
                             f"{layer.label!r} (expects {target.T.shape})")
        target[...] = weight.T.astype(dtype, copy=False)
        if bias is not None:
            params[f"{layer.label}.bias"][...] = bias.astype(dtype, copy=False)
    return model
