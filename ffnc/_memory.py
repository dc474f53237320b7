"""The size guard: an allocation larger than this machine's memory is refused before it is tried.

Sizes come from users (a Dense layer of 2**40 units, an empty matrix product whose result
would be 2**40 x 2**40, a placeholder shape whose product overflows); asking the allocator for
them either fails late with an unhelpful message or, with overcommit, succeeds and takes the
machine down when the memory is touched. Every place ffnc allocates from a user-given size
checks it here first and raises a MemoryError that says what needed how much.
"""

from __future__ import annotations

import os
import sys

import numpy as np

# Without a way to ask (not Linux/macOS), the largest x86-64/arm64 user address space.
_UNKNOWN_LIMIT = 1 << 47


def physical_memory() -> int:
    """The machine's physical memory in bytes (a large bound where it cannot be read)."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _UNKNOWN_LIMIT
    return pages * page_size if pages > 0 and page_size > 0 else _UNKNOWN_LIMIT


MEMORY_LIMIT = physical_memory()


def format_bytes(n: int) -> str:
    """n bytes as '8.0 PiB'-style text."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


def check_allocation(nbytes: int, what: str) -> None:
    """Raises MemoryError naming `what` when nbytes exceed the machine's physical memory."""
    if nbytes > MEMORY_LIMIT:
        raise MemoryError(f"{what} would need {format_bytes(nbytes)}, more than this "
                          f"machine's memory ({format_bytes(MEMORY_LIMIT)})")


def array_bytes(shape, itemsize: int) -> int:
    """The bytes of an array of this shape (exact: Python integers do not overflow)."""
    n = itemsize
    for d in shape:
        n *= int(d)
    return n


# Arrays of at least this many bytes get pages of their own (see page_backed_empty).
PAGE_BACKED_MIN_BYTES = 1 << 16


def page_backed_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array that returns its memory to the OS as soon as it is freed.

    glibc's malloc serves large blocks from mmap only above a threshold that rises to the
    size of every large block freed so far (up to 32 MiB), so after a few temporaries a
    parameter-sized array comes from the heap, and freeing it leaves a hole that stays
    resident. Parameters are copied and handed over (to a plan, to a model's flat buffer)
    once each; giving arrays of PAGE_BACKED_MIN_BYTES or more an anonymous mapping of their
    own makes the memory they leave behind go back to the OS at once. Smaller ones come from
    numpy as usual."""
    dtype = np.dtype(dtype)
    nbytes = array_bytes(shape, dtype.itemsize)
    if nbytes < PAGE_BACKED_MIN_BYTES:
        return np.empty(shape, dtype)
    import mmap  # here: a process that never makes such an array does not load the module

    return np.ndarray(shape, dtype, buffer=mmap.mmap(-1, nbytes))


def page_backed_copy(value: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of `value` from page_backed_empty."""
    out = page_backed_empty(value.shape, value.dtype)
    np.copyto(out, value)
    return out


def owns_its_memory(array: np.ndarray) -> bool:
    """Whether `array` is the only user of its memory: it allocated it (numpy's owndata), or
    it is the array page_backed_empty made over its own mapping."""
    if array.flags.owndata:
        return True
    mmap = sys.modules.get("mmap")  # without the module loaded, no array has such a mapping
    return mmap is not None and isinstance(array.base, mmap.mmap)


__all__ = ["MEMORY_LIMIT", "PAGE_BACKED_MIN_BYTES", "array_bytes", "check_allocation",
           "format_bytes", "owns_its_memory", "page_backed_copy", "page_backed_empty",
           "physical_memory"]
