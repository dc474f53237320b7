"""Objects described by a JSON config: equal when their configs are, printed from them."""

from __future__ import annotations

from typing import Any


class Configured:
    """A base for initializers and losses: ``get_config()`` says everything about the object,
    so equality, hashing and repr follow from it."""

    name = "configured"

    def get_config(self) -> dict[str, Any]:
        """{"class": name, **options}: JSON, and the family's ``get`` rebuilds the object."""
        return {"class": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Configured) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(repr(self.get_config()))

    def __repr__(self) -> str:
        options = {k: v for k, v in self.get_config().items() if k != "class"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


def parse_spec(spec: Any, what: str, kind: str) -> tuple[str, dict[str, Any]]:
    """(name, options) from a name or a config dict {"class": name, **options}; `what` names
    the argument and `kind` the expected object in the error message."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("class"), str):
        options = dict(spec)
        return options.pop("class"), options
    raise TypeError(f"{what} must be a name, a config dict with a 'class' or {kind}, "
                    f"got {spec!r}")
