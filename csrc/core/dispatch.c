/* Chooses the ISA path: the best one CPUID reports, or the one FFNC_ISA names. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static atomic_int active_isa = -1; /* -1: not chosen yet */
static atomic_int env_status = FFNC_OK;

const char *ffnc_isa_name(ffnc_isa isa) {
    switch (isa) {
    case FFNC_ISA_GENERIC: return "generic";
    case FFNC_ISA_AVX2: return "avx2";
    case FFNC_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

int ffnc_isa_supported(ffnc_isa isa) {
    switch (isa) {
    case FFNC_ISA_GENERIC: return 1;
#ifdef FFNC_HAVE_X86_PATHS
    case FFNC_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FFNC_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    case FFNC_ISA_AVX2:
    case FFNC_ISA_AVX512: return 0;
#endif
    }
    return 0;
}

static ffnc_isa best_supported(void) {
    if (ffnc_isa_supported(FFNC_ISA_AVX512)) return FFNC_ISA_AVX512;
    if (ffnc_isa_supported(FFNC_ISA_AVX2)) return FFNC_ISA_AVX2;
    return FFNC_ISA_GENERIC;
}

static ffnc_isa choose_isa(void) {
    const char *forced = getenv("FFNC_ISA");
    if (forced == NULL || forced[0] == '\0') return best_supported();
    for (int isa = FFNC_ISA_GENERIC; isa <= FFNC_ISA_AVX512; isa++) {
        if (strcmp(forced, ffnc_isa_name((ffnc_isa)isa)) == 0) {
            if (ffnc_isa_supported((ffnc_isa)isa)) return (ffnc_isa)isa;
            atomic_store(&env_status, FFNC_ERR_UNSUPPORTED_ISA);
            return best_supported();
        }
    }
    atomic_store(&env_status, FFNC_ERR_INVALID_ARGUMENT);
    return best_supported();
}

ffnc_isa ffnc_get_isa(void) {
    int isa = atomic_load(&active_isa);
    if (isa < 0) {
        int expected = -1;
        isa = (int)choose_isa();
        if (!atomic_compare_exchange_strong(&active_isa, &expected, isa)) isa = expected;
    }
    return (ffnc_isa)isa;
}

ffnc_status ffnc_set_isa(ffnc_isa isa) {
    FFNC_REQUIRE(isa >= FFNC_ISA_GENERIC && isa <= FFNC_ISA_AVX512, FFNC_ERR_INVALID_ARGUMENT);
    FFNC_REQUIRE(ffnc_isa_supported(isa), FFNC_ERR_UNSUPPORTED_ISA);
    atomic_store(&active_isa, (int)isa);
    return FFNC_OK;
}

ffnc_status ffnc_isa_env_status(void) {
    (void)ffnc_get_isa();
    return (ffnc_status)atomic_load(&env_status);
}

const ffnc_kernels_f32 *ffnc_active_kernels_f32(void) {
    switch (ffnc_get_isa()) {
#ifdef FFNC_HAVE_X86_PATHS
    case FFNC_ISA_AVX512: return &ffnc_kernels_f32_avx512;
    case FFNC_ISA_AVX2: return &ffnc_kernels_f32_avx2;
#endif
    default: return &ffnc_kernels_f32_generic;
    }
}

const ffnc_kernels_f64 *ffnc_active_kernels_f64(void) {
    switch (ffnc_get_isa()) {
#ifdef FFNC_HAVE_X86_PATHS
    case FFNC_ISA_AVX512: return &ffnc_kernels_f64_avx512;
    case FFNC_ISA_AVX2: return &ffnc_kernels_f64_avx2;
#endif
    default: return &ffnc_kernels_f64_generic;
    }
}
