/* The cells' per-step math for one row: activations and state update of the hidden units
 * [u0, u1), given the step's recurrent pre-activations `pre` (G*H of them, gate-major), the
 * row's input projections `gx` (same layout) and the layer's bias. Equations: rnnrt/ir.py.
 *
 * Two ways to the same values:
 * - fused: for a cell with its standard activations (sigmoid gates, tanh candidate and
 *   output) and no clip or peepholes, one vectorised pass computes every gate of a unit in
 *   registers, where the general path below makes a pass per gate and per operation, each
 *   through a call. On batch-1 sequences of 128 units (perf) a step's cell math took GRU
 *   0.18 -> 0.14 us, SimpleRNN 0.072 -> 0.056 us; LSTM stayed at ~0.25 us, which is the
 *   arithmetic of its 5 exps a unit either way.
 * - general: any activation, clip, peepholes, coupled input-forget gate.
 * Both use the same exp (fast_exp.h) and the same order of additions. */
#include <string.h>
#include "fast_exp.h"
#include "rnnrt.h"

/* ---- fused: standard activations, no clip ---- */

/* Whether activation k (f, g, h) of direction d is `kind`, and nothing clips it. */
static int unclipped(const rnnrt_recurrent *r, int d, int k, int kind)
{
    return r->clip <= 0.0f && r->act[d][k].kind == kind;
}

/* LSTM, gates i, o, f, c at pre + {0, 1, 2, 3} * H (gx and b alike), n units. */
DISPATCH static void lstm_fused(const float *restrict pre, const float *restrict gx,
                                const float *restrict b, float *restrict c,
                                float *restrict out, long H, int n)
{
    for (int j = 0; j < n; j++) {
        float i = rnnrt_sigmoidf(pre[j] + (gx[j] + b[j]));
        float o = rnnrt_sigmoidf(pre[H + j] + (gx[H + j] + b[H + j]));
        float f = rnnrt_sigmoidf(pre[2 * H + j] + (gx[2 * H + j] + b[2 * H + j]));
        float g = rnnrt_tanhf(pre[3 * H + j] + (gx[3 * H + j] + b[3 * H + j]));
        float cj = f * c[j] + i * g;
        c[j] = cj;
        out[j] = o * rnnrt_tanhf(cj);
    }
}

/* GRU z and r in place at pre and pre + H. */
DISPATCH static void gru_gates_fused(float *restrict pre, const float *restrict gx,
                                     const float *restrict b, long H, int n)
{
    for (int j = 0; j < n; j++) {
        pre[j] = rnnrt_sigmoidf(pre[j] + (gx[j] + b[j]));
        pre[H + j] = rnnrt_sigmoidf(pre[H + j] + (gx[H + j] + b[H + j]));
    }
}

/* GRU candidate and new state; z, r: the activated gates; hh: the candidate's recurrent
 * part (Rh h with linear_before_reset, given rbh; else Rh (r*h)); gx, b: the candidate's. */
DISPATCH static void gru_state_fused(const float *restrict z, const float *restrict rg,
                                     const float *restrict hh, const float *restrict gx,
                                     const float *restrict b, const float *restrict rbh,
                                     const float *restrict h, float *restrict hnew, int n)
{
    if (rbh) {
        for (int j = 0; j < n; j++) {
            float cand = rnnrt_tanhf(gx[j] + b[j] + rg[j] * (hh[j] + rbh[j]));
            hnew[j] = (1.0f - z[j]) * cand + z[j] * h[j];
        }
    } else {
        for (int j = 0; j < n; j++) {
            float cand = rnnrt_tanhf(hh[j] + (gx[j] + b[j]));
            hnew[j] = (1.0f - z[j]) * cand + z[j] * h[j];
        }
    }
}

/* SimpleRNN with tanh, in place. */
DISPATCH static void rnn_tanh_fused(float *restrict pre, const float *restrict gx,
                                    const float *restrict b, int n)
{
    for (int j = 0; j < n; j++) {
        pre[j] = rnnrt_tanhf(pre[j] + (gx[j] + b[j]));
    }
}

/* ---- general: any activation, clip, peepholes ---- */

/* Clamp to [-clip, clip]; NaN stays NaN (comparisons with NaN are false). */
static inline void clip_inplace(float *x, int n, float clip)
{
    if (clip <= 0.0f) {
        return;
    }
    for (int j = 0; j < n; j++) {
        x[j] = x[j] < -clip ? -clip : (x[j] > clip ? clip : x[j]);
    }
}

static inline void activate(const rnnrt_act *a, float *x, int n, float clip)
{
    clip_inplace(x, n, clip);
    rnnrt_act_apply(a, x, n);
}

