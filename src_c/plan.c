/* The execution plan: every op of a model in order, in one call from Python. */
#include <string.h>
#include "rnnrt.h"

static int op_time(const rnnrt_op *op, const int *T)
{
    return op->tsym >= 0 ? T[op->tsym] : 1;
}

long rnnrt_plan_work_floats(const rnnrt_op *ops, int n_ops, int B, const int *T, int nthreads)
{
    long most = 0;
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].kind == OP_RECURRENT) {
            long need = rnnrt_recurrent_work(&ops[i].rec, B, op_time(&ops[i], T), nthreads);
            most = need > most ? need : most;
        }
    }
    return most;
}

static long axis_count(int b, int t, long mult, int B, const int *T)
{
    return (b ? B : 1) * (t >= 0 ? T[t] : 1) * mult;
}

#define SLOT(i) (op->in[i] < 0 ? NULL : call->slots[op->in[i]])
#define OUT(i) (op->out[i] < 0 ? NULL : call->slots[op->out[i]])

void rnnrt_plan_run(const rnnrt_op *ops, int n_ops, rnnrt_call *call)
{
    int B = call->B;
    call->bad_id_op = -1;
    const int parity = (int)(call->runs++ & 1);   /* a stream's steps alternate like a
                                                  * sequence's (recurrent_gemm) */
    for (int i = 0; i < n_ops; i++) {
        const rnnrt_op *op = &ops[i];
        int T = op_time(op, call->T);
        long rows = (long)B * T * op->rows_mult;
        switch (op->kind) {
        case OP_RECURRENT: {
            /* in: x, lens, mask, h0, c0; out: y, hn, cn, hlast, clast */
            rnnrt_recurrent_io io = {
                B, T, SLOT(0), SLOT(1), SLOT(2), SLOT(3), SLOT(4),
                OUT(0), OUT(1), OUT(2), OUT(3), OUT(4), call->work, call->nthreads, parity};
            float *hn = io.hn, *cn = io.cn;
            io.h0 = io.h0 ? io.h0 : op->rec.h0v;
            io.c0 = io.c0 ? io.c0 : op->rec.c0v;
            if (op->stream_state >= 0 && call->state_h) {
                /* A stream's state is read and written in place; the graph's own h_n / c_n
                 * outputs get a copy (one direction, so "dbh" and "bdh" are the same). A
                 * stream runs every row: no constant lengths. */
                io.h0 = io.hn = call->state_h[op->stream_state];
                io.c0 = io.cn = call->state_c[op->stream_state];
            } else if (!io.lens) {
                io.lens = op->rec.lensv;
            }
            rnnrt_recurrent_run(&op->rec, &io);
            if (hn && hn != io.hn) {
                memcpy(hn, io.hn, sizeof(float) * B * op->rec.S);
            }
            if (cn && cn != io.cn) {
                memcpy(cn, io.cn, sizeof(float) * B * op->rec.H);
            }
            break;
        }
        case OP_EMBEDDING:
            if (rnnrt_embedding(SLOT(0), rows, op->table, op->vocab, op->n_out, OUT(0),
                                OUT(1)) >= 0) {
                call->bad_id_op = i;
                return;
            }
            break;
        case OP_MASKING:
            rnnrt_masking(SLOT(0), rows, op->n_in, op->mask_value, OUT(0), OUT(1));
            break;
        case OP_DENSE:
            rnnrt_dense(SLOT(0), rows, op->n_in, op->kernel, op->bias, op->n_out, &op->act,
                        OUT(0), call->nthreads);
            break;
        case OP_ACTIVATION: {
            const float *x = SLOT(0);
            float *y = OUT(0);
            for (long j = 0; j < rows * op->n_in; j++) {
                y[j] = x[j];
            }
            if (op->act.kind == ACT_SOFTMAX || op->act.kind == ACT_LOG_SOFTMAX) {
                rnnrt_act_rows(&op->act, y, rows, op->n_in);
            } else {
                rnnrt_act_apply(&op->act, y, rows * op->n_in);
            }
            break;
        }
        case OP_TIMESTEP:
            rnnrt_timestep(SLOT(0), B, T, op->n_in, op->index, op->time_major, OUT(0));
            break;
        case OP_FEATURE_SLICE:
            rnnrt_feature_slice(SLOT(0), rows, op->n_in, op->start, op->stop, OUT(0));
            break;
        case OP_MERGE:
            rnnrt_merge(SLOT(0), rows, op->n_in, op->parts, op->mode, OUT(0));
            break;
        case OP_SLICE:
        case OP_CONCAT: {
            long outer = axis_count(op->outer_b, op->outer_t, op->outer_mult, B, call->T);
            long inner = axis_count(op->inner_b, op->inner_t, op->inner_mult, B, call->T);
            if (op->kind == OP_SLICE) {
                long n = op->stop - op->start;
                rnnrt_axis_copy(SLOT(0), outer, op->axis_len[0], inner, op->start, n, OUT(0),
                                n, 0);
                break;
            }
            long total = 0, at = 0;
            for (int j = 0; j < RNNRT_MAX_IO && op->in[j] >= 0; j++) {
                total += op->axis_len[j];
            }
            for (int j = 0; j < RNNRT_MAX_IO && op->in[j] >= 0; j++) {
                rnnrt_axis_copy(SLOT(j), outer, op->axis_len[j], inner, 0, op->axis_len[j],
                                OUT(0), total, at);
                at += op->axis_len[j];
            }
            break;
        }
        default:
            break;
        }
    }
}
