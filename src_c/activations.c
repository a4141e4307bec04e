/* Activation functions, elementwise and row-wise. Formulas: rnnrt/ir.py (ELEMENTWISE).
 *
 * sigmoid and tanh, the cells' hot path, use a branch-free exp (fast_exp.h) that the compiler
 * vectorises, cloned for AVX-512 / AVX2 / baseline x86-64 and picked at load time (no
 * -march=native).
 * Max abs error against libm: under 1e-6 (tests/test_activations.py). */
#include <math.h>
#include "fast_exp.h"
#include "rnnrt.h"


DISPATCH static void sigmoid_vec(float *x, long n)
{
    for (long i = 0; i < n; i++) {
        x[i] = rnnrt_sigmoidf(x[i]);
    }
}

DISPATCH static void tanh_vec(float *x, long n)
{
    for (long i = 0; i < n; i++) {
        x[i] = rnnrt_tanhf(x[i]);
    }
}

static inline float sigmoidf(float x)
{
    /* Split by sign so expf never overflows; NaN falls through to the second branch. */
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    float e = expf(x);
    return e / (1.0f + e);
}

static inline float softplusf(float x)
{
    /* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). */
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline float hard_sigmoidf(float x, float alpha, float beta)
{
    float y = alpha * x + beta;
    return y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);   /* NaN propagates */
}

#define APPLY(expr) for (long i = 0; i < n; i++) { float v = x[i]; x[i] = (expr); } break

void rnnrt_act_apply(const rnnrt_act *a, float *x, long n)
{
    const float al = a->alpha, be = a->beta;
    switch (a->kind) {
    case ACT_LINEAR: break;
    case ACT_RELU: APPLY(v < 0.0f ? 0.0f : v);
    case ACT_TANH: tanh_vec(x, n); break;
    case ACT_SIGMOID: sigmoid_vec(x, n); break;
    case ACT_AFFINE: APPLY(al * v + be);
    case ACT_LEAKY_RELU: APPLY(v >= 0.0f ? v : al * v);
    case ACT_THRESHOLDED_RELU: APPLY(v > al ? v : (v != v ? v : 0.0f));
    case ACT_SCALED_TANH: APPLY(al * tanhf(be * v));
    case ACT_HARD_SIGMOID: APPLY(hard_sigmoidf(v, al, be));
    case ACT_ELU: APPLY(v >= 0.0f ? v : al * expm1f(v));
    case ACT_SOFTSIGN: APPLY(v / (1.0f + fabsf(v)));
    case ACT_SOFTPLUS: APPLY(softplusf(v));
    case ACT_RELU6: APPLY(v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v));
    case ACT_SELU: APPLY(be * (v > 0.0f ? v : al * expm1f(v)));
    case ACT_SILU: APPLY(v * sigmoidf(v));
    case ACT_EXPONENTIAL: APPLY(expf(v));
    case ACT_GELU: APPLY(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
    case ACT_GELU_TANH:
        APPLY(0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v))));
    case ACT_MISH: APPLY(v * tanhf(softplusf(v)));
    case ACT_HARD_SILU: APPLY(v * hard_sigmoidf(v, al, be));
    case ACT_LOG_SIGMOID: APPLY(-softplusf(-v));
    case ACT_TANH_SHRINK: APPLY(v - tanhf(v));
    default: break;
    }
}

void rnnrt_act_rows(const rnnrt_act *a, float *x, long rows, long n)
{
    for (long r = 0; r < rows; r++) {
        float *row = x + r * n;
        float m = -INFINITY;
        for (long i = 0; i < n; i++) {
            m = row[i] > m ? row[i] : m;
            if (row[i] != row[i]) { m = row[i]; break; }   /* NaN row stays NaN */
        }
        double sum = 0.0;
        for (long i = 0; i < n; i++) {
            sum += expf(row[i] - m);
        }
        if (a->kind == ACT_SOFTMAX) {
            float inv = (float)(1.0 / sum);
            for (long i = 0; i < n; i++) {
                row[i] = expf(row[i] - m) * inv;
            }
        } else {
            /* (x - m) - log(sum): subtracting the max first keeps the cancellation exact. */
            float log_sum = (float)log(sum);
            for (long i = 0; i < n; i++) {
                row[i] = (row[i] - m) - log_sum;
            }
        }
    }
}
