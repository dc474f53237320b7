"""Module: what layers and models share (named parameters, state dicts, configs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ffnc.graph.ir import Node


class Module:
    """A layer or a model: it owns named parameters (ffnc.graph.parameter nodes).

    ``parameter_nodes()`` is the one thing a subclass provides; everything else here derives
    from it. Parameter names are "<layer>.<param>" in models, "<param>" in a bare layer.
    """

    def parameter_nodes(self) -> dict[str, Node]:
        """The parameter nodes by name, in a fixed order (the model's flat-buffer order)."""
        return {}

    def named_parameters(self) -> dict[str, np.ndarray]:
        """The current values by name (same order as parameter_nodes()): writable numpy views
        of the parameter storage, so writing into one changes the parameter."""
        return {name: node.value for name, node in self.parameter_nodes().items()}

    @property
    def n_parameters(self) -> int:
        """The total number of parameter elements."""
        return int(sum(v.size for v in self.named_parameters().values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameter values by name."""
        return {name: value.copy() for name, value in self.named_parameters().items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
        """Copies `state` (name -> array) into the parameters.

        Every given array must have its parameter's exact shape and dtype (ffnc never casts:
        a float64 array for a float32 parameter is a TypeError). With strict=True the names
        must match exactly (missing or unexpected names are a ValueError listing them); with
        strict=False the names absent from either side are skipped. Nothing is written unless
        every check passes.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: state must be a mapping from parameter names to "
                            f"arrays, got {type(state).__name__}")
        params = self.named_parameters()
        missing = [name for name in params if name not in state]
        unexpected = [name for name in state if name not in params]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if unexpected:
                parts.append(f"unexpected {unexpected}")
            raise ValueError(f"load_state_dict: the names do not match the parameters of "
                             f"{self._describe()}: {'; '.join(parts)}")
        updates = []
        for name, target in params.items():
            if name not in state:
                continue
            value = state[name]
            if not isinstance(value, np.ndarray):
                raise TypeError(f"load_state_dict: {name!r} must be a numpy array, got "
                                f"{type(value).__name__}")
            if value.dtype != target.dtype:
                raise TypeError(f"load_state_dict: {name!r} is {value.dtype.name} but the "
                                f"parameter is {target.dtype.name}; convert it explicitly "
                                f"(ffnc never casts silently)")
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: {name!r} has shape {value.shape} but the "
                                 f"parameter has shape {target.shape}")
            updates.append((target, value))
        for target, value in updates:
            np.copyto(target, value)

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable description; ffnc.nn.from_config rebuilds the module from it."""
        raise TypeError(f"{type(self).__name__} does not define get_config()")

    def _describe(self) -> str:
        return type(self).__name__


__all__ = ["Module"]