/* pre[gH + u] += gx[gH + u] + b[gH + u] for gates g0..g1-1 and units [u0, u1). */
DISPATCH static void add_gate_inputs(const rnnrt_recurrent *r, int d, float *pre,
                                     const float *gx, int g0, int g1, int u0, int u1)
{
    const float *b = r->b + (long)d * r->G * r->H;
    for (int g = g0; g < g1; g++) {
        int o = g * r->H;
        for (int j = u0; j < u1; j++) {
            pre[o + j] += gx[o + j] + b[o + j];
        }
    }
}

/* LSTM: any activations, clip, peepholes, coupled input and forget gates. c and out are
 * the row's whole vectors; the activated gates are left in pre. */
DISPATCH static void lstm_general(const rnnrt_recurrent *r, int d, float *pre, const float *gx,
                                  float *c, float *out, int u0, int u1)
{
    int H = r->H, n = u1 - u0;
    const float *P = r->P ? r->P + (long)d * 3 * H + u0 : NULL;
    const rnnrt_act *act = r->act[d];
    float *gi = pre + u0, *go = gi + H, *gf = gi + 2 * H, *gc = gi + 3 * H;
    c += u0;
    out += u0;
    add_gate_inputs(r, d, pre, gx, 0, 4, u0, u1);
    if (P) {
        for (int j = 0; j < n; j++) {
            gi[j] += P[j] * c[j];
            gf[j] += P[2 * H + j] * c[j];
        }
    }
    activate(&act[0], gi, n, r->clip);
    if (r->input_forget) {
        for (int j = 0; j < n; j++) {
            gf[j] = 1.0f - gi[j];
        }
    } else {
        activate(&act[0], gf, n, r->clip);
    }
    activate(&act[1], gc, n, r->clip);
    for (int j = 0; j < n; j++) {
        c[j] = gf[j] * c[j] + gi[j] * gc[j];
    }
    if (P) {
        for (int j = 0; j < n; j++) {
            go[j] += P[H + j] * c[j];
        }
    }
    activate(&act[0], go, n, r->clip);
    memcpy(out, c, sizeof(float) * n);
    activate(&act[2], out, n, r->clip);
    for (int j = 0; j < n; j++) {
        out[j] *= go[j];
    }
}

/* ---- per row: fused where the cell allows, else general ---- */

void rnnrt_rnn_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, int u0,
                   int u1)
{
    if (unclipped(r, d, 0, ACT_TANH)) {
        rnn_tanh_fused(pre + u0, gx + u0, r->b + (long)d * r->H + u0, u1 - u0);
        return;
    }
    add_gate_inputs(r, d, pre, gx, 0, 1, u0, u1);
    activate(&r->act[d][0], pre + u0, u1 - u0, r->clip);
}

void rnnrt_lstm_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, float *c,
                    float *out, int u0, int u1)
{
    if (!r->P && !r->input_forget && unclipped(r, d, 0, ACT_SIGMOID) &&
        unclipped(r, d, 1, ACT_TANH) && unclipped(r, d, 2, ACT_TANH)) {
        lstm_fused(pre + u0, gx + u0, r->b + (long)d * 4 * r->H + u0, c + u0, out + u0, r->H,
                   u1 - u0);
        return;
    }
    lstm_general(r, d, pre, gx, c, out, u0, u1);
}

void rnnrt_gru_gates_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, int u0,
                         int u1)
{
    if (unclipped(r, d, 0, ACT_SIGMOID)) {
        gru_gates_fused(pre + u0, gx + u0, r->b + (long)d * 3 * r->H + u0, r->H, u1 - u0);
        return;
    }
    add_gate_inputs(r, d, pre, gx, 0, 2, u0, u1);
    activate(&r->act[d][0], pre + u0, u1 - u0, r->clip);
    activate(&r->act[d][0], pre + r->H + u0, u1 - u0, r->clip);
}

void rnnrt_gru_state_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx,
                         const float *h, float *hnew, int u0, int u1)
{
    int H = r->H, n = u1 - u0;
    const float *z = pre + u0, *rg = z + H, *b = r->b + (long)d * r->G * H + 2 * H + u0;
    const float *rbh = r->lbr ? r->rbh + (long)d * H + u0 : NULL;
    float *hh = pre + 2 * H + u0;
    gx += 2 * H + u0;
    h += u0;
    hnew += u0;
    if (unclipped(r, d, 1, ACT_TANH)) {
        gru_state_fused(z, rg, hh, gx, b, rbh, h, hnew, n);
        return;
    }
    if (rbh) {
        for (int j = 0; j < n; j++) {
            hh[j] = gx[j] + b[j] + rg[j] * (hh[j] + rbh[j]);
        }
    } else {
        for (int j = 0; j < n; j++) {
            hh[j] += gx[j] + b[j];
        }
    }
    activate(&r->act[d][1], hh, n, r->clip);
    for (int j = 0; j < n; j++) {
        hnew[j] = (1.0f - z[j]) * hh[j] + z[j] * h[j];
    }
}
