/* Loss kernels: softmax cross-entropy, log-softmax, binary cross-entropy from logits, mean
 * squared and absolute error, with their gradients; float and double. */
#include <tgmath.h>

#include "internal.h"
#include "isa.h"
#include "vmath.h"

/* FFNC_ERR_LABEL_OUT_OF_RANGE unless every label is in [0, classes). Runs before a kernel
 * writes anything, so a rejected call leaves its outputs (which may alias its inputs) intact.
 * No early exit: the loop stays branch-free and vectorizes, and a bad label is the rare case. */
static ffnc_status labels_in_range(size_t rows, size_t classes, const int64_t *labels) {
    int bad = 0;
    for (size_t r = 0; r < rows; r++)
        bad |= (labels[r] < 0) | ((uint64_t)labels[r] >= (uint64_t)classes);
    return bad ? FFNC_ERR_LABEL_OUT_OF_RANGE : FFNC_OK;
}

#define FFNC_TEMPLATE "loss.tmpl.h"
#include "instantiate.h"
