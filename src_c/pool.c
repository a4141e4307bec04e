/* One step of a pool of streams: gather, one batched plan step, scatter.
 *
 * A pool keeps the state of every open stream as one row of a per-layer store
 * ((capacity, S) for h, (capacity, H) for an LSTM's c). Stepping n of them gathers their rows
 * into contiguous (n, S) / (n, H) blocks, runs the whole plan once with B = n and T = 1 (so
 * each layer does one batched GEMM for all n streams), and writes the new states back to the
 * same rows. Which rows are valid, open and distinct is checked by the caller (rnnrt/pool.py). */
#include <string.h>
#include "rnnrt.h"

/* Copy the state rows of every stream-stepped recurrent layer between store and block.
 * to_block: store[rows[i]] -> block[i]; else block[i] -> store[rows[i]]. */
static void move_rows(const rnnrt_op *ops, int n_ops, const rnnrt_call *call,
                      float *const *store_h, float *const *store_c, const int64_t *rows, int n,
                      int to_block)
{
    for (int i = 0; i < n_ops; i++) {
        const rnnrt_op *op = &ops[i];
        int k = op->stream_state;
        if (op->kind != OP_RECURRENT || k < 0) {
            continue;
        }
        int lstm = op->rec.cell == CELL_LSTM;
        size_t S = (size_t)op->rec.S, H = (size_t)op->rec.H;
        for (int j = 0; j < n; j++) {
            float *store_row = store_h[k] + rows[j] * S, *block_row = call->state_h[k] + j * S;
            memcpy(to_block ? block_row : store_row, to_block ? store_row : block_row,
                   sizeof(float) * S);
            if (lstm) {
                store_row = store_c[k] + rows[j] * H;
                block_row = call->state_c[k] + j * H;
                memcpy(to_block ? block_row : store_row, to_block ? store_row : block_row,
                       sizeof(float) * H);
            }
        }
    }
}

void rnnrt_pool_step(const rnnrt_op *ops, int n_ops, rnnrt_call *call, float *const *store_h,
                     float *const *store_c, const int64_t *rows, int n)
{
    call->B = n;
    call->bad_id_op = -1;
    if (n <= 0) {
        return;
    }
    move_rows(ops, n_ops, call, store_h, store_c, rows, n, 1);
    rnnrt_plan_run(ops, n_ops, call);
    /* A step stopped by a bad token id leaves every stream as it was. */
    if (call->bad_id_op < 0) {
        move_rows(ops, n_ops, call, store_h, store_c, rows, n, 0);
    }
}
