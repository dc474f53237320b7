/* GEMM kernels (csrc/gemm/), for the kernel table. REAL is bound where the list is expanded. */
#ifndef FFNC_GEMM_KERNELS_H
#define FFNC_GEMM_KERNELS_H

#define FFNC_GEMM_KERNELS(X)

#endif
