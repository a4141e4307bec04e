/* One recurrent layer (RNN, LSTM, GRU; forward, reverse, bidirectional) over a batch.
 *
 * OpenMP splits the batch into row blocks; each thread runs every time step of its block
 * on its own (no barrier per step). Per block and direction:
 *   gx = X @ Wt                       input projection of all steps, one GEMM
 *   per step: gr = h @ Rt[d]          recurrent GEMM (GEMV for one row)
 *             fused epilogue          activations and state update, one pass per row
 * Equations and layouts: rnnrt/ir.py; packed weights: rnnrt/packing.py. */
#include <string.h>
#include "rnnrt.h"

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

/* Per-thread scratch, carved from one buffer. */
typedef struct {
    float *gx;      /* (rows, T, D*G*H) input projections */
    float *gr;      /* (rows, G*H) recurrent pre-activations, then gates */
    float *h;       /* (rows, S) state */
    float *hnew;    /* (rows, S) next state */
    float *c;       /* (rows, H) cell state */
    float *tmp;     /* (rows, max(S, H)) r*h (GRU) or o*h(c) before projection (LSTM) */
} scratch;

static int max_int(int a, int b) { return a > b ? a : b; }

long rnnrt_recurrent_work_floats(const rnnrt_recurrent *r, int rows, int T)
{
    long gh = (long)r->G * r->H;
    return (long)rows * ((long)T * r->D * gh + gh + 2L * r->S + r->H + max_int(r->S, r->H));
}

static scratch carve(const rnnrt_recurrent *r, float *w, int rows, int T)
{
    long gh = (long)r->G * r->H;
    scratch s;
    s.gx = w;             w += (long)rows * T * r->D * gh;
    s.gr = w;             w += (long)rows * gh;
    s.h = w;              w += (long)rows * r->S;
    s.hnew = w;           w += (long)rows * r->S;
    s.c = w;              w += (long)rows * r->H;
    s.tmp = w;
    return s;
}

/* Offsets of element (b, t, d) of y, and (d, b) of a state, in floats. */
static long y_offset(const rnnrt_recurrent *r, int B, int T, int b, int t, int d)
{
    long S = r->S, D = r->D;
    switch (r->y_layout) {
    case Y_TBF: return ((long)t * B + b) * D * S + d * S;
    case Y_TDBH: return (((long)t * D + d) * B + b) * S;
    default: return ((long)b * T + t) * D * S + d * S;
    }
}

static long state_offset(const rnnrt_recurrent *r, int B, int b, int d, int width)
{
    return (r->state_layout == STATE_BDH ? (long)b * r->D + d : (long)d * B + b) * width;
}

/* gx[bi, t, :] = x[b0 + bi, t, :] @ Wt for the block's rows. */
static void project_inputs(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int b0,
                           int rows, float *gx)
{
    int B = io->B, T = io->T, I = r->In, N = r->D * r->G * r->H;
    if (!r->time_major) {
        rnnrt_gemm(rows * T, N, I, io->x + (long)b0 * T * I, I, r->Wt, N, 0.0f, gx, N);
    } else if (rows > T) {
        for (int t = 0; t < T; t++) {   /* one GEMM per step over the block's rows */
            rnnrt_gemm(rows, N, I, io->x + ((long)t * B + b0) * I, I, r->Wt, N, 0.0f,
                       gx + (long)t * N, T * N);
        }
    } else {
        for (int bi = 0; bi < rows; bi++) {   /* one GEMM per row over its steps */
            rnnrt_gemm(T, N, I, io->x + (long)(b0 + bi) * I, B * I, r->Wt, N, 0.0f,
                       gx + (long)bi * T * N, N);
        }
    }
}

/* Sum input projection, recurrent part and bias into pre: pre[j] += gx[j] + b[j]. */
static inline void add_inputs(float *pre, const float *gx, const float *b, int n)
{
    for (int j = 0; j < n; j++) {
        pre[j] += gx[j] + b[j];
    }
}

/* LSTM epilogue for one row: gates in pre (order i, o, f, c), cell c in place, writes
 * o*h(c) to out. */
