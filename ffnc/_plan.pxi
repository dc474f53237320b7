# Plans (csrc/plan): a compiled training step run in one C call. Included by _core.pyx.
# ffnc.compiler builds the instruction list; this layer packs it into C structs, validates the
# arrays fed to each run and hands out zero-copy views of the plan's arenas.
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock,
                               PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_release_lock, PyThread_type_lock)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import math

PLAN_OPCODES = {
    "dense_forward": FFNC_OP_DENSE_FORWARD, "dense_backward": FFNC_OP_DENSE_BACKWARD,
    "gemm": FFNC_OP_GEMM, "act_forward": FFNC_OP_ACT_FORWARD,
    "act_backward": FFNC_OP_ACT_BACKWARD, "bias_forward": FFNC_OP_BIAS_FORWARD,
    "colsum": FFNC_OP_COLSUM, "rowsum": FFNC_OP_ROWSUM, "sum_all": FFNC_OP_SUM_ALL,
    "xent_forward": FFNC_OP_XENT_FORWARD, "xent_backward": FFNC_OP_XENT_BACKWARD,
    "bce_forward": FFNC_OP_BCE_FORWARD, "mse_forward": FFNC_OP_MSE_FORWARD,
    "l1_forward": FFNC_OP_L1_FORWARD, "bce_backward": FFNC_OP_BCE_BACKWARD,
    "mse_backward": FFNC_OP_MSE_BACKWARD, "l1_backward": FFNC_OP_L1_BACKWARD,
    "binary": FFNC_OP_BINARY, "unary": FFNC_OP_UNARY, "fill": FFNC_OP_FILL,
    "fill_count": FFNC_OP_FILL_COUNT, "sgd": FFNC_OP_SGD, "momentum": FFNC_OP_MOMENTUM,
    "adam": FFNC_OP_ADAM, "rmsprop": FFNC_OP_RMSPROP, "clip_grad_norm": FFNC_OP_CLIP_GRAD_NORM,
    "where": FFNC_OP_WHERE, "one_hot": FFNC_OP_ONE_HOT, "from_int64": FFNC_OP_FROM_INT64,
    "softmax": FFNC_OP_SOFTMAX, "log_softmax": FFNC_OP_LOG_SOFTMAX,
    "logsumexp": FFNC_OP_LOGSUMEXP, "max_argmax": FFNC_OP_MAX_ARGMAX,
    "copy_strided": FFNC_OP_COPY_STRIDED, "sqdist": FFNC_OP_SQDIST,
    "dropout": FFNC_OP_DROPOUT, "softmax_backward": FFNC_OP_SOFTMAX_BACKWARD,
    "log_softmax_backward": FFNC_OP_LOG_SOFTMAX_BACKWARD, "transpose": FFNC_OP_TRANSPOSE,
    "prelu_forward": FFNC_OP_PRELU_FORWARD, "prelu_backward": FFNC_OP_PRELU_BACKWARD,
}
PLAN_BINARY = {"add": FFNC_BINARY_ADD, "sub": FFNC_BINARY_SUB, "mul": FFNC_BINARY_MUL,
               "div": FFNC_BINARY_DIV, "maximum": FFNC_BINARY_MAXIMUM,
               "minimum": FFNC_BINARY_MINIMUM, "greater": FFNC_BINARY_GREATER,
               "greater_equal": FFNC_BINARY_GREATER_EQUAL, "equal": FFNC_BINARY_EQUAL}
PLAN_UNARY = {"copy": FFNC_UNARY_COPY, "neg": FFNC_UNARY_NEG, "scale": FFNC_UNARY_SCALE,
              "exp": FFNC_UNARY_EXP, "log": FFNC_UNARY_LOG, "square": FFNC_UNARY_SQUARE,
              "sqrt": FFNC_UNARY_SQRT}
PLAN_FLAGS = {"trans_a": FFNC_PLAN_TRANS_A, "trans_b": FFNC_PLAN_TRANS_B,
              "accumulate": FFNC_PLAN_ACCUMULATE, "accumulate_src": FFNC_PLAN_ACCUMULATE_SRC,
              "mean": FFNC_PLAN_MEAN, "nesterov": FFNC_PLAN_NESTEROV,
              "decoupled": FFNC_PLAN_DECOUPLED, "centered": FFNC_PLAN_CENTERED,
              "beta": FFNC_PLAN_BETA, "step": FFNC_PLAN_STEP, "stepped": FFNC_PLAN_STEPPED}
