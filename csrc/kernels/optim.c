/* Optimizer update kernels (SGD, momentum, Adam/AdamW): float and double. */
#include <tgmath.h>

#include "internal.h"
#include "isa.h"

#define REAL float
#define SFX f32
#include "optim.tmpl.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX f64
#include "optim.tmpl.h"
#undef REAL
#undef SFX
