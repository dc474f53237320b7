/* Optimizer update kernels (SGD, momentum, Adam/AdamW, RMSprop) and the global norm of
 * gradient clipping: float and double. */
#include <float.h>
#include <tgmath.h>

#include "internal.h"
#include "isa.h"

#define FFNC_TEMPLATE "optim.tmpl.h"
#include "instantiate.h"
