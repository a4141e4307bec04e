/* Activation functions, elementwise and row-wise. Formulas: rnnrt/ir.py (ELEMENTWISE).
 *
 * sigmoid and tanh, the cells' hot path, use a branch-free exp that the compiler vectorises,
 * cloned for AVX-512 / AVX2 / baseline x86-64 and picked at load time (no -march=native).
 * Max abs error against libm: under 1e-6 (tests/test_activations.py). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "rnnrt.h"


/* e^x by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r
 * (relative error ~2 ulp). Inputs are clamped so that 2^n stays a normal float; NaN stays
 * NaN: it flows through r and p, while the integer cast takes a clamped copy of n, which a
 * NaN compares out of (a NaN-free copy of x instead made GCC compute everything twice). */
static inline float vexpf(float x)
{
    float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float nc = n >= -126.0f ? n : -126.0f;
    int32_t bits = ((int32_t)nc + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

DISPATCH static void sigmoid_vec(float *x, long n)
{
    for (long i = 0; i < n; i++) {
        x[i] = 1.0f / (1.0f + vexpf(-x[i]));
    }
}

/* tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1.5e-7 (2.5 ulp of 1) where the difference
 * cancels, the same order as the sign-split 1 - 2 / (e^{2|x|} + 1) it replaced, at 0.26 ns
 * an element instead of 0.36 (no sign select). At +-inf e^-2x is clamped: exactly +-1; NaN
 * flows through. */
DISPATCH static void tanh_vec(float *x, long n)
{
    for (long i = 0; i < n; i++) {
        x[i] = 2.0f / (1.0f + vexpf(-2.0f * x[i])) - 1.0f;
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
