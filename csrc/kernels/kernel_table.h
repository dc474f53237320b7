/*
 * The kernel table: every kernel that has ISA-specific builds, listed once.
 *
 * Each ISA path (generic, avx2, avx512) compiles the same kernel sources with its own compiler
 * flags and a name suffix (see isa.h), and publishes one table per dtype. The public API
 * (csrc/api/) checks arguments and calls through the table chosen at run time. To add a kernel:
 * list it in its family's header (activation.h, loss.h, optim.h, gemm/gemm_kernels.h: one X(name, (params)) entry),
 * implement it in that family's kernel source with KERNEL(name), and call it from the API
 * layer (csrc/api/<family>.c). The build compiles every .c file of csrc/kernels and csrc/gemm once per path.
 *
 * REAL is the element type; it is bound to float or double where the list is expanded.
 */
#ifndef FFNC_KERNEL_TABLE_H
#define FFNC_KERNEL_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "ffnc.h"

#include "activation.h"
#include "loss.h"
#include "optim.h"
#include "gemm_kernels.h"

#define FFNC_KERNEL_LIST(X) \
    FFNC_ACTIVATION_KERNELS(X) \
    FFNC_LOSS_KERNELS(X) \
    FFNC_OPTIM_KERNELS(X) \
    FFNC_GEMM_KERNELS(X)

#define FFNC_KERNEL_FIELD(name, params) ffnc_status (*name) params;

#define REAL float
typedef struct ffnc_kernels_f32 {
    FFNC_KERNEL_LIST(FFNC_KERNEL_FIELD)
} ffnc_kernels_f32;
#undef REAL

#define REAL double
typedef struct ffnc_kernels_f64 {
    FFNC_KERNEL_LIST(FFNC_KERNEL_FIELD)
} ffnc_kernels_f64;
#undef REAL

#define FFNC_DECLARE_TABLES(isa)                        \
    extern const ffnc_kernels_f32 ffnc_kernels_f32_##isa; \
    extern const ffnc_kernels_f64 ffnc_kernels_f64_##isa;

FFNC_DECLARE_TABLES(generic)
#ifdef FFNC_HAVE_X86_PATHS
FFNC_DECLARE_TABLES(avx2)
FFNC_DECLARE_TABLES(avx512)
#endif

#endif
