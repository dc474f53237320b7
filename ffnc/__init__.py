"""ffnc: feedforward neural networks on multi-core CPUs.

A C11/OpenMP core runs every hot path; Python builds the networks. See README.md.

``import ffnc`` loads only the C core: the subpackages (``ffnc.nn``, ``ffnc.graph``,
``ffnc.compiler``, ``ffnc.train``, ...) and ``ffnc.load``, ``ffnc.save``, ``ffnc.diagnose`` are
imported on first use (PEP 562), so a process pays only for the parts it uses.
"""

import importlib

from ffnc import _threadpool_hook
from ffnc._core import (
    check_isa_environment,
    get_isa,
    get_num_threads,
    openmp_info,
    set_isa,
    set_num_threads,
    supported_isas,
)
from ffnc._core import version as _c_version
from ffnc._threads import threads
from ffnc._version import __version__

check_isa_environment()

# Imported on first access as ffnc.<name>: the user-facing API over the core (models,
# training, checkpoints, diagnosis) and the layers under it.
_SUBMODULES = frozenset({"compiler", "datasets", "diagnosis", "graph", "io", "kernels", "nn",
                         "optim", "train"})
# name -> the submodule that defines it.
_FUNCTIONS = {"diagnose": "diagnosis", "load": "io", "save": "io"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"ffnc.{name}")
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(f"ffnc.{_FUNCTIONS[name]}"), name)
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module 'ffnc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_FUNCTIONS))


# threadpoolctl is optional (scikit-learn brings it); when it is installed, its threadpool_info()
# lists ffnc's pool and threadpool_limits() caps it (ffnc/_threadpool.py), once it is imported.
_threadpool_hook.install()


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, where platform knows none)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def show_config() -> None:
    """Prints how ffnc was built and what it runs on: version, ISA path, OpenMP, threads."""
    print(config_text())


def config_text() -> str:
    """The text show_config() prints."""
    import platform

    import numpy

    lines = [
        f"ffnc {__version__} (C core {_c_version()})",
        f"  ISA path:        {get_isa()} (supported here: {', '.join(supported_isas())}; "
        "force with FFNC_ISA=generic|avx2|avx512)",
        f"  OpenMP:          {openmp_info()}",
        f"  threads:         {get_num_threads()} (ffnc.set_num_threads, else OMP_NUM_THREADS; "
        "threadpoolctl limits apply)",
        f"  machine:         {platform.machine()}, {cpu_model()}",
        f"  python / numpy:  {platform.python_version()} / {numpy.__version__}",
    ]
    return "\n".join(lines)


__all__ = [
    "__version__",
    "config_text",
    "cpu_model",
    "datasets",
    "diagnose",
    "get_isa",
    "get_num_threads",
    "kernels",
    "load",
    "nn",
    "optim",
    "save",
    "set_isa",
    "set_num_threads",
    "show_config",
    "supported_isas",
    "threads",
]
