/* Activation kernels (element-wise), their backward, prelu and bias: float and double. */
#include <tgmath.h>

#include "internal.h"
#include "isa.h"
#include "vmath.h"

#define FFNC_TEMPLATE "activation.tmpl.h"
#include "instantiate.h"
