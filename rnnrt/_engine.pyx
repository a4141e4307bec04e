# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin typed layer over src_c/: holds a model's C ops and runs them in one nogil call."""

from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from libc.stdint cimport int32_t, int64_t, uint8_t

cimport numpy as cnp
import numpy as np

cnp.import_array()


cdef extern from "rnnrt.h" nogil:
    ctypedef struct rnnrt_act:
        int kind
        float alpha, beta

    ctypedef struct rnnrt_recurrent:
        int cell, D, G, H, In, S
        int lbr, input_forget, reverse_only
        int time_major, y_layout, state_layout, step_order, masked_carry
        int empty_zero
        float clip
        rnnrt_act act[2][3]
        const float *Wp
        const float *Rp
        const float *b
        const float *rbh
        const float *P
        const float *Projt
        const float *h0v
        const float *c0v
        const int32_t *lensv

    ctypedef struct rnnrt_op:
        int kind
        int in_ "in"[5]     # RNNRT_MAX_IO
        int out[5]
        int tsym
        long rows_mult
        int n_in, n_out
        rnnrt_recurrent rec
        rnnrt_act act
        const float *kernel
        const float *bias
        const float *table
        long vocab
        float mask_value
        int index, time_major, start, stop, parts, mode
        int stream_state
        int outer_b, outer_t, inner_b, inner_t
        long outer_mult, inner_mult
        int axis_len[5]     # RNNRT_MAX_IO
        const float *w[4]   # RNNRT_MAX_W
        long iv[12]         # RNNRT_MAX_IV
        float fv[4]         # RNNRT_MAX_FV

    ctypedef struct rnnrt_call:
        int B, nthreads
        const int *T
        void **slots
        float *work
        float **state_h
        float **state_c
        long bad_id_op
        unsigned long runs

    int RNNRT_MAX_IO, RNNRT_MAX_W, RNNRT_MAX_IV, RNNRT_MAX_FV
    int rnnrt_recurrent_threads(const rnnrt_recurrent *r, int B, int T, int nthreads, int *how)
    long rnnrt_plan_work_floats(const rnnrt_op *ops, int n_ops, int B, const int *T, int nthreads)
    void rnnrt_plan_run(const rnnrt_op *ops, int n_ops, rnnrt_call *call)
    void rnnrt_blas_single_thread()


# Pool steps and generation (src_c/pool.c, src_c/generate.c).
from libc.stdint cimport uint64_t

cdef extern from "rnnrt.h" nogil:
    const char *rnnrt_packed_isa()
    long rnnrt_l2_bytes()
    void rnnrt_pool_step(const rnnrt_op *ops, int n_ops, rnnrt_call *call, float **store_h,
                         float **store_c, const int64_t *rows, int n)

    ctypedef struct rnnrt_rng:
        uint64_t s[4]
    void rnnrt_rng_seed(rnnrt_rng *g, uint64_t seed)
    uint64_t rnnrt_rng_next(rnnrt_rng *g)

    ctypedef struct rnnrt_generate_args:
        int mode, in_slot, out_slot, width, probs
        double temperature
        int top_k
        int64_t stop
        uint64_t seed
        const void *prompt
        long n_prompt, steps
        void *result
        double *scratch
        long failed_step
    long rnnrt_generate(const rnnrt_op *ops, int n_ops, rnnrt_call *call,
                        rnnrt_generate_args *g)


cdef void **slot_array(list buffers) except NULL:
    """malloc'd data pointers of `buffers` (None: NULL); the caller frees it."""
    cdef Py_ssize_t i, n = len(buffers)
    cdef void **p = <void **>malloc(max(n, 1) * sizeof(void *))
    if p == NULL:
        raise MemoryError()
    for i in range(n):
        b = buffers[i]
        p[i] = NULL if b is None else cnp.PyArray_DATA(<cnp.ndarray>b)
    return p


cdef float **float_ptr_array(list arrays) except NULL:
    return <float **>slot_array(arrays)


