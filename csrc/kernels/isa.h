/*
 * Naming for code compiled once per ISA path. The build compiles every kernel source with
 * -DFFNC_ISA_SUFFIX=<path> and that path's flags (-mavx2 -mfma, -mavx512f ...), so
 * KERNEL(relu) becomes relu_f32_avx2 and so on: one symbol per path and dtype.
 *
 * A kernel source instantiates its .tmpl.h body for float and double through instantiate.h.
 */
#ifndef FFNC_ISA_H
#define FFNC_ISA_H

#ifndef FFNC_ISA_SUFFIX
#error "kernel sources are compiled once per ISA with -DFFNC_ISA_SUFFIX=<generic|avx2|avx512>"
#endif

#define FFNC_CAT3_(a, b, c) a##_##b##_##c
#define FFNC_CAT3(a, b, c) FFNC_CAT3_(a, b, c)
#define KERNEL(name) FFNC_CAT3(name, SFX, FFNC_ISA_SUFFIX)

#define FFNC_CAT2_(a, b) a##_##b
#define FFNC_CAT2(a, b) FFNC_CAT2_(a, b)

#endif
