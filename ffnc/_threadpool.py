"""ffnc's thread pool as threadpoolctl sees it.

ffnc's kernels pass their own `num_threads` clause to every OpenMP region, so the
`omp_set_num_threads` call threadpoolctl makes on libgomp only reaches ffnc while ffnc follows
the OpenMP default (no `ffnc.set_num_threads` call). This controller makes `threadpool_info()`
list ffnc's pool (internal_api "ffnc", user_api "openmp") and makes `threadpool_limits(n)` and
`threadpool_limits(n, user_api="openmp")` cap ffnc in every case, through ffnc's per-thread
limit (`ffnc_set_thread_limit` in the C core): like OpenMP's own setting, a limit applies to
calls made from the thread that set it.

Registered when both ffnc and threadpoolctl are imported, in either order (see
ffnc/_threadpool_hook.py); threadpoolctl is not a dependency.
"""

import ctypes

import threadpoolctl


class FfncController(threadpoolctl.LibController):
    """threadpoolctl controller for ffnc's OpenMP kernels (the `ffnc._core` extension, or a
    `libffnc` shared library loaded in the process)."""

    user_api = "openmp"
    internal_api = "ffnc"
    # The extension's file name is generic ("_core.cpython-...so"): the symbol check below is
    # what tells ffnc's apart from other packages' _core modules.
    filename_prefixes = ("_core.", "libffnc")
    check_symbols = ("ffnc_set_thread_limit",)

    def _function(self, name: str, restype=ctypes.c_int):
        function = getattr(self.dynlib, name, None)
        if function is not None:
            function.restype = restype
        return function

    def get_num_threads(self) -> int | None:
        get = self._function("ffnc_get_num_threads")
        return None if get is None else get()

    def set_num_threads(self, num_threads: int) -> None:
        set_limit = self._function("ffnc_set_thread_limit")
        get = self._function("ffnc_get_num_threads")
        if set_limit is None or get is None:
            return
        # A limit at or above the uncapped count is no limit. Dropping it instead of storing it
        # is what lets threadpoolctl's restore (which sets the count read before limiting)
        # leave no stale cap behind: a later ffnc.set_num_threads(8) must not stay capped.
        set_limit(0)
        if num_threads is not None and 1 <= num_threads < get():
            set_limit(int(num_threads))

    def get_version(self) -> str | None:
        version = self._function("ffnc_version", ctypes.c_char_p)
        return None if version is None else version().decode()

    def set_additional_attributes(self) -> None:
        openmp_info = self._function("ffnc_openmp_info", ctypes.c_char_p)
        self.openmp = None if openmp_info is None else openmp_info().decode()


_registered = False


def register() -> None:
    """Registers FfncController with threadpoolctl (once per process)."""
    global _registered
    if not _registered:
        threadpoolctl.register(FfncController)
        _registered = True
