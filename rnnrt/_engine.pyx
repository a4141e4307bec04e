# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin typed layer over src_c/: holds a model's C ops and runs them in one nogil call."""

from libc.stdlib cimport calloc, free, malloc
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
        float clip
        rnnrt_act act[2][3]
        const float *Wt
        const float *Rt
        const float *b
        const float *rbh
        const float *P
        const float *Projt

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

    ctypedef struct rnnrt_call:
        int B, nthreads
        const int *T
        void **slots
        float *work
        float **state_h
        float **state_c
        long bad_id_op

    int RNNRT_MAX_IO
    long rnnrt_plan_work_floats(const rnnrt_op *ops, int n_ops, int B, const int *T, int nthreads)
    void rnnrt_plan_run(const rnnrt_op *ops, int n_ops, rnnrt_call *call)
    void rnnrt_blas_single_thread()


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


cdef enum:
    RNNRT_MAX_TIMES = 64    # time symbols (sequence inputs) a model may have; plan.py checks


cdef void fill_times(int *T, Ts) except *:
    if len(Ts) > RNNRT_MAX_TIMES:
        raise ValueError(f"at most {RNNRT_MAX_TIMES} sequence inputs")
    for k, t in enumerate(Ts):
        T[k] = t


cdef class Engine:
    """The C ops of one model. Weight arrays (mmap views) are kept alive here."""
    cdef rnnrt_op *ops
    cdef int n_ops
    cdef list keep

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
            if "rec" in spec:
                r = spec["rec"]
                op.rec.cell, op.rec.D, op.rec.G = r["cell"], r["D"], r["G"]
                op.rec.H, op.rec.In, op.rec.S = r["H"], r["In"], r["S"]
                op.rec.lbr, op.rec.input_forget = r["lbr"], r["input_forget"]
                op.rec.reverse_only, op.rec.time_major = r["reverse_only"], r["time_major"]
                op.rec.y_layout, op.rec.state_layout = r["y_layout"], r["state_layout"]
                op.rec.step_order, op.rec.masked_carry = r["step_order"], r["masked_carry"]
                op.rec.clip = r["clip"]
                for d in range(2):
                    for j in range(3):
                        set_act(&op.rec.act[d][j], tuple(r["acts"][d][j]))
                for key in ("Wt", "Rt", "b", "rbh", "P", "Projt"):
                    if r[key] is not None:
                        self.keep.append(r[key])
                op.rec.Wt = fptr(r["Wt"])
                op.rec.Rt = fptr(r["Rt"])
                op.rec.b = fptr(r["b"])
                op.rec.rbh = fptr(r["rbh"])
                op.rec.P = fptr(r["P"])
                op.rec.Projt = fptr(r["Projt"])

    def __dealloc__(self):
        free(self.ops)

    def work_floats(self, int B, Ts, int nthreads):
        cdef int T[RNNRT_MAX_TIMES]
        fill_times(T, Ts)
        return rnnrt_plan_work_floats(self.ops, self.n_ops, B, T, nthreads)

    def run(self, list buffers, int B, Ts, int nthreads, cnp.ndarray work,
            list states_h=None, list states_c=None):
        """Run every op. `buffers`: one C-contiguous array (or None) per slot, checked by
        the caller; Ts: the time length of each time symbol. Returns the index of an op that
        met an out-of-range token id, or -1."""
        cdef rnnrt_call call
        cdef int T[RNNRT_MAX_TIMES]
        fill_times(T, Ts)
        cdef Py_ssize_t i, n = len(buffers)
        cdef Py_ssize_t ns = len(states_h) if states_h is not None else 0
        call.slots = <void **>malloc(max(n, 1) * sizeof(void *))
        call.state_h = <float **>malloc(max(ns, 1) * sizeof(float *))
        call.state_c = <float **>malloc(max(ns, 1) * sizeof(float *))
        if call.slots == NULL or call.state_h == NULL or call.state_c == NULL:
            free(call.slots)
            free(call.state_h)
            free(call.state_c)
            raise MemoryError()
        for i in range(n):
            b = buffers[i]
            call.slots[i] = NULL if b is None else cnp.PyArray_DATA(<cnp.ndarray>b)
        for i in range(ns):
            call.state_h[i] = <float *>fptr(states_h[i])
            call.state_c[i] = <float *>fptr(states_c[i])
        if states_h is None:
            free(call.state_h)
            free(call.state_c)
            call.state_h = NULL
            call.state_c = NULL
        call.B, call.T, call.nthreads = B, T, nthreads
        call.work = <float *>cnp.PyArray_DATA(work)
        with nogil:
            rnnrt_plan_run(self.ops, self.n_ops, &call)
        free(call.slots)
        free(call.state_h)
        free(call.state_c)
        return call.bad_id_op