static void lstm_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, float *c,
                     float *out)
{
    int H = r->H;
    const rnnrt_act *act = r->act[d];
    const float *P = r->P ? r->P + (long)d * 3 * H : NULL;
    float *gi = pre, *go = pre + H, *gf = pre + 2 * H, *gc = pre + 3 * H;
    add_inputs(pre, gx, r->b + (long)d * r->G * H, 4 * H);
    if (P) {
        for (int j = 0; j < H; j++) {
            gi[j] += P[j] * c[j];
            gf[j] += P[2 * H + j] * c[j];
        }
    }
    activate(&act[0], gi, H, r->clip);
    if (r->input_forget) {
        for (int j = 0; j < H; j++) {
            gf[j] = 1.0f - gi[j];
        }
    } else {
        activate(&act[0], gf, H, r->clip);
    }
    activate(&act[1], gc, H, r->clip);
    for (int j = 0; j < H; j++) {
        c[j] = gf[j] * c[j] + gi[j] * gc[j];
    }
    if (P) {
        for (int j = 0; j < H; j++) {
            go[j] += P[H + j] * c[j];
        }
    }
    activate(&act[0], go, H, r->clip);
    memcpy(out, c, sizeof(float) * H);
    activate(&act[2], out, H, r->clip);
    for (int j = 0; j < H; j++) {
        out[j] *= go[j];
    }
}

/* GRU update and reset gates for one row: pre[0:2H] becomes z, r. */
static void gru_gates_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx)
{
    add_inputs(pre, gx, r->b + (long)d * r->G * r->H, 2 * r->H);
    activate(&r->act[d][0], pre, 2 * r->H, r->clip);
}

/* GRU candidate and new state for one row; pre[2H:3H] holds Rh h (lbr) or Rh (r*h). */
static void gru_state_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx,
                          const float *h, float *hnew)
{
    int H = r->H;
    const float *z = pre, *rg = pre + H, *b = r->b + (long)d * r->G * H + 2 * H;
    float *hh = pre + 2 * H;
    if (r->lbr) {
        const float *rbh = r->rbh + (long)d * H;
        for (int j = 0; j < H; j++) {
            hh[j] = gx[2 * H + j] + b[j] + rg[j] * (hh[j] + rbh[j]);
        }
    } else {
        add_inputs(hh, gx + 2 * H, b, H);
    }
    activate(&r->act[d][1], hh, H, r->clip);
    for (int j = 0; j < H; j++) {
        hnew[j] = (1.0f - z[j]) * hh[j] + z[j] * h[j];
    }
}

/* Per-row step bookkeeping for step s: is the row processed, at which input time. */
typedef struct {
    int active;     /* the row has a step s at all (s < its length) */
    int update;     /* ... and it is not masked: the cell runs */
    int t;          /* input time of step s */
} row_step;

static row_step step_of(const rnnrt_recurrent_io *io, int reverse, int b, int s)
{
    row_step rs;
    int L = io->lens ? io->lens[b] : io->T;
    rs.active = s < L;
    rs.t = reverse ? L - 1 - s : s;
    rs.update = rs.active && !(io->mask && !io->mask[(long)b * io->T + rs.t]);
    return rs;
}