cdef int bind_call(rnnrt_call *call, list buffers, list states_h, list states_c, int B,
                   int *T, int nthreads, cnp.ndarray work) except -1:
    """Fill `call` (its pointer arrays malloc'd: release_call frees them, even after an
    error here). states_h None: no stream states."""
    call.slots = NULL
    call.state_h = NULL
    call.state_c = NULL
    call.slots = slot_array(buffers)
    if states_h is not None:
        call.state_h = float_ptr_array(states_h)
        call.state_c = float_ptr_array(states_c)
    call.B, call.T, call.nthreads = B, T, nthreads
    call.work = <float *>cnp.PyArray_DATA(work)
    call.runs = 0
    return 0


cdef void release_call(rnnrt_call *call):
    free(call.slots)
    free(call.state_h)
    free(call.state_c)
    call.slots = NULL
    call.state_h = NULL
    call.state_c = NULL


def kernel_isa():
    """The instruction set of the gate-product kernel in use: avx512, avx2 or portable."""
    return rnnrt_packed_isa().decode()


def l2_bytes():
    """The L2 cache size the engine plans with (this CPU's, or 1 MiB when unknown)."""
    return rnnrt_l2_bytes()


# Threads (src_c/workers.c, src_c/cpu_load.c): what they did, and the hooks tests use.
cdef extern from "rnnrt.h" nogil:
    ctypedef struct rnnrt_workers_info:
        int workers, awake
        unsigned long long jobs, jobs_alone, shares_by_workers
    void rnnrt_workers_stats(rnnrt_workers_info *info)
    void rnnrt_workers_hold(int hold)
    int rnnrt_free_cores()
    void rnnrt_free_cores_fix(int n)
    void rnnrt_run_shares(int threads, int n_phases, int n_shares,
                          void (*fn)(void *ctx, int phase, int share, int slot) noexcept nogil,
                          void *ctx)
    int RNNRT_MAX_SHARES
    int RNNRT_MAX_THREADS


MAX_THREADS = RNNRT_MAX_THREADS     # threads one call may use, the caller included


def workers_info():
    """{workers started, awake now, jobs shared, jobs run alone, shares workers ran}."""
    cdef rnnrt_workers_info i
    rnnrt_workers_stats(&i)
    return {"workers": i.workers, "awake": i.awake, "jobs": i.jobs, "jobs_alone": i.jobs_alone,
            "shares_by_workers": i.shares_by_workers}


def free_cores():
    """The cores other processes leave this one now, as a call about to share its work sees
    them (at least 1)."""
    return rnnrt_free_cores()


def fix_free_cores(int n):
    """Tests: n > 0 makes every call see n free cores; 0 measures again."""
    rnnrt_free_cores_fix(n)


def hold_workers(bint hold):
    """Tests: while held, workers claim nothing (a worker that never arrives)."""
    rnnrt_workers_hold(hold)


cdef struct share_check_ctx:
    int n_shares
    long spin
    long long *value
    int *slot
    int *runs


cdef void share_check_fn(void *ctx, int phase, int share, int slot) noexcept nogil:
    cdef share_check_ctx *c = <share_check_ctx *>ctx
    cdef int n = c.n_shares, j
    cdef long long acc = phase * 1000003 + share
    cdef volatile long spin
    if phase > 0:
        for j in range(n):
            acc += c.value[(phase - 1) * n + j] * (j + 1)
    for spin in range(c.spin):
        pass
    c.value[phase * n + share] = acc % 1000000007
    c.slot[phase * n + share] = slot
    c.runs[phase * n + share] += 1


def share_check(int threads, int n_phases, int n_shares, long spin):
    """Tests: a job whose share (p, k) reads every share of phase p - 1, run through
    rnnrt_run_shares. Returns (values, the slot that ran each, how often each ran), each
    (n_phases, n_shares)."""
    if not (1 <= n_shares <= RNNRT_MAX_SHARES and n_phases >= 1):
        raise ValueError("n_phases >= 1 and 1 <= n_shares <= RNNRT_MAX_SHARES")
    value = np.zeros((n_phases, n_shares), np.int64)
    slot = np.full((n_phases, n_shares), -1, np.int32)
    runs = np.zeros((n_phases, n_shares), np.int32)
    cdef share_check_ctx c
    c.n_shares, c.spin = n_shares, spin
    c.value = <long long *>cnp.PyArray_DATA(value)
    c.slot = <int *>cnp.PyArray_DATA(slot)
    c.runs = <int *>cnp.PyArray_DATA(runs)
    with nogil:
        rnnrt_run_shares(threads, n_phases, n_shares, share_check_fn, &c)
    return value, slot, runs


