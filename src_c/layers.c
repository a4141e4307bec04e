/* Row-wise layers: Dense, Embedding, Masking, TimeStep, FeatureSlice, MergeDirections. */
#include <string.h>
#include "rnnrt.h"

void rnnrt_dense(const float *x, long rows, int n_in, const float *kernel, const float *bias,
                 int n_out, const rnnrt_act *act, float *out, int nthreads)
{
    int nt = nthreads < 1 ? 1 : nthreads;
    nt = rows < nt ? (int)rows : nt;
    if (rows == 0) {
        return;
    }
    long per = (rows + nt - 1) / nt;

    #pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int k = 0; k < nt; k++) {
        long r0 = k * per, n = rows - r0 < per ? rows - r0 : per;
        if (n <= 0) {
            continue;
        }
        float *o = out + r0 * n_out;
        if (bias) {
            for (long i = 0; i < n; i++) {
                memcpy(o + i * n_out, bias, sizeof(float) * n_out);
            }
        }
        rnnrt_gemm((int)n, n_out, n_in, x + r0 * n_in, n_in, kernel, n_out,
                   bias ? 1.0f : 0.0f, o, n_out);
        if (act->kind == ACT_SOFTMAX || act->kind == ACT_LOG_SOFTMAX) {
            rnnrt_act_rows(act, o, n, n_out);
        } else {
            rnnrt_act_apply(act, o, n * n_out);
        }
    }
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
