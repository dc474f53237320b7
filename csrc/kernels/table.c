/* Publishes this ISA path's kernel tables (one per dtype); compiled once per path. */
#include "internal.h"
#include "isa.h"

#define FFNC_KERNEL_PROTO(name, params) ffnc_status KERNEL(name) params;
#define FFNC_KERNEL_ENTRY(name, params) .name = KERNEL(name),

#define REAL float
#define SFX f32
FFNC_KERNEL_LIST(FFNC_KERNEL_PROTO)
const ffnc_kernels_f32 FFNC_CAT2(ffnc_kernels_f32, FFNC_ISA_SUFFIX) = {
    FFNC_KERNEL_LIST(FFNC_KERNEL_ENTRY)
};
#undef REAL
#undef SFX

#define REAL double
#define SFX f64
FFNC_KERNEL_LIST(FFNC_KERNEL_PROTO)
const ffnc_kernels_f64 FFNC_CAT2(ffnc_kernels_f64, FFNC_ISA_SUFFIX) = {
    FFNC_KERNEL_LIST(FFNC_KERNEL_ENTRY)
};
#undef REAL
#undef SFX