def rng_draws(uint64_t seed, Py_ssize_t n):
    """The first n numbers of the generator Model.generate samples with, for `seed`."""
    cdef rnnrt_rng g
    rnnrt_rng_seed(&g, seed)
    out = np.empty(n, np.uint64)
    cdef uint64_t[::1] v = out
    cdef Py_ssize_t i
    for i in range(n):
        v[i] = rnnrt_rng_next(&g)
    return out


# Our threads do the parallel work; OpenBLAS must not spawn its own inside them.
rnnrt_blas_single_thread()


cdef const float *fptr(object arr):
    if arr is None:
        return NULL
    return <const float *>cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef void set_act(rnnrt_act *a, tuple code):
    a.kind = code[0]
    a.alpha = code[1]
    a.beta = code[2]


cdef int set_generic(rnnrt_op *op, dict spec, list keep) except -1:
    """The generic slots of an op (rnnrt.h): spec["w"] float32 arrays (None: absent),
    spec["iv"] ints, spec["fv"] floats, in the order the kind's C file reads them."""
    w, iv, fv = spec.get("w", ()), spec.get("iv", ()), spec.get("fv", ())
    if len(w) > RNNRT_MAX_W or len(iv) > RNNRT_MAX_IV or len(fv) > RNNRT_MAX_FV:
        raise ValueError(f"an op takes at most {RNNRT_MAX_W} weights, {RNNRT_MAX_IV} ints "
                         f"and {RNNRT_MAX_FV} floats")
    for j, arr in enumerate(w):
        if arr is not None:
            if not is_native_float32(<cnp.ndarray>arr):
                raise ValueError(f"op weight {j} is not a float32 C-contiguous array")
            keep.append(arr)
        op.w[j] = fptr(arr)
    for j, v in enumerate(iv):
        op.iv[j] = v
    for j, v in enumerate(fv):
        op.fv[j] = v
    return 0


cdef enum:
    RNNRT_MAX_TIMES = 64    # time symbols (sequence inputs) a model may have; plan.py checks


cdef void fill_times(int *T, Ts) except *:
    if len(Ts) > RNNRT_MAX_TIMES:
        raise ValueError(f"at most {RNNRT_MAX_TIMES} sequence inputs")
    for k, t in enumerate(Ts):
        T[k] = t


cdef class GuardedMap    # the "Guarded file mappings" section, at the end


