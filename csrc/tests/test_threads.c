/* The thread count: it follows the calling thread's OpenMP default until set, and the per-thread
 * cap (threadpoolctl's handle) bounds both the default and an explicit count, in the calling
 * thread only. */
#include <limits.h>
#include <omp.h>
#include <pthread.h>

#include "check.h"

static void *count_in_a_new_thread(void *out) {
    *(int *)out = ffnc_get_num_threads();
    return NULL;
}

static int count_in_another_thread(void) {
    pthread_t thread;
    int count = -1;
    if (pthread_create(&thread, NULL, count_in_a_new_thread, &count) != 0) return -1;
    pthread_join(thread, NULL);
    return count;
}

static void test_default_follows_openmp(void) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    CHECK(ffnc_get_num_threads() == 3);
    omp_set_num_threads(1);
    CHECK(ffnc_get_num_threads() == 1);
    omp_set_num_threads(saved);
    CHECK(ffnc_get_num_threads() == saved);
}

static void test_cap_bounds_the_default_in_this_thread_only(void) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(4);
    CHECK_OK(ffnc_set_thread_limit(2));
    CHECK(ffnc_get_thread_limit() == 2);
    CHECK(ffnc_get_num_threads() == 2);
    /* a cap above the count changes nothing */
    CHECK_OK(ffnc_set_thread_limit(8));
    CHECK(ffnc_get_num_threads() == 4);
    /* a new thread has the process's OpenMP default and no cap */
    int fresh = count_in_another_thread();
    CHECK_OK(ffnc_set_thread_limit(1));
    CHECK(ffnc_get_num_threads() == 1);
    CHECK(count_in_another_thread() == fresh);
    CHECK_OK(ffnc_set_thread_limit(0));
    CHECK(ffnc_get_thread_limit() == 0);
    CHECK(ffnc_get_num_threads() == 4);
    omp_set_num_threads(saved);
}

static void test_cap_bounds_an_explicit_count(void) {
    CHECK_OK(ffnc_set_num_threads(3));
    omp_set_num_threads(1); /* an explicit count no longer follows OpenMP */
    CHECK(ffnc_get_num_threads() == 3);
    CHECK(count_in_another_thread() == 3);
    CHECK_OK(ffnc_set_thread_limit(1));
    CHECK(ffnc_get_num_threads() == 1);
    CHECK(count_in_another_thread() == 3);
    CHECK_OK(ffnc_set_thread_limit(0));
    CHECK(ffnc_get_num_threads() == 3);
}

static void test_zero_follows_openmp_again(void) {
    int saved = omp_get_max_threads();
    CHECK_OK(ffnc_set_num_threads(3));
    CHECK(ffnc_get_configured_threads() == 3);
    CHECK_OK(ffnc_set_num_threads(0));
    CHECK(ffnc_get_configured_threads() == 0);
    omp_set_num_threads(2);
    CHECK(ffnc_get_num_threads() == 2);
    omp_set_num_threads(saved);
}

static void *local_count_in_a_new_thread(void *out) {
    int *seen = out;
    seen[0] = ffnc_get_local_num_threads();
    CHECK_OK(ffnc_set_local_num_threads(1));
    seen[1] = ffnc_get_num_threads();
    return NULL;
}

/* A thread's own count beats the process-wide one, in that thread only; the cap bounds it. */
static void test_local_count_applies_to_its_thread_only(void) {
    CHECK_OK(ffnc_set_num_threads(3));
    CHECK(ffnc_get_local_num_threads() == 0);
    CHECK_OK(ffnc_set_local_num_threads(2));
    CHECK(ffnc_get_local_num_threads() == 2);
    CHECK(ffnc_get_num_threads() == 2);
    CHECK(ffnc_get_configured_threads() == 3);
    CHECK(count_in_another_thread() == 3);
    pthread_t thread;
    int seen[2] = {-1, -1};
    CHECK(pthread_create(&thread, NULL, local_count_in_a_new_thread, seen) == 0);
    pthread_join(thread, NULL);
    CHECK(seen[0] == 0 && seen[1] == 1);
    CHECK(ffnc_get_num_threads() == 2); /* the other thread's count stayed there */
    CHECK_OK(ffnc_set_local_num_threads(5));
    CHECK_OK(ffnc_set_thread_limit(4));
    CHECK(ffnc_get_num_threads() == 4);
    CHECK_OK(ffnc_set_thread_limit(0));
    CHECK_STATUS(ffnc_set_local_num_threads(-1), FFNC_ERR_INVALID_ARGUMENT);
    CHECK(ffnc_get_local_num_threads() == 5);
    CHECK_OK(ffnc_set_local_num_threads(0));
    CHECK(ffnc_get_num_threads() == 3);
    CHECK_OK(ffnc_set_num_threads(0));
}

static void test_bad_values(void) {
    CHECK_STATUS(ffnc_set_thread_limit(-1), FFNC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ffnc_set_num_threads(-1), FFNC_ERR_INVALID_ARGUMENT);
    CHECK(ffnc_get_thread_limit() == 0);
}

/* Counts above FFNC_MAX_THREADS are refused (libgomp aborts when it cannot create a region's
 * threads, and INT_MAX was accepted), leaving the count as it was; the maximum itself is a
 * count like any other, and an OpenMP default above it is capped. */
static void test_counts_above_the_maximum(void) {
    const int too_many[] = {FFNC_MAX_THREADS + 1, 1 << 20, INT_MAX};
    CHECK_OK(ffnc_set_num_threads(2));
    CHECK_OK(ffnc_set_local_num_threads(3));
    for (size_t i = 0; i < sizeof too_many / sizeof *too_many; i++) {
        CHECK_STATUS(ffnc_set_num_threads(too_many[i]), FFNC_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ffnc_set_local_num_threads(too_many[i]), FFNC_ERR_INVALID_ARGUMENT);
    }
    CHECK(ffnc_get_configured_threads() == 2);
    CHECK(ffnc_get_local_num_threads() == 3);
    CHECK(ffnc_get_num_threads() == 3);

    CHECK_OK(ffnc_set_local_num_threads(FFNC_MAX_THREADS));
    CHECK(ffnc_get_num_threads() == FFNC_MAX_THREADS);
    CHECK_OK(ffnc_set_local_num_threads(0));
    CHECK_OK(ffnc_set_num_threads(FFNC_MAX_THREADS));
    CHECK(ffnc_get_num_threads() == FFNC_MAX_THREADS);
    CHECK(count_in_another_thread() == FFNC_MAX_THREADS);
    CHECK_OK(ffnc_set_num_threads(0));

    int saved = omp_get_max_threads();
    omp_set_num_threads(FFNC_MAX_THREADS + 7); /* sets OpenMP's default; creates no thread */
    CHECK(ffnc_get_num_threads() == FFNC_MAX_THREADS);
    CHECK_OK(ffnc_set_thread_limit(2)); /* the cap still bounds the capped default */
    CHECK(ffnc_get_num_threads() == 2);
    CHECK_OK(ffnc_set_thread_limit(0));
    omp_set_num_threads(saved);
    CHECK(ffnc_get_num_threads() == saved);
}

int main(void) {
    /* first, while no count has been set */
    test_default_follows_openmp();
    test_cap_bounds_the_default_in_this_thread_only();
    test_cap_bounds_an_explicit_count();
    test_zero_follows_openmp_again();
    test_local_count_applies_to_its_thread_only();
    test_bad_values();
    test_counts_above_the_maximum();
    return check_report("threads");
}