PLAN_ARENAS = {"none": FFNC_PLAN_NONE, "params": FFNC_PLAN_PARAMS, "grads": FFNC_PLAN_GRADS,
               "state": FFNC_PLAN_STATE, "acts": FFNC_PLAN_ACTS, "input": FFNC_PLAN_INPUT}
_ARENA_ORDER = ("params", "grads", "state", "acts")
_OPCODE_NAMES = {v: k for k, v in PLAN_OPCODES.items()}
cdef object _MISSING = object()  # a feed without one of the slot names


cdef void _fill_instr(ffnc_plan_instr *c, object spec) except *:
    """One instruction from its Python form (see ffnc.compiler.program.Instr.as_tuple)."""
    opcode, subop, flags, sizes, alpha, hyper, strides, refs = spec
    memset(c, 0, sizeof(ffnc_plan_instr))
    c.opcode = opcode
    c.subop = subop
    c.flags = flags
    c.m.fixed, c.m.per_batch = sizes[0]
    c.n.fixed, c.n.per_batch = sizes[1]
    c.k.fixed, c.k.per_batch = sizes[2]
    c.alpha = alpha
    if len(hyper) > 5 or len(strides) > 6 or len(refs) > FFNC_PLAN_MAX_REFS:
        raise ValueError(f"plan instruction {spec!r} has too many fields")
    for i, h in enumerate(hyper):
        c.hyper[i] = h
    for i, s in enumerate(strides):
        c.strides[i] = s
    for i, (arena, slot, offset) in enumerate(refs):
        c.refs[i].arena = arena
        c.refs[i].slot = slot
        c.refs[i].offset = offset


cdef int _plan_check(ffnc_status s, str call, size_t failed, str step="") except -1:
    """Raises for a failed run: where it failed (the step, the instruction), unless the run
    was refused before any instruction (the step counter at its limit)."""
    if s == FFNC_ERR_STEP_LIMIT:
        return _check(s, call)
    return _check(s, f"{call}: {step}instruction {failed}")


cdef struct SlotCheck:
    int typenum               # the numpy type number the slot takes
    int ndim
    cnp.npy_intp *shape       # ndim sizes, -1 for the batch (into PlanHandle.slot_sizes)