cdef class Engine:
    """The C ops of one model. Weight arrays (mmap views) are kept alive here."""
    cdef rnnrt_op *ops
    cdef int n_ops
    cdef list keep
    # The guarded mapping the weights live in (None: a private copy); each C call ends by
    # checking it (check_intact).
    cdef public GuardedMap mapping

    def __cinit__(self, list specs):
        self.n_ops = len(specs)
        self.ops = <rnnrt_op *>calloc(max(self.n_ops, 1), sizeof(rnnrt_op))
        if self.ops == NULL:
            raise MemoryError()
        self.keep = []
        cdef rnnrt_op *op
        cdef int i, j, d
        for i, spec in enumerate(specs):
            op = &self.ops[i]
            op.kind = spec["kind"]
            for j in range(RNNRT_MAX_IO):
                op.in_[j] = spec["in"][j] if j < len(spec["in"]) else -1
                op.out[j] = spec["out"][j] if j < len(spec["out"]) else -1
            op.tsym = spec["tsym"]
            op.rows_mult = spec["rows_mult"]
            op.n_in = spec["n_in"]
            op.n_out = spec["n_out"]
            op.stream_state = spec.get("stream_state", -1)
            if "act" in spec:
                set_act(&op.act, spec["act"])
            for key in ("kernel", "bias", "table"):
                if spec.get(key) is not None:
                    self.keep.append(spec[key])
            op.kernel = fptr(spec.get("kernel"))
            op.bias = fptr(spec.get("bias"))
            op.table = fptr(spec.get("table"))
            op.vocab = spec.get("vocab", 0)
            op.mask_value = spec.get("mask_value", 0.0)
            op.index = spec.get("index", 0)
            op.time_major = spec.get("time_major", 0)
            op.start = spec.get("start", 0)
            op.stop = spec.get("stop", 0)
            op.parts = spec.get("parts", 1)
            op.mode = spec.get("mode", 0)
            if "outer" in spec:
                op.outer_b, op.outer_t = spec["outer"]["b"], spec["outer"]["t"]
                op.outer_mult = spec["outer"]["mult"]
                op.inner_b, op.inner_t = spec["inner"]["b"], spec["inner"]["t"]
                op.inner_mult = spec["inner"]["mult"]
                for j in range(RNNRT_MAX_IO):
                    op.axis_len[j] = spec["axis_len"][j] if j < len(spec["axis_len"]) else 0
            set_generic(op, spec, self.keep)
            if "rec" in spec:
                r = spec["rec"]
                op.rec.cell, op.rec.D, op.rec.G = r["cell"], r["D"], r["G"]
                op.rec.H, op.rec.In, op.rec.S = r["H"], r["In"], r["S"]
                op.rec.lbr, op.rec.input_forget = r["lbr"], r["input_forget"]
                op.rec.reverse_only, op.rec.time_major = r["reverse_only"], r["time_major"]
                op.rec.y_layout, op.rec.state_layout = r["y_layout"], r["state_layout"]
                op.rec.step_order, op.rec.masked_carry = r["step_order"], r["masked_carry"]
                op.rec.empty_zero = r["empty_zero"]
                op.rec.clip = r["clip"]
                for d in range(2):
                    for j in range(3):
                        set_act(&op.rec.act[d][j], tuple(r["acts"][d][j]))
                for key in ("Wp", "Rp", "b", "rbh", "P", "Projt", "h0v", "c0v", "lensv"):
                    if r.get(key) is not None:
                        self.keep.append(r[key])
                op.rec.Wp = fptr(r["Wp"])
                op.rec.Rp = fptr(r["Rp"])
                op.rec.b = fptr(r["b"])
                op.rec.rbh = fptr(r["rbh"])
                op.rec.P = fptr(r["P"])
                op.rec.Projt = fptr(r["Projt"])
                op.rec.h0v = fptr(r.get("h0v"))
                op.rec.c0v = fptr(r.get("c0v"))
                op.rec.lensv = <const int32_t *>cnp.PyArray_DATA(r["lensv"]) \
                    if r.get("lensv") is not None else NULL

    def __dealloc__(self):
        free(self.ops)

    def work_floats(self, int B, Ts, int nthreads):
        cdef int T[RNNRT_MAX_TIMES]
        fill_times(T, Ts)
        return rnnrt_plan_work_floats(self.ops, self.n_ops, B, T, nthreads)

    def thread_schedule(self, int B, int T, int nthreads):
        """[(op index, "rows" | "directions" | "units" | "ranges", threads)] for each
        recurrent op, for a batch of B sequences of T steps (T = 1: a streaming step).
        "ranges": units split, with the recurrent product by contiguous panel ranges."""
        cdef int how
        out = []
        for i in range(self.n_ops):
            if self.ops[i].kind == 0:   # OP_RECURRENT (plan.OP_CODES)
                n = rnnrt_recurrent_threads(&self.ops[i].rec, B, T, nthreads, &how)
                out.append((i, ("rows", "directions", "units", "ranges")[how], n))
        return out

    def run(self, list buffers, int B, Ts, int nthreads, cnp.ndarray work,
            list states_h=None, list states_c=None):
        """Run every op. `buffers`: one C-contiguous array (or None) per slot, checked by
        the caller; Ts: the time length of each time symbol. Returns the index of an op that
        met an out-of-range token id, or -1."""
        cdef rnnrt_call call
        cdef int T[RNNRT_MAX_TIMES]
        fill_times(T, Ts)
        try:
            bind_call(&call, buffers, states_h, states_c, B, T, nthreads, work)
            with nogil:
                rnnrt_plan_run(self.ops, self.n_ops, &call)
        finally:
            release_call(&call)
        check_intact(self.mapping)
        return call.bad_id_op

    def pool_step(self, list buffers, int n, Ts, int nthreads, cnp.ndarray work,
                  list store_h, list store_c, list block_h, list block_c, cnp.ndarray rows):
        """One step of n pool streams (src_c/pool.c): `rows` (int64, n distinct valid rows)
        picks their rows of the per-layer stores; block_h / block_c hold >= n rows each.
        Buffers and work are sized for B = n by the caller. Returns the index of an op that
        met an out-of-range token id (the states are then unchanged), or -1."""
        if rows.dtype != np.int64 or not rows.flags.c_contiguous or rows.shape[0] != n:
            raise ValueError("rows must be a contiguous int64 array of n entries")
        cdef rnnrt_call call
        cdef int T[RNNRT_MAX_TIMES]
        fill_times(T, Ts)
        cdef float **sh = NULL
        cdef float **sc = NULL
        try:
            bind_call(&call, buffers, block_h, block_c, n, T, nthreads, work)
            sh = float_ptr_array(store_h)
            sc = float_ptr_array(store_c)
            with nogil:
                rnnrt_pool_step(self.ops, self.n_ops, &call, sh, sc,
                                <const int64_t *>cnp.PyArray_DATA(rows), n)
        finally:
            release_call(&call)
            free(sh)
            free(sc)
        check_intact(self.mapping)
        return call.bad_id_op

    def generate(self, list buffers, Ts, cnp.ndarray work, list states_h, list states_c,
                 int mode, int in_slot, int out_slot, int width, int probs,
                 double temperature, int top_k, int64_t stop, uint64_t seed,
                 cnp.ndarray prompt, long n_prompt, long steps, cnp.ndarray result,
                 cnp.ndarray scratch):
        """The feed-back loop of src_c/generate.c for one sequence (B = 1, T = 1), every
        argument checked by the caller. Returns (steps generated or a negative
        RNNRT_GEN_* code, the step whose scores were unusable or -1)."""
        cdef rnnrt_call call
        cdef rnnrt_generate_args g
        cdef int T[RNNRT_MAX_TIMES]
        cdef long made
        fill_times(T, Ts)
        try:
            bind_call(&call, buffers, states_h, states_c, 1, T, 1, work)
            g.mode, g.in_slot, g.out_slot, g.width, g.probs = mode, in_slot, out_slot, width, probs
            g.temperature, g.top_k, g.stop, g.seed = temperature, top_k, stop, seed
            g.prompt = cnp.PyArray_DATA(prompt)
            g.n_prompt, g.steps = n_prompt, steps
            g.result = cnp.PyArray_DATA(result)
            g.scratch = <double *>cnp.PyArray_DATA(scratch)
            with nogil:
                made = rnnrt_generate(self.ops, self.n_ops, &call, &g)
        finally:
            release_call(&call)
        check_intact(self.mapping)
        return made, g.failed_step


