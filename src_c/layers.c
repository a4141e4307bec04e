/* Row-wise layers: Dense, Embedding, Masking, TimeStep, FeatureSlice, MergeDirections. */
#include <string.h>
#include "rnnrt.h"

/* A Dense layer's rows are cut into blocks that threads claim (workers.c) only when the
 * product is worth waking a thread for: a head over a batch-1 sequence (100 x 64 x 4) is a
 * few microseconds, which a wake-up would double. */
#define DENSE_SHARE_MIN_FLOPS 2.0e6
#define DENSE_SHARES_PER_THREAD 2

typedef struct {
    const float *x, *kernel, *bias;
    long rows, per;
    int n_in, n_out;
    const rnnrt_act *act;
    float *out;
} dense_call;

static void dense_rows(const dense_call *c, long r0, long n)
{
    float *o = c->out + r0 * c->n_out;
    if (c->bias) {
        for (long i = 0; i < n; i++) {
            memcpy(o + i * c->n_out, c->bias, sizeof(float) * c->n_out);
        }
    }
    rnnrt_gemm((int)n, c->n_out, c->n_in, c->x + r0 * c->n_in, c->n_in, c->kernel, c->n_out,
               c->bias ? 1.0f : 0.0f, o, c->n_out);
    if (c->act->kind == ACT_SOFTMAX || c->act->kind == ACT_LOG_SOFTMAX) {
        rnnrt_act_rows(c->act, o, n, c->n_out);
    } else {
        rnnrt_act_apply(c->act, o, n * c->n_out);
    }
}

static void dense_share(void *ctx, int phase, int k, int slot)
{
    const dense_call *c = ctx;
    long r0 = k * c->per, n = c->rows - r0 < c->per ? c->rows - r0 : c->per;
    if (n > 0) {
        dense_rows(c, r0, n);
    }
    (void)phase, (void)slot;
}

void rnnrt_dense(const float *x, long rows, int n_in, const float *kernel, const float *bias,
                 int n_out, const rnnrt_act *act, float *out, int nthreads)
{
    if (rows == 0) {
        return;
    }
    dense_call c = {x, kernel, bias, rows, rows, n_in, n_out, act, out};
    double paid = 2.0 * rows * n_in * n_out / DENSE_SHARE_MIN_FLOPS;
    long want = (long)(nthreads < 1 ? 1 : nthreads) * DENSE_SHARES_PER_THREAD;
    want = want < rows ? want : rows;
    want = want < paid ? want : (long)paid;
    want = want < RNNRT_MAX_SHARES ? want : RNNRT_MAX_SHARES;
    if (nthreads <= 1 || want < 2) {
        dense_rows(&c, 0, rows);
        return;
    }
    c.per = (rows + want - 1) / want;
    rnnrt_run_shares(nthreads, 1, (int)((rows + c.per - 1) / c.per), dense_share, &c);
}

long rnnrt_embedding(const int64_t *ids, long n, const float *table, long vocab, int dim,
                     float *out, uint8_t *mask)
{
    for (long i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vocab) {
            return i;
        }
    }
    for (long i = 0; i < n; i++) {
        memcpy(out + i * dim, table + ids[i] * dim, sizeof(float) * dim);
        if (mask) {
            mask[i] = ids[i] != 0;
        }
    }
    return -1;
}

void rnnrt_masking(const float *x, long rows, int n, float mask_value, float *out,
                   uint8_t *mask)
{
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        int keep = 0;
        for (int j = 0; j < n; j++) {
            keep |= xr[j] != mask_value;
        }
        mask[r] = (uint8_t)keep;
        for (int j = 0; j < n; j++) {
            out[r * n + j] = keep ? xr[j] : 0.0f;
        }
    }
}

void rnnrt_timestep(const float *x, int B, int T, int n, int index, int time_major,
                    float *out)
{
    int t = index < 0 ? T + index : index;
    for (int b = 0; b < B; b++) {
        long src = time_major ? ((long)t * B + b) * n : ((long)b * T + t) * n;
        memcpy(out + (long)b * n, x + src, sizeof(float) * n);
    }
}

void rnnrt_feature_slice(const float *x, long rows, int n, int start, int stop, float *out)
{
    int w = stop - start;
    for (long r = 0; r < rows; r++) {
        memcpy(out + r * w, x + r * n + start, sizeof(float) * w);
    }
}

void rnnrt_axis_copy(const float *x, long outer, long x_len, long inner, long start, long n,
                     float *out, long out_len, long out_at)
{
    for (long o = 0; o < outer; o++) {
        memcpy(out + (o * out_len + out_at) * inner, x + (o * x_len + start) * inner,
               sizeof(float) * n * inner);
    }
}

void rnnrt_merge(const float *x, long rows, int n, int parts, int mode, float *out)
{
    int w = n / parts;
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *o = out + r * w;
        memcpy(o, xr, sizeof(float) * w);
        for (int p = 1; p < parts; p++) {
            for (int j = 0; j < w; j++) {
                o[j] = mode == MERGE_MUL ? o[j] * xr[p * w + j] : o[j] + xr[p * w + j];
            }
        }
        if (mode == MERGE_AVE) {
            for (int j = 0; j < w; j++) {
                o[j] /= (float)parts;
            }
        }
    }
}