cdef class PlanHandle:
    """Owns one C plan and its arenas. Arena views (arena()) keep the handle alive.

    One call into the plan at a time: ``with handle:`` holds its lock (waiting with the GIL
    released) around a call and the reading of its outputs; ``run_named_copy`` takes it
    itself. A C lock rather than a threading.Lock: Plan.run's whole step is a few
    microseconds, and the Python-level ``with`` cost a tenth of that."""

    cdef ffnc_plan *plan
    cdef PyThread_type_lock lock
    cdef const void **ptrs  # one data pointer per input slot, filled by each run
    cdef readonly object dtype
    cdef readonly size_t max_batch
    cdef readonly tuple slots  # (name, numpy dtype, shape with None for the batch)
    # what each slot accepts, in C: checking a feed costs no Python objects (Plan.run of a
    # small plan is a few microseconds, and these checks were a tenth of it)
    cdef SlotCheck *slot_checks
    cdef cnp.npy_intp *slot_sizes
    cdef readonly size_t n_records
    cdef readonly size_t n_instrs
    # compute_gradients -> apply_update: the arrays bound for the step (kept alive until its
    # update, which may read them too), their pointers and batch
    cdef const void **phase_ptrs
    cdef list phase_arrays
    cdef size_t phase_batch

    def __cinit__(self):
        self.plan = NULL
        self.ptrs = NULL
        self.slot_checks = NULL
        self.slot_sizes = NULL
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError("plan: its lock")

    cdef inline void _acquire(self):
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            with nogil:  # the holder may need the GIL to finish
                PyThread_acquire_lock(self.lock, WAIT_LOCK)

    def __enter__(self):
        self._acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        PyThread_release_lock(self.lock)
        return False

    def __init__(self, dtype, size_t max_batch, arena_sizes, slots, instrs, records):
        self.dtype = np.dtype(dtype)
        if self.dtype != np.float32 and self.dtype != np.float64:
            raise TypeError(f"plan dtype must be float32 or float64, got {self.dtype}")
        self.max_batch = max_batch
        self.slots = tuple((str(n), np.dtype(d), tuple(s)) for n, d, s in slots)
        self.n_records = len(records)
        self.n_instrs = len(instrs)
        cdef ffnc_plan_desc desc
        memset(&desc, 0, sizeof(desc))
        desc.dtype = FFNC_F32 if self.dtype == np.float32 else FFNC_F64
        desc.max_batch = max_batch
        for a in range(4):
            desc.arena_size[a] = arena_sizes[a]
        cdef size_t n_in = len(self.slots), n_instr = len(instrs), n_rec = len(records)
        cdef ffnc_plan_input *c_inputs = <ffnc_plan_input *>malloc(max(n_in, 1) * sizeof(ffnc_plan_input))
        cdef ffnc_plan_instr *c_instrs = <ffnc_plan_instr *>malloc(max(n_instr, 1) * sizeof(ffnc_plan_instr))
        cdef ffnc_plan_ref *c_records = <ffnc_plan_ref *>malloc(max(n_rec, 1) * sizeof(ffnc_plan_ref))
        cdef size_t bad = 0
        cdef ffnc_status s
        try:
            if not c_inputs or not c_instrs or not c_records:
                raise MemoryError("plan: cannot allocate the instruction list")
            for i, (name, dt, shape) in enumerate(self.slots):
                static = math.prod(d for d in shape if d is not None)  # exact, never wraps
                batched = bool(shape) and shape[0] is None
                c_inputs[i].type = FFNC_PLAN_INPUT_INT64 if dt == np.int64 else FFNC_PLAN_INPUT_FLOAT
                c_inputs[i].size.fixed = 0 if batched else static
                c_inputs[i].size.per_batch = static if batched else 0
            for i, spec in enumerate(instrs):
                _fill_instr(&c_instrs[i], spec)
            for i, (arena, offset) in enumerate(records):
                c_records[i].arena = arena
                c_records[i].slot = 0
                c_records[i].offset = offset
            desc.n_inputs = n_in
            desc.inputs = c_inputs
            desc.n_instrs = n_instr
            desc.instrs = c_instrs
            desc.n_records = n_rec
            desc.records = c_records
            with nogil:
                s = ffnc_plan_create(&desc, &self.plan, &bad)
            if s == FFNC_ERR_OUT_OF_MEMORY:
                _check(s, f"plan: allocating its arenas ({', '.join(f'{n} {z}' for n, z in zip(_ARENA_ORDER, arena_sizes))} elements of {self.dtype})")
            if s != FFNC_OK:
                where = (f"instruction {bad} ({_OPCODE_NAMES.get(instrs[bad][0], instrs[bad][0])})"
                         if bad < n_instr else "the plan description")
                _check(s, f"plan: {where} is invalid")
            self._fill_slot_checks()
        except OverflowError:  # a size beyond size_t (compile checks the sizes it can name)
            raise ValueError(f"plan: a size in the plan description does not fit in size_t "
                             f"(arenas {list(arena_sizes)}, inputs {list(self.slots)})") from None
        finally:
            free(c_inputs)
            free(c_instrs)
            free(c_records)
        self.ptrs = <const void **>malloc(max(n_in, 1) * sizeof(void *))
        if not self.ptrs:
            raise MemoryError("plan: the input pointer table")

    cdef int _fill_slot_checks(self) except -1:
        cdef size_t n = len(self.slots), total = sum(len(shape) for _, _, shape in self.slots)
        self.slot_checks = <SlotCheck *>malloc(max(n, 1) * sizeof(SlotCheck))
        self.slot_sizes = <cnp.npy_intp *>malloc(max(total, 1) * sizeof(cnp.npy_intp))
        if not self.slot_checks or not self.slot_sizes:
            raise MemoryError("plan: the input checks")
        cdef size_t at = 0
        for i, (_, dt, shape) in enumerate(self.slots):
            self.slot_checks[i].typenum = dt.num
            self.slot_checks[i].ndim = len(shape)
            self.slot_checks[i].shape = self.slot_sizes + at
            for d in shape:
                self.slot_sizes[at] = -1 if d is None else d
                at += 1
        return 0

    def __dealloc__(self):
        ffnc_plan_destroy(self.plan)
        free(self.ptrs)
        free(self.slot_checks)
        free(self.slot_sizes)
        free(self.phase_ptrs)
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    def arena(self, str which):
        """A writable 1-D view of arena `which` (params, grads, state, acts); it keeps the plan
        alive."""
        if which not in _ARENA_ORDER:
            raise ValueError(f"arena must be one of {_ARENA_ORDER}, got {which!r}")
        cdef void *data = NULL
        cdef size_t size = 0
        _check(ffnc_plan_arena_data(self.plan, <ffnc_plan_arena>PLAN_ARENAS[which], &data, &size),
               "plan.arena")
        cdef cnp.npy_intp dims[1]
        dims[0] = <cnp.npy_intp>size
        cdef int typenum = cnp.NPY_FLOAT32 if self.dtype == np.float32 else cnp.NPY_FLOAT64
        cdef cnp.ndarray view = cnp.PyArray_SimpleNewFromData(1, dims, typenum, data)
        cnp.Py_INCREF(self)
        cnp.PyArray_SetBaseObject(view, self)
        return view

    property step:
        """Steps run so far (Adam's bias correction counts from it); settable for resuming."""
        def __get__(self):
            return ffnc_plan_get_step(self.plan)

        def __set__(self, value):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"step must be an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"step must be >= 0, got {value}")
            if value > 9223372036854775807:
                raise ValueError(f"step must be < 2**63, got {value}")
            _check(ffnc_plan_set_step(self.plan, <int64_t>value), "plan.step")

    property lr:
        """The learning rate of the plan's update instruction; settable between runs. A plan
        without an optimizer has none (ValueError)."""
        def __get__(self):
            cdef double lr = 0
            if ffnc_plan_get_lr(self.plan, &lr) != FFNC_OK:
                raise ValueError("this plan has no optimizer, so no learning rate")
            return lr

        def __set__(self, value):
            cdef double lr = _finite(value, "lr")
            if lr < 0:
                raise ValueError(f"lr must be >= 0, got {lr}")
            if self.dtype == np.float32 and lr > _FLOAT32_MAX:
                raise ValueError(f"lr={lr} overflows float32, the dtype of this plan")
            cdef double current = 0
            if ffnc_plan_get_lr(self.plan, &current) != FFNC_OK:
                raise ValueError("this plan has no optimizer, so no learning rate to set")
            _check(ffnc_plan_set_lr(self.plan, lr), "plan.lr")

    cdef int _bind_error(self, size_t i, object x) except -1:
        """Raises the error that says what is wrong with the array fed to slot i."""
        name, dt, shape = self.slots[i]
        if not isinstance(x, np.ndarray):
            raise TypeError(f"input {name!r} must be a numpy.ndarray, got {type(x).__name__}")
        if x.dtype != dt:
            raise TypeError(f"input {name!r} must have dtype {dt}, got {x.dtype}; ffnc "
                            f"never casts silently, convert it explicitly")
        if not x.flags.c_contiguous:
            raise ValueError(f"input {name!r} must be C-contiguous; pass "
                             f"numpy.ascontiguousarray({name})")
        shown = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
        raise ValueError(f"input {name!r} must have shape {shown} (None: the batch), "
                         f"got {x.shape}")

    cdef int _bind_slot(self, size_t i, object x, const void **ptrs, size_t *rows,
                        Py_ssize_t *rows_slot) except -1:
        """Checks the array fed to slot i and stores its data pointer in ptrs[i]; the first
        batched slot sets rows and rows_slot (-1 until then), later ones must agree."""
        cdef const SlotCheck *check = &self.slot_checks[i]
        # The fast checks in C; _bind_error only builds the message.
        if (not cnp.PyArray_Check(x) or cnp.PyArray_TYPE(<cnp.ndarray>x) != check.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)
                or cnp.PyArray_NDIM(<cnp.ndarray>x) != check.ndim):
            self._bind_error(i, x)
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
        for d in range(check.ndim):
            if check.shape[d] >= 0 and dims[d] != check.shape[d]:
                self._bind_error(i, x)
        if check.ndim > 0 and check.shape[0] < 0:
            if rows_slot[0] < 0:
                rows[0] = <size_t>dims[0]
                rows_slot[0] = i
            elif <size_t>dims[0] != rows[0]:
                raise ValueError(f"inputs disagree on the batch size: "
                                 f"{self.slots[rows_slot[0]][0]!r} has {rows[0]} rows, "
                                 f"{self.slots[i][0]!r} has {dims[0]}")
        ptrs[i] = cnp.PyArray_DATA(<cnp.ndarray>x)
        return 0

    cdef size_t _batch_of(self, size_t rows, Py_ssize_t rows_slot, bint whole) except 0:
        """The batch of a feed whose batched slots agreed on `rows` (rows_slot the first of
        them, -1 if none: a batch of 1)."""
        if rows_slot < 0:
            return 1
        name = self.slots[rows_slot][0]
        if rows == 0:
            raise ValueError(f"input {name!r} has no rows")
        if not whole and rows > self.max_batch:
            raise ValueError(f"input {name!r} has {rows} rows but the plan was compiled "
                             f"for batches of at most {self.max_batch}")
        return rows

    cdef size_t _bind(self, list arrays, const void **ptrs, bint whole) except 0:
        """Checks the arrays fed to the input slots; returns the batch (rows) they agree on."""
        if len(arrays) != len(self.slots):
            raise ValueError(f"plan: expected {len(self.slots)} inputs, got {len(arrays)}")
        cdef size_t rows = 0
        cdef Py_ssize_t rows_slot = -1
        for i in range(len(arrays)):
            self._bind_slot(i, arrays[i], ptrs, &rows, &rows_slot)
        return self._batch_of(rows, rows_slot, whole)

    cdef cnp.ndarray _lr_scale(self, object lr_scale, size_t steps):
        """lr_scale checked: a 1-D float64 array of `steps` finite values >= 0, whose largest
        multiple of the plan's lr is a valid rate."""
        cdef double lr = 0
        if ffnc_plan_get_lr(self.plan, &lr) != FFNC_OK:
            raise ValueError("lr_scale needs a plan with an optimizer")
        if not isinstance(lr_scale, np.ndarray):
            raise TypeError(f"lr_scale must be a numpy.ndarray (float64, one multiplier per "
                            f"step), got {type(lr_scale).__name__}")
        if lr_scale.dtype != np.float64:
            raise TypeError(f"lr_scale must have dtype float64, got {lr_scale.dtype}; ffnc "
                            f"never casts silently")
        if lr_scale.ndim != 1 or <size_t>lr_scale.shape[0] != steps:
            raise ValueError(f"lr_scale must have shape ({steps},), one multiplier per step of "
                             f"this epoch, got {lr_scale.shape}")
        bad = np.flatnonzero(~(np.isfinite(lr_scale) & (lr_scale >= 0)))
        if bad.size:
            raise ValueError(f"lr_scale must hold finite values >= 0; lr_scale[{bad[0]}] = "
                             f"{lr_scale[bad[0]]}")
        if steps and self.dtype == np.float32 and lr * float(lr_scale.max()) > _FLOAT32_MAX:
            raise ValueError(f"lr_scale: lr {lr} times {float(lr_scale.max())} overflows "
                             f"float32, the dtype of this plan")
        return np.ascontiguousarray(lr_scale)

    def run(self, list arrays):
        """One step over `arrays` (one per input slot, in order); returns the batch size."""
        cdef size_t batch, failed = 0
        cdef ffnc_status s
        batch = self._bind(arrays, self.ptrs, False)
        with nogil:
            s = ffnc_plan_run(self.plan, batch, self.ptrs, &failed)
        if s != FFNC_OK:
            _plan_check(s, "plan.run", failed)
        return batch

    def run_timed(self, list arrays, cnp.ndarray seconds not None):
        """run() that also adds each instruction's wall-clock seconds to `seconds` (a
        writable, C-contiguous float64 array of n_instrs values); returns the batch size."""
        if (seconds.dtype != np.float64 or seconds.ndim != 1
                or <size_t>seconds.shape[0] != self.n_instrs
                or not seconds.flags.c_contiguous or not seconds.flags.writeable):
            raise ValueError(f"plan.run_timed: seconds must be a writable, C-contiguous "
                             f"float64 array of shape ({self.n_instrs},), got {seconds.dtype} "
                             f"{(<object>seconds).shape}")
        cdef double *per_instr = <double *>cnp.PyArray_DATA(seconds)
        cdef size_t batch, failed = 0
        cdef ffnc_status s
        batch = self._bind(arrays, self.ptrs, False)
        with nogil:
            s = ffnc_plan_run_timed(self.plan, batch, self.ptrs, per_instr, &failed)
        if s != FFNC_OK:
            _plan_check(s, "plan.profile", failed)
        return batch

    cdef size_t _run_named(self, object feed, tuple names) except? 0:
        """One step over a dict keyed by exactly the slot names (`names`, in slot order);
        returns the batch size, or 0 without running anything when `feed` is not such a dict
        (the general path then says what is wrong). The caller holds the lock."""
        if type(feed) is not dict or len(<dict>feed) != len(names):
            return 0
        cdef size_t rows = 0, batch, failed = 0
        cdef Py_ssize_t rows_slot = -1
        cdef ffnc_status s
        for i in range(len(names)):
            x = (<dict>feed).get(names[i], _MISSING)
            if x is _MISSING:
                return 0
            self._bind_slot(i, x, self.ptrs, &rows, &rows_slot)
        batch = self._batch_of(rows, rows_slot, False)
        with nogil:
            s = ffnc_plan_run(self.plan, batch, self.ptrs, &failed)
        if s != FFNC_OK:
            _plan_check(s, "plan.run", failed)
        return batch

    def run_named(self, object feed, tuple names):
        """Plan.run's fast path (the caller holds the lock): see _run_named; None instead of
        0 when `feed` does not fit it."""
        cdef size_t batch = self._run_named(feed, names)
        return batch if batch else None

    def run_named_copy(self, object feed, tuple names, cnp.ndarray result not None):
        """Plan.run's fast path for a plan whose only output has a fixed size (a loss), under
        the lock: the step, then a copy of `result` (that output's view); None when `feed`
        does not fit (see _run_named)."""
        self._acquire()
        try:
            if not self._run_named(feed, names):
                return None
            if not cnp.PyArray_IS_C_CONTIGUOUS(result):
                return cnp.PyArray_NewCopy(result, cnp.NPY_CORDER)
            # a new array and one memcpy: a tenth of PyArray_NewCopy's general assignment
            copy = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(result), cnp.PyArray_DIMS(result),
                                     cnp.PyArray_TYPE(result), 0)
            memcpy(cnp.PyArray_DATA(copy), cnp.PyArray_DATA(result), cnp.PyArray_NBYTES(result))
            return copy
        finally:
            PyThread_release_lock(self.lock)

    def run_epoch(self, list arrays, size_t batch, lr_scale=None):
        """ceil(rows / batch) steps over whole-dataset arrays, minibatches in order; returns the
        recorded scalars, shape (steps, n_records). lr_scale: None, or a float64 array of one
        learning-rate multiplier per step (finite, >= 0)."""
        if batch < 1 or batch > self.max_batch:
            raise ValueError(f"batch must be in [1, {self.max_batch}] (the plan's maximum), "
                             f"got {batch}")
        cdef const void **ptrs = self.ptrs
        cdef size_t rows, steps, done = 0, failed = 0
        cdef ffnc_status s
        cdef cnp.ndarray records
        cdef double *rec_ptr
        cdef const double *scale_ptr = NULL
        rows = self._bind(arrays, ptrs, True)
        steps = (rows + batch - 1) // batch
        if lr_scale is not None:
            scale = self._lr_scale(lr_scale, steps)
            scale_ptr = <const double *>cnp.PyArray_DATA(scale)
        records = np.zeros((steps, self.n_records), dtype=np.float64)
        rec_ptr = <double *>cnp.PyArray_DATA(records)
        # Ctrl-C stops the epoch between two steps (see "Ctrl-C during an epoch" below)
        cdef bint guarded = _sigint_guard_wanted() and ffnc_sigint_guard_begin(self.plan)
        cdef int sigints = 0
        if guarded:
            try:
                PyErr_CheckSignals()  # a Ctrl-C that came just before: Python handles it now
            except BaseException:
                ffnc_sigint_guard_end()
                raise
        with nogil:
            s = ffnc_plan_run_epoch_scaled(self.plan, rows, batch, ptrs, scale_ptr, rec_ptr,
                                           &done, &failed)
        if guarded:
            sigints = ffnc_sigint_guard_end()
            if sigints:
                _sigint_used()
        if s == FFNC_ERR_INTERRUPTED or (s == FFNC_OK and sigints):
            # a Ctrl-C during the last step finds the epoch done: its request is withdrawn
            ffnc_plan_clear_interrupt(self.plan)
            raise PlanInterrupted(done, steps, records[:done])
        if s != FFNC_OK:
            _plan_check(s, "plan.run_epoch", failed, f"step {done}, ")
        return records

    def interrupt(self):
        """Asks the run_epoch running on this plan (in another thread) to stop after its
        current step, raising PlanInterrupted there; made while no epoch runs, the request
        stops the next one before its first step. Thread-safe."""
        _check(ffnc_plan_interrupt(self.plan), "plan.interrupt")

    # ---- a step in two phases (ffnc_plan_run_phase): ffnc.distributed averages the gradient
    # arena across processes between them

    @property
    def update_begin(self):
        """The index of the first instruction of the update phase (the first that clips or
        applies the gradients); the number of instructions when there is none."""
        return ffnc_plan_update_begin(self.plan)

    def compute_gradients(self, list arrays):
        """The first phase of a step over `arrays` (as run's): every instruction before the
        update (forward and backward). Returns the batch size."""
        cdef size_t batch, failed = 0
        cdef ffnc_status s
        self.phase_arrays = None
        if self.phase_ptrs == NULL:
            self.phase_ptrs = <const void **>malloc(max(len(self.slots), 1) * sizeof(void *))
            if self.phase_ptrs == NULL:
                raise MemoryError("plan: the input pointer table")
        batch = self._bind(arrays, self.phase_ptrs, False)
        with nogil:
            s = ffnc_plan_run_phase(self.plan, batch, self.phase_ptrs,
                                    FFNC_PLAN_PHASE_GRADIENTS, &failed)
        if s != FFNC_OK:
            _plan_check(s, "plan.compute_gradients", failed)
        self.phase_arrays = list(arrays)
        self.phase_batch = batch
        return batch

    def apply_update(self):
        """The second phase of the step compute_gradients began: clipping and the optimizer
        update from the gradient arena as it is now, then the instructions after them; counts
        the step. Returns the batch size."""
        cdef size_t batch = self.phase_batch, failed = 0
        cdef ffnc_status s
        if self.phase_arrays is None:
            raise RuntimeError("plan.apply_update: no gradients to apply; call "
                               "compute_gradients first (once per apply_update)")
        held = self.phase_arrays  # alive during the update, which may read them
        self.phase_arrays = None  # the update runs once, even if it fails
        with nogil:
            s = ffnc_plan_run_phase(self.plan, batch, self.phase_ptrs, FFNC_PLAN_PHASE_UPDATE,
                                    &failed)
        if s != FFNC_OK:
            _plan_check(s, "plan.apply_update", failed)
        del held
        return batch


