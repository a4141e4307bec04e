/* The exp behind the cells' sigmoid and tanh, shared by the elementwise activations
 * (activations.c) and the fused cell epilogues (cells.c) so both compute the same values.
 * Branch-free, so that loops calling it vectorise. */
#ifndef RNNRT_FAST_EXP_H
#define RNNRT_FAST_EXP_H

#include <stdint.h>
#include <string.h>

/* e^x by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r
 * (relative error ~2 ulp). Inputs are clamped to [-87, 89]: below, 2^n stays a normal float
 * (e^-87 = 1.6e-38 for anything lower, which 1 + e^-x absorbs); above 88.38, n = 128 and
 * 2^n is the bit pattern of +inf, so e^x is +inf there (as it is in float from 88.72 on):
 * 1 / (1 + e^-x) then reaches 0 at x = -inf and below -88.38 (true values there are under
 * 4.2e-39), where a clamp at 88 left a floor of 6.1e-39 (the same cost: one constant).
 * NaN stays NaN: it flows through r and p, while the integer cast takes a clamped copy of
 * n, which a NaN compares out of (a NaN-free copy of x instead made GCC compute everything
 * twice). */
static inline float rnnrt_expf(float x)
{
    float xc = x < -87.0f ? -87.0f : (x > 89.0f ? 89.0f : x);
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

static inline float rnnrt_sigmoidf(float x)
{
    return 1.0f / (1.0f + rnnrt_expf(-x));
}

/* tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1.5e-7 (2.5 ulp of 1) where the difference
 * cancels, the same order as the sign-split 1 - 2 / (e^{2|x|} + 1) it replaced, at 0.26 ns
 * an element instead of 0.36 (no sign select). Exactly +-1 for |x| >= 9 and at +-inf;
 * NaN flows through. */
static inline float rnnrt_tanhf(float x)
{
    return 2.0f / (1.0f + rnnrt_expf(-2.0f * x)) - 1.0f;
}

#endif
