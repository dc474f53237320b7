/* The plan object shared by plan.c (creation, validation) and exec.c (execution). */
#ifndef FFNC_PLAN_INTERNAL_H
#define FFNC_PLAN_INTERNAL_H

#include <stdatomic.h>

#include "internal.h"

struct ffnc_plan {
    ffnc_dtype dtype;
    size_t elem_size;
    size_t max_batch;
    void *arena[4];          /* params, grads, state, acts; 64-byte aligned, zeroed */
    void *arena_block[4];    /* the allocations the arenas lie in (what to free) */
    size_t arena_size[4];    /* in elements */
    size_t n_inputs;
    ffnc_plan_input *inputs;
    size_t n_instrs;
    ffnc_plan_instr *instrs;
    size_t n_records;
    ffnc_plan_ref *records;
    /* The operand pointers of each instruction: those into the arenas resolved once by
     * ffnc_plan_create, those of input slots (listed in input_operands, as instruction *
     * FFNC_PLAN_MAX_REFS + ref) written by each run before its first instruction. */
    void *(*operands)[FFNC_PLAN_MAX_REFS];
    size_t n_input_operands;
    size_t *input_operands;
    int64_t step;
    /* The learning rates of the update instructions are multiplied by this during a step of
     * ffnc_plan_run_epoch_scaled; 1 otherwise. */
    double lr_scale;
    /* 1 while a whole step runs (the STEP / STEPPED pairs take the step in the backward), 0
     * in a phased one (ffnc_plan_run_phase). */
    int whole_step;
    /* Set by ffnc_plan_interrupt (from a signal handler or another thread), cleared by the
     * epoch that honours it. */
    atomic_int interrupt;
};

/* fixed + per_batch * batch; the plan validated this at max_batch, so it cannot overflow for
 * any batch up to it. */
static inline size_t ffnc_plan_size_at(ffnc_plan_size s, size_t batch) {
    return s.fixed + s.per_batch * batch;
}

/* Executes instruction `in` over the bound operand pointers (exec.c). */
ffnc_status ffnc_plan_execute(ffnc_plan *plan, const ffnc_plan_instr *in, size_t batch,
                              void *const *ptr);

#endif