# ---- Ctrl-C during an epoch ---------------------------------------------------------------------
# run_epoch is one C call with the GIL released, so Python's own SIGINT handler could only act
# after the whole epoch. While run_epoch runs in the main thread under Python's default
# handler, a C-level handler takes its place: the first SIGINT asks the plan to stop after the
# current step (ffnc_plan_interrupt, async-signal-safe) and run_epoch raises PlanInterrupted;
# any further SIGINT goes to the handler it replaced, so a second Ctrl-C acts as it always does
# (KeyboardInterrupt once back in Python). The handler may run on any thread of the process:
# it announces itself in a counter that the end of the guard waits on, so the plan it points
# to is never used after run_epoch returns.
from cpython.exc cimport PyErr_CheckSignals

import threading as _threading

# the C module: signal.getsignal is a Python wrapper, and no Python code may run in
# _sigint_used before it is done
import _signal

cdef extern from *:
    """
    #include <errno.h>
    #include <sched.h>
    #include <signal.h>
    #include <stdatomic.h>
    #include <string.h>

    #if defined(SA_SIGINFO) && ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2
    static _Atomic(ffnc_plan *) ffnc_sigint_plan;   /* the plan to stop, or NULL */
    static atomic_int ffnc_sigint_count;             /* SIGINTs received while guarded */
    static atomic_int ffnc_sigint_running;           /* handlers executing right now */
    static struct sigaction ffnc_sigint_previous;    /* the handler the guard replaced */

    static void ffnc_sigint_handler(int sig, siginfo_t *info, void *context) {
        int saved_errno = errno;
        atomic_fetch_add(&ffnc_sigint_running, 1);
        ffnc_plan *plan = atomic_load(&ffnc_sigint_plan);
        if (plan && atomic_fetch_add(&ffnc_sigint_count, 1) == 0) {
            ffnc_plan_interrupt(plan);
        } else if (ffnc_sigint_previous.sa_flags & SA_SIGINFO) {
            ffnc_sigint_previous.sa_sigaction(sig, info, context);
        } else if (ffnc_sigint_previous.sa_handler == SIG_DFL) {
            sigaction(sig, &ffnc_sigint_previous, NULL);  /* terminate, as by default */
            raise(sig);
        } else if (ffnc_sigint_previous.sa_handler != SIG_IGN) {
            ffnc_sigint_previous.sa_handler(sig);
        }
        atomic_fetch_sub(&ffnc_sigint_running, 1);
        errno = saved_errno;
    }

    /* Installs the handler for `plan`; 1 when installed. */
    static int ffnc_sigint_guard_begin(ffnc_plan *plan) {
        struct sigaction ours;
        memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = ffnc_sigint_handler;
        ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&ours.sa_mask);
        if (sigaction(SIGINT, NULL, &ffnc_sigint_previous) != 0) return 0;
        atomic_store(&ffnc_sigint_count, 0);
        atomic_store(&ffnc_sigint_plan, plan);
        if (sigaction(SIGINT, &ours, NULL) != 0) {
            atomic_store(&ffnc_sigint_plan, NULL);
            return 0;
        }
        return 1;
    }

    /* Puts the replaced handler back; returns the number of SIGINTs received meanwhile. */
    static int ffnc_sigint_guard_end(void) {
        sigaction(SIGINT, &ffnc_sigint_previous, NULL);
        atomic_store(&ffnc_sigint_plan, NULL);
        while (atomic_load(&ffnc_sigint_running)) sched_yield();
        return atomic_load(&ffnc_sigint_count);
    }
    #else  /* no POSIX signals: Python's handler acts after the epoch */
    static int ffnc_sigint_guard_begin(ffnc_plan *plan) { (void)plan; return 0; }
    static int ffnc_sigint_guard_end(void) { return 0; }
    #endif
    """
    int ffnc_sigint_guard_begin(ffnc_plan *plan) nogil
    int ffnc_sigint_guard_end() nogil


