/* Optimizer update kernels (SGD, momentum, Adam/AdamW): float and double. */
#include <tgmath.h>

#include "internal.h"
#include "isa.h"

#define FFNC_TEMPLATE "optim.tmpl.h"
#include "instantiate.h"
