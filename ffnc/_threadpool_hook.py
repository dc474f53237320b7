"""ffnc joins threadpoolctl when threadpoolctl is imported, without importing it itself.

ffnc's controller (ffnc/_threadpool.py) subclasses threadpoolctl's, so registering it means
importing threadpoolctl: 0.4 MiB and a few milliseconds for every process, most of which never
ask for their thread pools. So ``import ffnc`` registers at once only when threadpoolctl is
already loaded; otherwise a finder at the head of ``sys.meta_path`` waits for threadpoolctl's
import, lets the usual finders and loader do it, registers right after the module has run,
and takes itself out. Either way ``threadpool_info()`` lists ffnc and ``threadpool_limits()``
caps it, whatever the order of the imports.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any


def _register() -> None:
    from ffnc._threadpool import register

    register()


class _RegisteringLoader(importlib.abc.Loader):
    """threadpoolctl's own loader, registering ffnc once the module has run."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register()

    def __getattr__(self, name: str) -> Any:  # get_source, resource readers, ...
        return getattr(self._loader, name)


class _ThreadpoolctlFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self._searching = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "threadpoolctl" or self._searching:
            return None
        self._searching = True  # the search below asks every finder, this one included
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._searching = False
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install() -> None:
    """Registers ffnc with threadpoolctl now if it is loaded, else when it gets imported."""
    loaded = sys.modules.get("threadpoolctl", False)
    if loaded is None:  # sys.modules["threadpoolctl"] = None: its import is blocked
        return
    if loaded:
        _register()
    elif importlib.util.find_spec("threadpoolctl") is not None:  # installed, not imported
        sys.meta_path.insert(0, _ThreadpoolctlFinder())