static void run_direction(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d,
                          int b0, int rows, scratch *w)
{
    int B = io->B, T = io->T, H = r->H, S = r->S, GH = r->G * H, N = r->D * GH;
    int reverse = (d == 1) || r->reverse_only;
    const float *Rt = r->Rt + (long)d * S * GH;

    /* Initial state; lengths bound the number of steps this block runs. */
    int steps = 0;
    for (int bi = 0; bi < rows; bi++) {
        int b = b0 + bi;
        int L = io->lens ? io->lens[b] : T;
        steps = L > steps ? L : steps;
        if (io->h0) {
            memcpy(w->h + (long)bi * S, io->h0 + state_offset(r, B, b, d, S), sizeof(float) * S);
        } else {
            memset(w->h + (long)bi * S, 0, sizeof(float) * S);
        }
        if (r->cell == CELL_LSTM) {
            if (io->c0) {
                memcpy(w->c + (long)bi * H, io->c0 + state_offset(r, B, b, d, H),
                       sizeof(float) * H);
            } else {
                memset(w->c + (long)bi * H, 0, sizeof(float) * H);
            }
        }
        /* Outputs at steps a short row never reaches are zero. */
        if (io->y && io->lens) {
            for (int t = L < 0 ? 0 : L; t < T; t++) {
                memset(io->y + y_offset(r, B, T, b, t, d), 0, sizeof(float) * S);
            }
        }
    }
    steps = steps > T ? T : steps;

    for (int s = 0; s < steps; s++) {
        int gru_before = r->cell == CELL_GRU && !r->lbr;
        /* Recurrent GEMM; GRU with reset before the matmul does its h part later. */
        rnnrt_gemm(rows, gru_before ? 2 * H : GH, S, w->h, S, Rt, GH, 0.0f, w->gr, GH);
        if (gru_before) {
            for (int bi = 0; bi < rows; bi++) {
                row_step rs = step_of(io, reverse, b0 + bi, s);
                float *pre = w->gr + (long)bi * GH, *rh = w->tmp + (long)bi * S;
                const float *h = w->h + (long)bi * S;
                if (rs.update) {
                    gru_gates_row(r, d, pre, w->gx + ((long)bi * T + rs.t) * N + d * GH);
                    for (int j = 0; j < H; j++) {
                        rh[j] = pre[H + j] * h[j];
                    }
                } else {
                    memset(rh, 0, sizeof(float) * S);
                }
            }
            rnnrt_gemm(rows, H, S, w->tmp, S, Rt + 2 * H, GH, 0.0f, w->gr + 2 * H, GH);
        }
        for (int bi = 0; bi < rows; bi++) {
            row_step rs = step_of(io, reverse, b0 + bi, s);
            if (!rs.update) {
                continue;
            }
            float *pre = w->gr + (long)bi * GH;
            const float *gx = w->gx + ((long)bi * T + rs.t) * N + d * GH;
            float *hnew = w->hnew + (long)bi * S;
            switch (r->cell) {
            case CELL_RNN:
                add_inputs(pre, gx, r->b + (long)d * GH, H);
                activate(&r->act[d][0], pre, H, r->clip);
                memcpy(hnew, pre, sizeof(float) * H);
                break;
            case CELL_LSTM:
                lstm_row(r, d, pre, gx, w->c + (long)bi * H,
                         r->Projt ? w->tmp + (long)bi * H : hnew);
                break;
            default:
                if (!gru_before) {
                    gru_gates_row(r, d, pre, gx);
                }
                gru_state_row(r, d, pre, gx, w->h + (long)bi * S, hnew);
                break;
            }
        }
        if (r->Projt) {
            rnnrt_gemm(rows, S, H, w->tmp, H, r->Projt + (long)d * H * S, S, 0.0f, w->hnew, S);
        }
        /* Rows that did not update carry their state; write this step's outputs. */
        for (int bi = 0; bi < rows; bi++) {
            int b = b0 + bi;
            row_step rs = step_of(io, reverse, b, s);
            float *hnew = w->hnew + (long)bi * S;
            if (!rs.update) {
                memcpy(hnew, w->h + (long)bi * S, sizeof(float) * S);
            }
            if (io->y && rs.active) {
                float *y = io->y + y_offset(r, B, T, b, r->step_order ? s : rs.t, d);
                if (rs.update || r->masked_carry) {
                    memcpy(y, hnew, sizeof(float) * S);
                } else {
                    memset(y, 0, sizeof(float) * S);
                }
            }
        }
        float *swap = w->h;
        w->h = w->hnew;
        w->hnew = swap;
    }

    for (int bi = 0; bi < rows; bi++) {
        int b = b0 + bi;
        const float *h = w->h + (long)bi * S, *c = w->c + (long)bi * H;
        if (io->hn) {
            memcpy(io->hn + state_offset(r, B, b, d, S), h, sizeof(float) * S);
        }
        if (io->hlast) {
            memcpy(io->hlast + ((long)b * r->D + d) * S, h, sizeof(float) * S);
        }
        if (r->cell == CELL_LSTM && io->cn) {
            memcpy(io->cn + state_offset(r, B, b, d, H), c, sizeof(float) * H);
        }
        if (r->cell == CELL_LSTM && io->clast) {
            memcpy(io->clast + ((long)b * r->D + d) * H, c, sizeof(float) * H);
        }
    }
}

/* Thread k's block of batch rows, for all steps and directions. */
static void run_block(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int k, int per,
                      long stride)
{
    int b0 = k * per;
    int rows = io->B - b0 < per ? io->B - b0 : per;
    if (rows > 0) {
        scratch w = carve(r, io->work + k * stride, rows, io->T);
        project_inputs(r, io, b0, rows, w.gx);
        for (int d = 0; d < r->D; d++) {
            float *h = w.h, *hnew = w.hnew;
            run_direction(r, io, d, b0, rows, &w);
            w.h = h;          /* run_direction swapped them once per step */
            w.hnew = hnew;
        }
    }
}

void rnnrt_recurrent_run(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io)
{
    int B = io->B, nt = io->nthreads < 1 ? 1 : io->nthreads;
    if (B == 0 || io->T == 0) {
        return;
    }
    nt = nt > B ? B : nt;
    int per = (B + nt - 1) / nt;
    long stride = rnnrt_recurrent_work_floats(r, per, io->T);
    if (nt == 1) {           /* no parallel region: it costs a streaming step ~0.5 us */
        run_block(r, io, 0, per, stride);
        return;
    }
    #pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int k = 0; k < nt; k++) {
        run_block(r, io, k, per, stride);
    }
}
