# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""ffnc._core: the only bridge between Python and the C core (csrc/).

Every function here validates its arguments (types, dtypes, shapes, contiguity, writability,
aliasing) and raises TypeError / ValueError / MemoryError naming the argument, then calls C
with the GIL released. Nothing else in the ffnc package touches C. The kernel wrappers are
grouped by family in the included .pxi files.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t

import os

import numpy as np

from ffnc._memory import MEMORY_LIMIT, array_bytes, check_allocation

from _ffnc cimport *

cnp.import_array()

# ---- errors ------------------------------------------------------------------------------------

cdef object _exception_for(ffnc_status status):
    if status == FFNC_ERR_OUT_OF_MEMORY:
        return MemoryError
    if status == FFNC_ERR_INVALID_DTYPE:
        return TypeError
    if status == FFNC_ERR_INTERRUPTED:
        return KeyboardInterrupt
    return ValueError


cdef int _check(ffnc_status status, str where) except -1:
    """Raises the exception for a non-OK status from the C function `where`."""
    if status == FFNC_OK:
        return 0
    raise _exception_for(status)(
        f"{where}: {ffnc_status_string(status).decode()} (ffnc status {<int>status})")


# ---- argument checks ---------------------------------------------------------------------------

cdef cnp.ndarray _float_array(object a, str name):
    """`a` as a float32/float64 C-contiguous ndarray, or TypeError/ValueError naming `name`."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int t = cnp.PyArray_TYPE(arr)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(
            f"{name} must be C-contiguous, got shape {(<object>arr).shape} with strides {(<object>arr).strides}; "
            f"pass numpy.ascontiguousarray({name})")
    return arr


cdef cnp.ndarray _matrix(object a, str name):
    """A 2-D float array (rows x cols)."""
    cdef cnp.ndarray arr = _float_array(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, cols), got shape {(<object>arr).shape}")
    return arr


cdef ffnc_dtype _dtype_of(cnp.ndarray a):
    return FFNC_F32 if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 else FFNC_F64


cdef int _same_dtype(cnp.ndarray a, str a_name, cnp.ndarray b, str b_name) except -1:
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(b):
        raise TypeError(
            f"{b_name} has dtype {b.dtype} but {a_name} has dtype {a.dtype}; "
            f"ffnc never casts silently, convert one of them")
    return 0


cdef int _same_shape(cnp.ndarray a, str a_name, cnp.ndarray b, str b_name) except -1:
    if (<object>a).shape != (<object>b).shape:
        raise ValueError(f"{b_name} has shape {(<object>b).shape} but {a_name} has shape {(<object>a).shape}")
    return 0


cdef int _no_partial_overlap(cnp.ndarray out, str out_name, cnp.ndarray a, str a_name,
                             bint same_ok) except -1:
    """Refuses an output that overlaps an input, except exactly in place when `same_ok`."""
    cdef uintptr_t o0 = <uintptr_t>cnp.PyArray_DATA(out)
    cdef uintptr_t a0 = <uintptr_t>cnp.PyArray_DATA(a)
    cdef uintptr_t o1 = o0 + <uintptr_t>cnp.PyArray_NBYTES(out)
    cdef uintptr_t a1 = a0 + <uintptr_t>cnp.PyArray_NBYTES(a)
    if o0 >= a1 or a0 >= o1 or cnp.PyArray_NBYTES(out) == 0 or cnp.PyArray_NBYTES(a) == 0:
        return 0
    if same_ok and o0 == a0 and o1 == a1:
        return 0
    if same_ok:
        raise ValueError(
            f"{out_name} partially overlaps {a_name}; it may be the same array "
            f"(in place) or a separate one, not an overlapping view")
    raise ValueError(f"{out_name} must not share memory with {a_name}")


cdef int _writable(cnp.ndarray a, str name) except -1:
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} is read-only; ffnc writes its result there")
    return 0


cdef cnp.ndarray _output(object out, str name, cnp.ndarray like, str like_name):
    """A new array shaped like `like`, or the validated user-supplied `out`."""
    if out is None:
        return np.empty_like(like)
    cdef cnp.ndarray o = _float_array(out, name)
    _same_dtype(like, like_name, o, name)
    _same_shape(like, like_name, o, name)
    _writable(o, name)
    return o


cdef double _finite(object value, str name) except? -1.0:
    """A Python number as a finite double, else TypeError/ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    cdef double v
    try:
        v = float(value)
    except OverflowError:  # an int beyond the range of a double
        raise ValueError(f"{name} must be finite, got an int of {len(str(value))} digits, "
                         f"beyond the range of a double") from None
    if v != v or v == float("inf") or v == float("-inf"):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


cdef double _F32_MAX = 3.4028234663852886e38


cdef double _in_dtype(double v, str name, cnp.ndarray like) except? -1.0:
    """A scalar the kernel applies in like's dtype: beyond float32's range it would become an
    infinity there (and wrong results where the exact ones are finite)."""
    if cnp.PyArray_TYPE(like) == cnp.NPY_FLOAT32 and not -_F32_MAX <= v <= _F32_MAX:
        raise ValueError(f"{name}={v} overflows float32, the dtype of the arrays")
    return v