cdef bint _sigint_guard_wanted():
    """Only the main thread receives Python's KeyboardInterrupt, and only a program that left
    SIGINT to Python's default handler expects one; or one whose handler asks for steps as
    the unit of Ctrl-C (ffnc.train.fit's: ffnc_step_boundary = True, see _sigint_used)."""
    if _threading.current_thread() is not _threading.main_thread():
        return False
    handler = _signal.getsignal(_signal.SIGINT)
    return (handler is _signal.default_int_handler
            or getattr(handler, "ffnc_step_boundary", False) is True)


cdef int _sigint_used() except -1:
    """The guard used a Ctrl-C to stop an epoch: a step-boundary handler learns it through its
    attribute `requested`, set here before any Python code runs (which would let Python's
    handler see a later Ctrl-C first), so that the next Ctrl-C counts as the second."""
    handler = _signal.getsignal(_signal.SIGINT)
    if getattr(handler, "ffnc_step_boundary", False) is True:
        handler.requested = True
    return 0


class PlanInterrupted(KeyboardInterrupt):
    """run_epoch stopped between two steps, by Ctrl-C (SIGINT) or Plan.interrupt(): the plan is
    exactly as after the `steps` completed steps of the epoch's `total` (parameters, optimizer
    state, step counter) and can run on. `records`: their recorded scalars, shape (steps,
    number of records). A KeyboardInterrupt, so code unaware of ffnc stops as on any Ctrl-C."""

    def __init__(self, steps, total, records):
        super().__init__(f"interrupted after {steps} of the epoch's {total} steps")
        self.steps = steps
        self.total = total
        self.records = records
