/* The thread count ffnc's parallel regions use. ffnc never calls omp_set_num_threads: every
 * parallel region passes its own num_threads clause, so other OpenMP users in the process keep
 * their settings.
 *
 * Until ffnc_set_num_threads is called the count follows the calling thread's OpenMP default,
 * read at every call (omp_get_max_threads: OMP_NUM_THREADS, omp_set_num_threads of the libgomp
 * ffnc is linked to, hence threadpoolctl's OpenMP limits). A per-thread cap, set by
 * ffnc_set_thread_limit (threadpoolctl's ffnc controller), bounds either count, so
 * `threadpool_limits(1)` also holds when the user chose a count explicitly. A count for the
 * calling thread only (ffnc_set_local_num_threads: what ffnc.train.fit(threads=n) sets) takes
 * precedence over both, so that two threads training at once can each use their own count
 * without racing on the process-wide one; the cap bounds it too. No count exceeds
 * FFNC_MAX_THREADS: libgomp aborts the process when it cannot create the threads a region asks
 * for, so larger counts are refused and a larger OpenMP default is capped. */
#include <stdatomic.h>

#include <omp.h>

#include "internal.h"

static atomic_int configured_threads; /* 0: follow the OpenMP default */
static _Thread_local int thread_limit; /* 0: no cap for calls from this thread */
static _Thread_local int local_threads; /* 0: no count of this thread's own */
/* Calls of ffnc_threads_for that chose more than one thread (see internal.h). */
static atomic_size_t multithreaded_calls;

ffnc_status ffnc_set_num_threads(int n) {
    FFNC_REQUIRE(n >= 0 && n <= FFNC_MAX_THREADS, FFNC_ERR_INVALID_ARGUMENT);
    atomic_store(&configured_threads, n);
    return FFNC_OK;
}

int ffnc_get_configured_threads(void) { return atomic_load(&configured_threads); }

ffnc_status ffnc_set_thread_limit(int n) {
    FFNC_REQUIRE(n >= 0, FFNC_ERR_INVALID_ARGUMENT);
    thread_limit = n;
    return FFNC_OK;
}

int ffnc_get_thread_limit(void) { return thread_limit; }

ffnc_status ffnc_set_local_num_threads(int n) {
    FFNC_REQUIRE(n >= 0 && n <= FFNC_MAX_THREADS, FFNC_ERR_INVALID_ARGUMENT);
    local_threads = n;
    return FFNC_OK;
}

int ffnc_get_local_num_threads(void) { return local_threads; }

int ffnc_get_num_threads(void) {
    int n = local_threads;
    if (n == 0) n = atomic_load(&configured_threads);
    if (n == 0) {
        n = omp_get_max_threads();
        if (n < 1) n = 1;
        if (n > FFNC_MAX_THREADS) n = FFNC_MAX_THREADS;
    }
    if (thread_limit > 0 && thread_limit < n) n = thread_limit;
    return n;
}

static size_t grain_override;

void ffnc_override_grain(size_t grain) { grain_override = grain; }

int ffnc_threads_for(size_t work, size_t grain) {
    /* Inside someone else's parallel region: run serially rather than nest. */
    if (omp_in_parallel()) return 1;
    if (grain_override) grain = grain_override;
    if (grain == 0) grain = 1;
    size_t useful = work / grain;
    if (useful <= 1) return 1;
    int n = ffnc_get_num_threads();
    if (useful < (size_t)n) n = (int)useful;
    if (n > 1) atomic_fetch_add_explicit(&multithreaded_calls, 1, memory_order_relaxed);
    return n;
}

size_t ffnc_multithreaded_calls(void) { return atomic_load(&multithreaded_calls); }

const char *ffnc_openmp_info(void) {
#define FFNC_STR_(x) #x
#define FFNC_STR(x) FFNC_STR_(x)
#if _OPENMP >= 202111
    return "OpenMP 5.2 (" FFNC_STR(_OPENMP) ")";
#elif _OPENMP >= 202011
    return "OpenMP 5.1 (" FFNC_STR(_OPENMP) ")";
#elif _OPENMP >= 201811
    return "OpenMP 5.0 (" FFNC_STR(_OPENMP) ")";
#elif _OPENMP >= 201511
    return "OpenMP 4.5 (" FFNC_STR(_OPENMP) ")";
#else
    return "OpenMP (" FFNC_STR(_OPENMP) ")";
#endif
}
