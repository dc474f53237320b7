/* Activation kernels (element-wise), their backward, prelu and bias: float and double. */
#include <tgmath.h>

#include "internal.h"
#include "isa.h"
#include "vmath.h"

#define REAL float
#define SFX f32
#include "activation.tmpl.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX f64
#include "activation.tmpl.h"
#undef REAL
#undef SFX