cdef bint _flag(object value, str name) except -1:
    """A bool argument: True/False (numpy's too), never another object's truth value. (The
    functions taking flags are compiled with annotation_typing(False): Cython would otherwise
    convert an argument annotated `bool` by its truth value before it could be checked.)"""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


cdef double _nonnegative(object value, str name) except? -1.0:
    cdef double v = _finite(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


cdef double _reduction_scale(str reduction, size_t count) except? -1.0:
    """The factor of a summed loss: 1/count for 'mean', 1 for 'sum'."""
    if reduction == "mean":
        return 1.0 / count if count > 0 else 0.0
    if reduction == "sum":
        return 1.0
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


# ---- configuration -----------------------------------------------------------------------------

_ISA_BY_NAME = {"generic": FFNC_ISA_GENERIC, "avx2": FFNC_ISA_AVX2, "avx512": FFNC_ISA_AVX512}


def version() -> str:
    """The version of the linked C library."""
    return ffnc_version().decode()


# The most threads ffnc runs a kernel on (FFNC_MAX_THREADS in ffnc.h, which says why); OpenMP
# aborts the process when it cannot create the threads asked for, so larger counts are refused.
MAX_THREADS = FFNC_MAX_THREADS


cdef int _thread_count(object n) except -1:
    """n as a thread count for the C core, 1 <= n <= MAX_THREADS, or TypeError/ValueError."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"n must be <= {MAX_THREADS}, got {n}")
    return n


def set_num_threads(n) -> None:
    """Sets the number of threads ffnc's kernels use (1 <= n <= 1024; more are refused, see
    FFNC_MAX_THREADS in ffnc.h); None goes back to following OpenMP's count (OMP_NUM_THREADS,
    omp_set_num_threads, threadpoolctl; at most 1024 too), the default.

    Only ffnc's own parallel regions are affected: the process-wide OpenMP setting is not
    changed. Small problems still run on one thread. The count is process-wide: it applies to
    calls from every Python thread, from their next kernel call on (changing it while another
    thread trains is safe, and does not change results, which do not depend on the thread
    count), except in threads that have a count of their own (ffnc.threads(n) sets one for a
    with-block, fit(threads=n) for the duration of the fit, in the calling thread only).
    """
    if n is None:
        _check(ffnc_set_num_threads(0), "set_num_threads")
        return
    _check(ffnc_set_num_threads(_thread_count(n)), "set_num_threads")


def get_num_threads() -> int:
    """The number of threads ffnc's kernels use."""
    return ffnc_get_num_threads()


def configured_num_threads():
    """The count given to set_num_threads, or None while ffnc follows OpenMP's count."""
    n = ffnc_get_configured_threads()
    return None if n == 0 else n


def set_local_num_threads(n) -> None:
    """Sets the number of threads of ffnc calls made from the calling Python thread only
    (1 <= n <= MAX_THREADS), in place of set_num_threads' count (threadpoolctl limits still cap it), or
    removes it (None). What fit(threads=n) uses, so that fits running at once in several
    threads each keep their own count. Results do not depend on the count."""
    if n is None:
        _check(ffnc_set_local_num_threads(0), "set_local_num_threads")
        return
    _check(ffnc_set_local_num_threads(_thread_count(n)), "set_local_num_threads")


def local_num_threads():
    """The count set by set_local_num_threads in the calling thread, or None."""
    n = ffnc_get_local_num_threads()
    return None if n == 0 else n


def get_isa() -> str:
    """The instruction-set path the kernels run on: 'generic', 'avx2' or 'avx512'."""
    return ffnc_isa_name(ffnc_get_isa()).decode()


def set_isa(name: str) -> None:
    """Forces an instruction-set path ('generic', 'avx2', 'avx512'); for tests and benchmarks."""
    if name not in _ISA_BY_NAME:
        raise ValueError(f"isa must be one of {sorted(_ISA_BY_NAME)}, got {name!r}")
    if not ffnc_isa_supported(_ISA_BY_NAME[name]):
        raise ValueError(f"isa {name!r} is not supported by this CPU or build; "
                         f"supported: {supported_isas()}")
    _check(ffnc_set_isa(_ISA_BY_NAME[name]), "set_isa")


def supported_isas() -> list:
    """The instruction-set paths this CPU and build can run, from the most basic."""
    return [name for name, code in _ISA_BY_NAME.items() if ffnc_isa_supported(code)]


def openmp_info() -> str:
    """The OpenMP version the C core was built with."""
    return ffnc_openmp_info().decode()


def check_isa_environment() -> None:
    """Raises RuntimeError when FFNC_ISA names a path that is unknown or unsupported here."""
    cdef ffnc_status status = ffnc_isa_env_status()
    if status == FFNC_OK:
        return
    value = os.environ.get("FFNC_ISA", "")
    if status == FFNC_ERR_UNSUPPORTED_ISA:
        raise RuntimeError(f"FFNC_ISA={value!r}: this CPU or build does not support that path; "
                           f"supported: {supported_isas()}")
    raise RuntimeError(f"FFNC_ISA={value!r} is not a path; use one of {list(_ISA_BY_NAME)}")


include "_activation.pxi"
include "_loss.pxi"
include "_optim.pxi"
include "_gemm.pxi"
include "_plan.pxi"
