"""ffnc.threads: a thread count for the calling Python thread, for the duration of a with-block
(the per-thread count of the C core, ffnc_set_local_num_threads)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from ffnc import _core
from ffnc._validate import count

MAX_THREADS: int = _core.MAX_THREADS


def threads(n: int | None) -> AbstractContextManager[None]:
    """Runs ffnc's kernels on `n` threads for the calls made from the calling Python thread
    inside the with-block, then restores the count that was in force before (also when the
    block raises)::

        with ffnc.threads(1):
            model.predict(x)        # one thread here; other threads keep their counts

    n: an int from 1 to 1024 (the C core's FFNC_MAX_THREADS), or None for no count of this
    thread's own inside the block (then ffnc.set_num_threads' count applies, else OpenMP's).
    The count belongs to the calling thread only: other threads, and ffnc.set_num_threads'
    process-wide count, are not changed, so two threads can each run ffnc with their own
    count at once. Blocks nest (the inner count holds inside the inner block).
    threadpoolctl's limits still cap the count. Results do not depend on it: every reduction
    runs in a fixed order. fit(threads=n) uses the same per-thread count.

    Raises TypeError (n not an int or None) or ValueError (n out of range) when called,
    before the block runs.
    """
    if n is not None:
        n = count("threads: n", n, 1, MAX_THREADS)
    return _local_count(n)


@contextmanager
def _local_count(n: int | None) -> Iterator[None]:
    before = _core.local_num_threads()  # None, or an enclosing block's count
    _core.set_local_num_threads(n)
    try:
        yield
    finally:
        _core.set_local_num_threads(before)