cdef inline bint is_native_float32(cnp.ndarray a):
    """float32 in this machine's byte order (a '>f4' array has the same type number) and
    C-contiguous: what the C step reads and writes as plain floats."""
    return (cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 and cnp.PyArray_ISNOTSWAPPED(a) and
            cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef inline bint is_writeable(cnp.ndarray a):
    """Whether a step may write into a: a read-only array (a view of bytes, a read-only
    mmap) is not, whatever its type."""
    return cnp.PyArray_FLAGS(a) & cnp.NPY_ARRAY_WRITEABLE


cdef class Busy:
    """The busy mark of a Stream: taken by one caller at a time and never waited for (a
    second caller is told, not blocked). It is tested and set with the GIL held and no Python
    code between the two, so no other thread can pass between them; Stepper takes it with no
    Python call at all."""
    cdef bint held

    def acquire(self):
        """Take the mark: True, or False when it is already taken."""
        if self.held:
            return False
        self.held = True
        return True

    def release(self):
        self.held = False


cdef enum:
    SHAPE_MAX = 8     # axes of an accepted x or output shape


cdef class Stepper:
    """A stream's one-step call with everything bound once: its buffers, states and
    workspace. `step` is Stream.step for a model with one float input and a float32 first
    output: its fast path checks the arrays' type, shape and contiguity (and that `out` is
    writeable) in C, takes the stream's Busy mark, copies the row in, runs the plan (GIL
    released) and copies the first output out, with no allocation beyond the output array
    (none with `out=`)."""
    cdef Engine engine
    cdef rnnrt_call call
    cdef int T[RNNRT_MAX_TIMES]
    cdef list keep
    cdef float *x
    cdef const float *y
    cdef Py_ssize_t nx, ny
    cdef Busy busy
    cdef object busy_error           # () -> the exception for a busy stream
    cdef public object general       # (x, out) -> the stream's general step path
    # The accepted x shapes, (batch, features) and for batch 1 (features,), and their
    # output shapes: shapes[k] is x shape k, shapes[2 + k] its output's; ndim -1: none.
    cdef int ndim[4]
    cdef cnp.npy_intp shapes[4][SHAPE_MAX]

    def __cinit__(self, Engine engine, list buffers, int B, Ts, int nthreads,
                  cnp.ndarray work, list states_h, list states_c, int in_slot, int out_slot,
                  Busy busy, busy_error):
        for slot in (in_slot, out_slot):    # the copies below move floats
            if not is_native_float32(<cnp.ndarray>buffers[slot]):
                raise ValueError(f"Stepper: slot {slot} is not a float32 buffer")
        self.engine = engine
        self.keep = [buffers, work, states_h, states_c]
        fill_times(self.T, Ts)
        bind_call(&self.call, buffers, states_h, states_c, B, self.T, nthreads, work)
        self.x = <float *>self.call.slots[in_slot]
        self.y = <const float *>self.call.slots[out_slot]
        self.nx = (<cnp.ndarray>buffers[in_slot]).size
        self.ny = (<cnp.ndarray>buffers[out_slot]).size
        self.busy, self.busy_error = busy, busy_error
        for k in range(4):
            self.ndim[k] = -1

    def accept(self, tuple row, tuple row_out, tuple vec=None, tuple vec_out=None):
        """The x shapes the fast path takes: (batch, features), and (features,) for batch 1,
        with their output shapes."""
        for k, shape in enumerate((row, vec, row_out, vec_out)):
            if shape is None:
                continue
            if len(shape) > SHAPE_MAX:
                raise ValueError(f"at most {SHAPE_MAX} axes, got {shape}")
            self.ndim[k] = len(shape)
            for i, n in enumerate(shape):
                self.shapes[k][i] = n
        for k in range(2):      # sizes the fast path no longer has to check
            if self.ndim[k] >= 0 and (self.size_of(k) != self.nx or
                                      self.size_of(2 + k) != self.ny):
                raise ValueError("accepted shapes do not match the step's buffers")

    cdef Py_ssize_t size_of(self, int k):
        cdef Py_ssize_t n = 1
        for i in range(self.ndim[k]):
            n *= self.shapes[k][i]
        return n

    cdef bint has_shape(self, cnp.ndarray a, int k):
        if cnp.PyArray_NDIM(a) != self.ndim[k]:
            return False
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
        for i in range(self.ndim[k]):
            if dims[i] != self.shapes[k][i]:
                return False
        return True

    def step(self, x, out=None):
        """Stream.step: the C path when x is a native float32 C-contiguous array of an
        accepted shape and out is None or such a writeable array of the output's shape; else
        the stream's general path (`general`), which checks and explains."""
        result = self.fast_step(x, out)
        return self.general(x, out) if result is None else result

    cdef object fast_step(self, x, out):
        """The C step, or None when the arrays are not ones it takes."""
        if type(x) is not np.ndarray:
            return None
        cdef cnp.ndarray xa = <cnp.ndarray>x
        if not is_native_float32(xa):
            return None
        cdef int k
        if self.has_shape(xa, 0):
            k = 0
        elif self.has_shape(xa, 1):
            k = 1
        else:
            return None
        cdef cnp.ndarray oa
        if out is None:
            oa = cnp.PyArray_EMPTY(self.ndim[2 + k], self.shapes[2 + k], cnp.NPY_FLOAT32, 0)
        elif type(out) is np.ndarray and self.has_shape(<cnp.ndarray>out, 2 + k) and \
                is_native_float32(<cnp.ndarray>out) and is_writeable(<cnp.ndarray>out):
            oa = <cnp.ndarray>out
        else:
            return None
        if self.busy.held:
            raise self.busy_error()
        self.busy.held = True
        cdef const float *xs = <const float *>cnp.PyArray_DATA(xa)
        cdef float *os = <float *>cnp.PyArray_DATA(oa)
        try:
            with nogil:
                memcpy(self.x, xs, self.nx * sizeof(float))
                rnnrt_plan_run(self.engine.ops, self.engine.n_ops, &self.call)
                memcpy(os, self.y, self.ny * sizeof(float))
        finally:
            self.busy.held = False
        check_intact(self.engine.mapping)
        return oa

    def __dealloc__(self):
        release_call(&self.call)


# ============================================================== guarded file mappings
# A model file above the private-copy threshold (rnnrt/fileformat.py) stays mmap'd, under
# the SIGBUS guard of src_c/mapguard.c: a fault reading it (the file was truncated under
# the model) maps zeros over it and marks it damaged; check_intact, after each C call, and
# fileformat, after its passes over the bytes, turn the mark into FormatError.

from cpython.buffer cimport PyBuffer_FillInfo
from libc.errno cimport errno

from .errors import FormatError

cdef extern from "mapguard.h" nogil:
    int rnnrt_guard_map(int fd, size_t size, const void **addr)
    int rnnrt_guard_damaged(int slot)
    void rnnrt_guard_unmap(int slot)


cdef class GuardedMap:
    """A read-only shared mapping of a file, under the guard: a buffer (memoryview,
    np.frombuffer) for as long as this object lives; unmapped when it goes."""
    cdef const void *addr
    cdef Py_ssize_t size
    cdef int slot
    cdef readonly str damage_message    # the FormatError once a fault has hit the mapping

    def __cinit__(self):
        self.slot = -1      # nothing mapped: map_guarded makes the mappings

    def check(self):
        """FormatError (damage_message) if a fault has hit the mapping."""
        check_intact(self)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, <void *>self.addr, self.size, 1, flags)   # read-only

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __dealloc__(self):
        if self.slot >= 0:
            rnnrt_guard_unmap(self.slot)


def map_guarded(int fd, Py_ssize_t size, str damage_message):
    """The first `size` (> 0) bytes of file `fd` as a GuardedMap; None when the guard cannot
    take another mapping (src_c/mapguard.h says when). OSError if mmap fails."""
    if size <= 0:
        raise ValueError(f"a guarded mapping needs a size > 0, got {size}")
    cdef GuardedMap m = GuardedMap()
    cdef const void *addr = NULL
    cdef int slot = rnnrt_guard_map(fd, size, &addr)
    if slot == -2:
        return None
    if slot < 0:
        raise OSError(errno, f"mmap of {size} bytes failed")
    m.addr, m.size, m.slot, m.damage_message = addr, size, slot, damage_message
    return m


cdef int check_intact(GuardedMap m) except -1:
    """FormatError if a fault has hit m (None: a private copy, which cannot change)."""
    if m is not None and m.slot >= 0 and rnnrt_guard_damaged(m.slot):
        raise FormatError(m.damage_message)
    return 0
