/* One recurrent layer (RNN, LSTM, GRU; forward, reverse, bidirectional) over a batch.
 *
 * Per block of rows and direction:
 *   gx = X @ W                        input projection, one product per gate: of all steps
 *                                     at once, or of each step just before it (8+ rows)
 *   per step: gr = h @ R[d]           recurrent product, one per gate
 *             epilogue                activations and state update per row (cells.c)
 * Both products read the weights in gate panels (rnnrt/panels.py) with the packed GEMM
 * (packed_gemm.c), which never repacks them. How threads share the work: see
 * rnnrt_recurrent_run below. Equations and layouts: rnnrt/ir.py. */
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include "rnnrt.h"

/* Per-thread scratch, carved from one buffer. */
typedef struct {
    float *gx;      /* (rows, T, D*G*H) input projections ((rows, D*G*H) when stepwise) */
    float *gr;      /* (rows, G*H) recurrent pre-activations, then gates */
    float *h;       /* (rows, S) state */
    float *hnew;    /* (rows, S) next state */
    float *c;       /* (rows, H) cell state */
    float *tmp;     /* (rows, max(S, H)) r*h (GRU) or o*h(c) before projection (LSTM) */
} scratch;

static int max_int(int a, int b) { return a > b ? a : b; }

/* Scratch floats of one block of `rows` rows (see carve). */
static long block_work_floats(const rnnrt_recurrent *r, int rows, int T)
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

/* The hidden units [u0, u1) a thread computes: all of them, or its share when the threads
 * split one step's units (see rnnrt_recurrent_run). */
typedef struct {
    int u0, u1;
    int split;      /* other shares own the other units: a step's parts are phases */
    int k, team;    /* this share's index among the `team` that split the units */
    int ranged;     /* ... and computes a contiguous range of R's panels (recurrent_gemm) */
} units;

/* The gate panels of direction d, gate g, for a K-row weight matrix (rnnrt/panels.py). */
static const float *gate_panels(const rnnrt_recurrent *r, const float *panels, int K, int d,
                                int g)
{
    long P = (r->H + RNNRT_PANEL - 1) / RNNRT_PANEL;
    return panels + ((long)d * r->G + g) * P * RNNRT_PANEL * K;
}

/* gx[bi, t, (d, g, units)] = x[b0 + bi, t, :] @ W[d, g, units] for the block's rows, for
 * each gate g of direction d (gx: (rows, T, D*G*H)). */
static void project_inputs(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int b0,
                           int rows, float *gx, int d, units u)
{
    int B = io->B, T = io->T, I = r->In, H = r->H, N = r->D * r->G * H;
    for (int g = 0; g < r->G; g++) {
        const float *Wp = gate_panels(r, r->Wp, I, d, g);
        float *out = gx + ((long)d * r->G + g) * H + u.u0;
        if (!r->time_major) {
            rnnrt_gemm_packed(rows * T, u.u0, u.u1, I, io->x + (long)b0 * T * I, I, Wp, 0.0f,
                              out, N);
        } else if (rows > T) {
            for (int t = 0; t < T; t++) {   /* one product per step over the block's rows */
                rnnrt_gemm_packed(rows, u.u0, u.u1, I, io->x + ((long)t * B + b0) * I, I, Wp,
                                  0.0f, out + (long)t * N, T * N);
            }
        } else {
            for (int bi = 0; bi < rows; bi++) {   /* one product per row over its steps */
                rnnrt_gemm_packed(T, u.u0, u.u1, I, io->x + (long)(b0 + bi) * I, B * I, Wp,
                                  0.0f, out + (long)bi * T * N, N);
            }
        }
    }
}

/* This core's L2, in bytes: recurrent weights read each step beyond it come from L3. Read
 * once at load: RNNRT_L2_BYTES when set (a CPU or container that reports it wrong; tests
 * force the large-layer paths on small layers with it), else the CPU's, else 1 MiB. */
static long l2_bytes = 1L << 20;

__attribute__((constructor)) static void l2_bytes_read(void)
{
    const char *env = getenv("RNNRT_L2_BYTES");
    long got = env ? strtol(env, NULL, 10) : 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    got = got > 0 ? got : sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    l2_bytes = got > 0 ? got : l2_bytes;
}

/* The thread's share of R, in bytes: read every step. */
static long r_share_bytes(const rnnrt_recurrent *r, units u)
{
    return sizeof(float) * (long)r->G * r->S * (u.u1 - u.u0);
}

/* Whether threads that split the units divide the recurrent product by panel ranges instead
 * (see recurrent_gemm): where each one's share of R stays in its core's L2 but fills much of
 * it. A thread's units of every gate are G pieces of R, H * S * 4 / G bytes apart, and such
 * pieces stay in L2 less well than one contiguous run of the same size (LSTM-256 on 2
 * threads, 512 KiB each: 4.6 us a step against 2.7 us, measured in a C loop of the kernel);
 * the ranges are contiguous, and cost a second barrier per step: a loss with small shares
 * (LSTM-128, 128 KiB: +10% a sequence) and from L3 (LSTM-512, 2 MiB: +7%). */
static int product_by_ranges(const rnnrt_recurrent *r, long share)
{
    return r->G > 1 && share > l2_bytes / 4 && share <= l2_bytes;
}

long rnnrt_l2_bytes(void)
{
    return l2_bytes;
}

/* gr[:, gH + v] = a @ R[d, g, v] for gates g0..g1-1 and units v: the thread's units u, or,
 * with `ranged`, the thread's contiguous range of the panels of gates g0..g1-1 taken in
 * memory order (gate by gate), which may end inside a gate. Each thread then reads one
 * contiguous part of R, and other threads' units of gr are its to compute. `streamed`: the
 * thread's share of R does not stay in L2 from step to step; then step s reads its weights
 * forward when s is even and backward when odd (io->parity carries the count across calls
 * that reuse one rnnrt_call: a stream's C step path and generation; other calls start
 * even), so that each step begins with what the last one left in L2 (1 thread,
 * 1 x 512 x 2048, 38.6 us a step in one direction, 36.3 us alternating; 2 threads, half
 * each: 19.6 and 17.4 us). */
static void recurrent_gemm(const rnnrt_recurrent *r, int d, int rows, const float *a, int g0,
                           int g1, units u, int ranged, int streamed, int s, float *gr)
{
    const int P = (r->H + RNNRT_PANEL - 1) / RNNRT_PANEL, GH = r->G * r->H;
    const int total = (g1 - g0) * P;
    const int q0 = ranged ? u.k * total / u.team : 0, q1 = ranged ? (u.k + 1) * total / u.team
                                                                : total;
    /* Weights beyond L2 (streamed): the kernel asks for them ahead. */
    const int backward = streamed && (s & 1);
    for (int i = 0; i < g1 - g0; i++) {
        const int g = backward ? g1 - 1 - i : g0 + i;
        int v0 = u.u0, v1 = u.u1;
        if (ranged) {           /* this gate's panels within [q0, q1) */
            int first = (g - g0) * P;
            int p0 = q0 > first ? q0 - first : 0, p1 = q1 - first < P ? q1 - first : P;
            if (p1 <= p0) {
                continue;
            }
            v0 = p0 * RNNRT_PANEL;
            v1 = p1 * RNNRT_PANEL < r->H ? p1 * RNNRT_PANEL : r->H;
        }
        const float *panels = gate_panels(r, r->Rp, r->S, d, g);
        float *c = gr + g * r->H + v0;
        if (streamed) {
            rnnrt_gemm_packed_streamed(rows, v0, v1, r->S, a, r->S, panels, 0.0f, c, GH,
                                       backward);
        } else {
            rnnrt_gemm_packed(rows, v0, v1, r->S, a, r->S, panels, 0.0f, c, GH);
        }
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

/* From this many rows, a direction projects each step's inputs just before its recurrent
 * product, into a (rows, D*G*H) gx that stays in L2, instead of all steps at once into a
 * (rows, T, D*G*H) one that streams through memory (13 MB at 64 rows, T = 50, H = 256);
 * the product still has enough rows to run at the kernel's full rate. It needs one input
 * time per step for all rows, which reversed rows of different lengths do not have. */
#define STEPWISE_MIN_ROWS 8

static int stepwise_inputs(const rnnrt_recurrent_io *io, int reverse, int rows)
{
    return rows >= STEPWISE_MIN_ROWS && !(reverse && io->lens);
}

/* gx[bi, (d, g)] = x[b0 + bi, t, :] @ W[d, g] for every gate g, at one time t. */
static void project_step(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int b0,
                         int rows, int t, int d, float *gx)
{
    int I = r->In, H = r->H, N = r->D * r->G * H;
    const float *x = r->time_major ? io->x + ((long)t * io->B + b0) * I
                                   : io->x + ((long)b0 * io->T + t) * I;
    int lda = r->time_major ? I : io->T * I;
    for (int g = 0; g < r->G; g++) {
        rnnrt_gemm_packed(rows, 0, H, I, x, lda, gate_panels(r, r->Wp, I, d, g), 0.0f,
                          gx + ((long)d * r->G + g) * H, N);
    }
}

/* One step's gates and new state for the rows that update, on units u: pre-activations in
 * gr (hnew itself for a SimpleRNN), input projections at gx + row * gx_row + time * gx_time. */
static void step_epilogue(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d,
                          int b0, int rows, int s, int reverse, const scratch *w, float *gr,
                          const float *gx, long gx_row, long gx_time, int gru_before, units u)
{
    int H = r->H, S = r->S, GH = r->G * H;
    for (int bi = 0; bi < rows; bi++) {
        row_step rs = step_of(io, reverse, b0 + bi, s);
        if (!rs.update) {
            continue;
        }
        float *pre = gr + (long)bi * GH;
        const float *gxr = gx + bi * gx_row + rs.t * gx_time;
        float *hnew = w->hnew + (long)bi * S;
        switch (r->cell) {
        case CELL_RNN:      /* pre is this row of hnew */
            rnnrt_rnn_row(r, d, pre, gxr, u.u0, u.u1);
            break;
        case CELL_LSTM:
            rnnrt_lstm_row(r, d, pre, gxr, w->c + (long)bi * H,
                           r->Projt ? w->tmp + (long)bi * H : hnew, u.u0, u.u1);
            break;
        default:
            if (!gru_before) {
                rnnrt_gru_gates_row(r, d, pre, gxr, u.u0, u.u1);
            }
            rnnrt_gru_state_row(r, d, pre, gxr, w->h + (long)bi * S, hnew, u.u0, u.u1);
            break;
        }
    }
}

/* GRU with the reset before the product: z and r for the rows that update, and r * h (zero
 * for the others) into tmp, on the thread's units: what the candidate's product reads. */
static void gru_reset_state(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d,
                            int b0, int rows, int s, int reverse, const scratch *w,
                            const float *gx, long gx_row, long gx_time, units u)
{
    int H = r->H, S = r->S, GH = r->G * H;
    int s0 = u.split ? u.u0 : 0, sn = u.split ? u.u1 - u.u0 : S;
    for (int bi = 0; bi < rows; bi++) {
        row_step rs = step_of(io, reverse, b0 + bi, s);
        float *pre = w->gr + (long)bi * GH, *rh = w->tmp + (long)bi * S + s0;
        const float *h = w->h + (long)bi * S + s0;
        if (rs.update) {
            rnnrt_gru_gates_row(r, d, pre, gx + bi * gx_row + rs.t * gx_time, u.u0, u.u1);
            for (int j = 0; j < sn; j++) {
                rh[j] = pre[H + s0 + j] * h[j];
            }
        } else {
            memset(rh, 0, sizeof(float) * sn);
        }
    }
}


/* One direction d of a block of rows b0.., run as stages: begin, then each step's parts,
 * then end. Run one after another on one thread (run_direction), or, when shares split the
 * units, each stage a phase that every share runs for its units (run_units). */
typedef struct {
    const rnnrt_recurrent *r;
    const rnnrt_recurrent_io *io;
    int d, b0, rows, reverse;
    int stepwise;       /* inputs projected step by step, not all at once */
    int gru_before;     /* a GRU with the reset before the product */
    int steps;          /* steps the longest row runs */
    scratch w;          /* as carved; see scratch_at */
    const float *gx0;   /* row bi's input projections at time t: gx0 + bi*gx_row + t*gx_time */
    long gx_row, gx_time;
} direction;

static direction direction_of(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d,
                              int b0, int rows, scratch w, int split)
{
    direction dr = {r, io, d, b0, rows, (d == 1) || r->reverse_only};
    int T = io->T, GH = r->G * r->H, N = r->D * GH;
    dr.stepwise = !split && stepwise_inputs(io, dr.reverse, rows);
    dr.gru_before = r->cell == CELL_GRU && !r->lbr;
    for (int bi = 0; bi < rows; bi++) {
        int L = io->lens ? io->lens[b0 + bi] : T;
        dr.steps = L > dr.steps ? L : dr.steps;
    }
    dr.steps = dr.steps > T ? T : dr.steps;
    dr.w = w;
    dr.gx0 = w.gx + d * GH;
    dr.gx_row = dr.stepwise ? N : (long)T * N;
    dr.gx_time = dr.stepwise ? 0 : N;
    return dr;
}

/* The scratch of step s: h holds the state before it, hnew receives the state after (the
 * two buffers trade places every step). scratch_at(steps).h is the final state. */
static scratch scratch_at(const direction *dr, int s)
{
    scratch w = dr->w;
    if (s & 1) {
        w.h = dr->w.hnew;
        w.hnew = dr->w.h;
    }
    return w;
}

/* This share's slice of each state vector: its units (S == H when units are split, since a
 * projection mixes all units each step, so it never splits units). */
static int slice0(units u) { return u.split ? u.u0 : 0; }
static size_t slice_bytes(const direction *dr, units u)
{
    return sizeof(float) * (u.split ? u.u1 - u.u0 : dr->r->S);
}

/* Input projections of all steps (unless stepwise), the initial state, and zero outputs
 * at the steps a short row never reaches. A row of length 0 never steps: its final state is
 * its initial one, or zeros (empty_zero). */
static void dir_begin(const direction *dr, units u)
{
    const rnnrt_recurrent *r = dr->r;
    const rnnrt_recurrent_io *io = dr->io;
    int B = io->B, T = io->T, H = r->H, S = r->S;
    int s0 = slice0(u), c0 = u.u0;
    size_t sbytes = slice_bytes(dr, u), cbytes = sizeof(float) * (u.u1 - u.u0);
    if (!dr->stepwise) {
        project_inputs(r, io, dr->b0, dr->rows, dr->w.gx, dr->d, u);
    }
    for (int bi = 0; bi < dr->rows; bi++) {
        int b = dr->b0 + bi;
        int L = io->lens ? io->lens[b] : T;
        int from_zero = r->empty_zero && L == 0;
        float *h = dr->w.h + (long)bi * S + s0;
        if (io->h0 && !from_zero) {
            memcpy(h, io->h0 + state_offset(r, B, b, dr->d, S) + s0, sbytes);
        } else {
            memset(h, 0, sbytes);
        }
        if (r->cell == CELL_LSTM) {
            float *c = dr->w.c + (long)bi * H + c0;
            if (io->c0 && !from_zero) {
                memcpy(c, io->c0 + state_offset(r, B, b, dr->d, H) + c0, cbytes);
            } else {
                memset(c, 0, cbytes);
            }
        }
        if (io->y && io->lens) {
            for (int t = L < 0 ? 0 : L; t < T; t++) {
                memset(io->y + y_offset(r, B, T, b, t, dr->d) + s0, 0, sbytes);
            }
        }
    }
}

/* The pieces of a step in order. A step's parts are the runs of pieces between JOINs: after
 * a JOIN, a piece reads what every share wrote before it. */
enum { P_GEMM, P_RESET, P_GEMM_CANDIDATE, P_FINISH, P_JOIN };

static int step_pieces(const direction *dr, units u, int *pieces)
{
    int n = 0;
    pieces[n++] = P_GEMM;
    if (u.ranged) {
        pieces[n++] = P_JOIN;       /* the epilogue reads gates of its units others computed */
    }
    if (dr->gru_before) {
        pieces[n++] = P_RESET;
        pieces[n++] = P_JOIN;       /* the candidate's product reads every unit of r*h */
        pieces[n++] = P_GEMM_CANDIDATE;
    }
    pieces[n++] = P_FINISH;
    return n;
}

static int step_parts(const direction *dr, units u)
{
    int pieces[8], n = step_pieces(dr, u, pieces), parts = 1;
    for (int i = 0; i < n; i++) {
        parts += pieces[i] == P_JOIN;
    }
    return parts;
}

/* Step s's gates, state update and outputs, on units u; both products read the weights in
 * alternating directions when they come from beyond L2 (streamed). */
static void step_finish(const direction *dr, int s, const scratch *w, units u)
{
    const rnnrt_recurrent *r = dr->r;
    const rnnrt_recurrent_io *io = dr->io;
    int B = io->B, T = io->T, H = r->H, S = r->S;
    int s0 = slice0(u);
    size_t sbytes = slice_bytes(dr, u);
    /* A SimpleRNN's one gate has the state's shape (G * H == S): its pre-activations went
     * straight into the next state, activated there in place. */
    float *gr = r->cell == CELL_RNN ? w->hnew : w->gr;
    step_epilogue(r, io, dr->d, dr->b0, dr->rows, s, dr->reverse, w, gr, dr->gx0, dr->gx_row,
                  dr->gx_time, dr->gru_before, u);
    if (r->Projt) {         /* never with split units */
        rnnrt_gemm(dr->rows, S, H, w->tmp, H, r->Projt + (long)dr->d * H * S, S, 0.0f,
                   w->hnew, S);
    }
    /* Rows that did not update carry their state; write this step's outputs. */
    for (int bi = 0; bi < dr->rows; bi++) {
        int b = dr->b0 + bi;
        row_step rs = step_of(io, dr->reverse, b, s);
        float *hnew = w->hnew + (long)bi * S + s0;
        if (!rs.update) {
            memcpy(hnew, w->h + (long)bi * S + s0, sbytes);
        }
        if (io->y && rs.active) {
            float *y = io->y + y_offset(r, B, T, b, r->step_order ? s : rs.t, dr->d) + s0;
            if (rs.update || r->masked_carry) {
                memcpy(y, hnew, sbytes);
            } else {
                memset(y, 0, sbytes);
            }
        }
    }
}

/* Part `part` of step s, on units u. */
static void dir_step(const direction *dr, int s, int part, units u)
{
    const rnnrt_recurrent *r = dr->r;
    const rnnrt_recurrent_io *io = dr->io;
    const scratch w = scratch_at(dr, s);
    /* This share's R beyond L2: read ahead, and in alternating directions. */
    const int streamed = r_share_bytes(r, u) > l2_bytes, sp = s + io->parity;
    int pieces[8], n = step_pieces(dr, u, pieces), at = 0;
    for (int i = 0; i < n; i++) {
        if (pieces[i] == P_JOIN) {
            at++;
            continue;
        }
        if (at != part) {
            continue;
        }
        switch (pieces[i]) {
        case P_GEMM:
            if (dr->stepwise) {
                project_step(r, io, dr->b0, dr->rows, dr->reverse ? io->T - 1 - s : s, dr->d,
                             w.gx);
            }
            /* A GRU with the reset before the product does the candidate's product later. */
            recurrent_gemm(r, dr->d, dr->rows, w.h, 0, dr->gru_before ? 2 : r->G, u, u.ranged,
                           streamed, sp, r->cell == CELL_RNN ? w.hnew : w.gr);
            break;
        case P_RESET:
            gru_reset_state(r, io, dr->d, dr->b0, dr->rows, s, dr->reverse, &w, dr->gx0,
                            dr->gx_row, dr->gx_time, u);
            break;
        case P_GEMM_CANDIDATE:
            recurrent_gemm(r, dr->d, dr->rows, w.tmp, 2, 3, u, 0, streamed, sp, w.gr);
            break;
        default:
            step_finish(dr, s, &w, u);
            break;
        }
    }
}

/* The final states of units u into the outputs that want them. */
static void dir_end(const direction *dr, units u)
{
    const rnnrt_recurrent *r = dr->r;
    const rnnrt_recurrent_io *io = dr->io;
    const scratch w = scratch_at(dr, dr->steps);
    int B = io->B, H = r->H, S = r->S, d = dr->d;
    int s0 = slice0(u), c0 = u.u0;
    size_t sbytes = slice_bytes(dr, u), cbytes = sizeof(float) * (u.u1 - u.u0);
    for (int bi = 0; bi < dr->rows; bi++) {
        int b = dr->b0 + bi;
        const float *h = w.h + (long)bi * S + s0, *c = w.c + (long)bi * H + c0;
        if (io->hn) {
            memcpy(io->hn + state_offset(r, B, b, d, S) + s0, h, sbytes);
        }
        if (io->hlast) {
            memcpy(io->hlast + ((long)b * r->D + d) * S + s0, h, sbytes);
        }
        if (r->cell == CELL_LSTM && io->cn) {
            memcpy(io->cn + state_offset(r, B, b, d, H) + c0, c, cbytes);
        }
        if (r->cell == CELL_LSTM && io->clast) {
            memcpy(io->clast + ((long)b * r->D + d) * H + c0, c, cbytes);
        }
    }
}

/* Every unit, on one thread. */
static units all_units(const rnnrt_recurrent *r)
{
    units u = {0, r->H, 0, 0, 1, 0};
    return u;
}

/* Direction d of rows b0.. on one thread, from the scratch w as carved. */
static void run_direction(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d,
                          int b0, int rows, scratch w)
{
    const units u = all_units(r);
    direction dr = direction_of(r, io, d, b0, rows, w, 0);
    const int parts = step_parts(&dr, u);
    dir_begin(&dr, u);
    for (int s = 0; s < dr.steps; s++) {
        for (int part = 0; part < parts; part++) {
            dir_step(&dr, s, part, u);
        }
    }
    dir_end(&dr, u);
}


/* ---- how the threads of one call share the work ----
 * The work is cut into shares (workers.c runs them: the caller takes part and does whatever
 * no worker has claimed, so a share is done by whoever is free). The cut depends on the batch,
 * the length and the model's thread count only, never on the load, so a call computes the
 * same bits whoever runs its shares.
 * ROWS: each share is a block of batch rows that runs through every step and direction on its
 * own (no join per step), one a thread; a caller alone runs them as one block where that
 * changes no bit (rows_merge_exact). With fewer rows than threads (a batch-1 stream or
 * sequence), that would leave threads idle, so instead:
 * DIRECTIONS: a bidirectional layer's two directions are the two shares;
 * UNITS: the shares split every step's hidden units, each computing its columns of every gate
 * and of the input projection (so each reads only its part of the weights, from its own
 * core's cache when each thread keeps its share), and every step is a phase (two for a GRU
 * with the reset before the product). A projection mixes all units each step, so it stays on
 * ROWS.
 * RANGES: UNITS, except that the recurrent product is split into contiguous ranges of R's
 * panels, a phase of its own before the epilogue (product_by_ranges says where that pays). */
/* Unit shares are whole panels of 32 units (rnnrt/panels.py): a share reads only its
 * panels, and its parts of the gates and states start on 32-unit boundaries. */
/* Below this many bytes of recurrent weights a step takes a few microseconds, and a second
 * thread costs more than it saves: its wake-up at each call (a streaming step, T = 1), or
 * the join at each step (a sequence). Measured with benchmarks/compare.py A and B: a
 * step gains from 768 KiB (GRU-256) and loses at 256 KiB (LSTM-128, SimpleRNN-256); a
 * sequence gains at 256 KiB (LSTM-128) and not at 192 KiB (GRU-128). */
#define UNITS_MIN_BYTES_STEP (512L * 1024)
#define UNITS_MIN_BYTES_SEQUENCE (224L * 1024)
/* A block of rows is worth a share from this much work (~20 us on one core): less, and
 * waking a thread for it costs about what it saves. */
#define ROWS_SHARE_MIN_FLOPS 2.0e6
/* A block of rows this long (~4 ms on one core, above a scheduler's time slice under
 * load) runs on a busy core too (rnnrt_try_long_shares): a late worker then costs a share
 * of its slice against the block's work. */
#define ROWS_SHARE_LONG_FLOPS 6.0e8
/* One block a thread: two of 16 rows each (B = 64, 2 threads) ran scenario C at 1.72-1.79x
 * one thread, where one of 32 each runs it at ~1.9-2x (fewer panel reads a row). */
#define SHARES_PER_THREAD 1
/* Rows a block keeps at least when the batch allows: with fewer, each block's per-step
 * product reads R for few rows, and a caller running every block alone would read R more
 * often than one thread's single block does. */
#define ROWS_MIN_PER_SHARE 16

typedef struct {
    int how;
    int shares;     /* ROWS: blocks; DIRECTIONS: 2; UNITS, RANGES: the team */
    int per;        /* ROWS: rows per block */
} schedule;

static int clamp_threads(int n)
{
    return n < 1 ? 1 : n > RNNRT_MAX_THREADS ? RNNRT_MAX_THREADS : n;
}

/* The gate products of `rows` batch rows over T steps, every direction. */
static double rows_share_flops(const rnnrt_recurrent *r, int rows, int T)
{
    return 2.0 * rows * T * r->D * r->G * r->H * (double)(r->In + r->S);
}

static schedule schedule_of(const rnnrt_recurrent *r, int B, int T, int nthreads)
{
    const int nt = clamp_threads(nthreads);
    schedule sc = {SPLIT_ROWS, 1, B > 0 ? B : 1};
    if (B < 1 || nt == 1) {
        return sc;
    }
    if (nt > B) {
        /* Another split only where it uses more threads than rows would (rows need no
         * join); its thresholds were measured at batch 1. */
        long rbytes = sizeof(float) * (long)r->S * r->G * r->H;
        if (r->D == 2 && B == 1) {
            sc.how = SPLIT_DIRECTIONS;
            sc.shares = 2;
            return sc;
        }
        int most = (r->H + RNNRT_PANEL - 1) / RNNRT_PANEL;   /* one panel each at least */
        int shares = nt < most ? nt : most;
        long least = T == 1 ? UNITS_MIN_BYTES_STEP : UNITS_MIN_BYTES_SEQUENCE;
        if (r->D == 1 && !r->Projt && rbytes >= least && shares >= 2 * B) {
            sc.how = product_by_ranges(r, rbytes / shares) ? SPLIT_RANGES : SPLIT_UNITS;
            sc.shares = shares;
            return sc;
        }
    }
    double paid = rows_share_flops(r, B, T) / ROWS_SHARE_MIN_FLOPS;
    int want = nt * SHARES_PER_THREAD;
    want = want < B ? want : B;
    want = want < paid ? want : (int)paid;
    if (want < 2) {
        return sc;
    }
    int per = (B + want - 1) / want, most = (B + nt - 1) / nt;
    int least = ROWS_MIN_PER_SHARE < most ? ROWS_MIN_PER_SHARE : most;
    sc.per = per > least ? per : least;
    sc.shares = (B + sc.per - 1) / sc.per;
    return sc;
}

int rnnrt_recurrent_threads(const rnnrt_recurrent *r, int B, int T, int nthreads, int *how)
{
    schedule sc = schedule_of(r, B, T, nthreads);
    *how = sc.how;
    return sc.shares < nthreads ? sc.shares : clamp_threads(nthreads);
}

long rnnrt_recurrent_work(const rnnrt_recurrent *r, int B, int T, int nthreads)
{
    schedule sc = schedule_of(r, B, T, nthreads);
    switch (sc.how) {
    case SPLIT_DIRECTIONS: return 2 * block_work_floats(r, B, T);
    case SPLIT_UNITS:
    case SPLIT_RANGES: return block_work_floats(r, B, T);  /* shared by all */
    default: return sc.shares * block_work_floats(r, sc.per, T);
    }
}

/* A layer's call, as the shares of rnnrt_run_shares see it. */
typedef struct {
    const rnnrt_recurrent *r;
    const rnnrt_recurrent_io *io;
    schedule sc;
    direction dr;               /* UNITS, RANGES: the one direction all shares run */
    int parts;                  /* UNITS, RANGES: phases a step takes */
} layer_call;

/* ROWS: block k of batch rows, for all steps and directions. */
static void rows_share(void *ctx, int phase, int k, int slot)
{
    const layer_call *c = ctx;
    const rnnrt_recurrent *r = c->r;
    const rnnrt_recurrent_io *io = c->io;
    int per = c->sc.per, b0 = k * per;
    int rows = io->B - b0 < per ? io->B - b0 : per;
    if (rows > 0) {
        scratch w = carve(r, io->work + k * block_work_floats(r, per, io->T), rows, io->T);
        for (int d = 0; d < r->D; d++) {
            run_direction(r, io, d, b0, rows, w);
        }
    }
    (void)phase, (void)slot;
}

/* DIRECTIONS: direction k on all rows, in scratch of its own. */
static void direction_share(void *ctx, int phase, int k, int slot)
{
    const layer_call *c = ctx;
    const rnnrt_recurrent *r = c->r;
    const rnnrt_recurrent_io *io = c->io;
    long stride = block_work_floats(r, io->B, io->T);
    run_direction(r, io, k, 0, io->B, carve(r, io->work + k * stride, io->B, io->T));
    (void)phase, (void)slot;
}

/* UNITS, RANGES: share k's units at phase `phase`: begin, then a part of a step. A share
 * ends where it finishes its last step: its final state is its own units, which no other
 * share writes, so no phase is needed between the two. */
static void units_share(void *ctx, int phase, int k, int slot)
{
    const layer_call *c = ctx;
    int H = c->r->H, panels = (H + RNNRT_PANEL - 1) / RNNRT_PANEL, team = c->sc.shares;
    units u = {k * panels / team * RNNRT_PANEL, (k + 1) * panels / team * RNNRT_PANEL, 1, k,
               team, c->sc.how == SPLIT_RANGES};
    u.u1 = u.u1 < H ? u.u1 : H;     /* the last share ends with the last unit */
    if (phase == 0) {
        dir_begin(&c->dr, u);
    } else {
        dir_step(&c->dr, (phase - 1) / c->parts, (phase - 1) % c->parts, u);
    }
    if (phase == c->dr.steps * c->parts) {
        dir_end(&c->dr, u);
    }
    (void)slot;
}

/* Whether a caller alone may run ROWS's blocks as one block of all B rows: the same bits
 * when every block has enough rows for the kernel to compute each row alike
 * (rnnrt_packed_exact_rows; the last block is the smallest), and faster (a block of 16
 * rows read R from L2 once each, and each panel for 2 row tiles instead of 6: a pool tick of
 * 64 LSTM-256 streams took 1.14x the one-block time). Every other product of a block
 * (input projections of all steps, of a step, of a row's steps) then has at least as many
 * rows too, or the same (a row's T). */
static int rows_merge_exact(const schedule *sc, int B)
{
    int exact = rnnrt_packed_exact_rows(), last = B - (sc->shares - 1) * sc->per;
    return sc->per >= exact && last >= exact;
}

/* A layer's directions, one after another, on this thread: the one-thread form of the
 * DIRECTIONS, UNITS and RANGES splits, which compute the same bits (a share's units are
 * whole panels, so every unit goes through the same vector lanes either way). */
static void run_whole(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io)
{
    scratch w = carve(r, io->work, io->B, io->T);
    for (int d = 0; d < r->D; d++) {
        run_direction(r, io, d, 0, io->B, w);
    }
}

void rnnrt_recurrent_run(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io)
{
    if (io->B == 0 || io->T == 0) {
        return;
    }
    layer_call c = {r, io, schedule_of(r, io->B, io->T, io->nthreads)};
    switch (c.sc.how) {
    case SPLIT_DIRECTIONS:
        if (!rnnrt_try_shares(io->nthreads, 1, 2, direction_share, &c)) {
            run_whole(r, io);
        }
        return;
    case SPLIT_UNITS:
    case SPLIT_RANGES: {
        c.dr = direction_of(r, io, 0, 0, io->B, carve(r, io->work, io->B, io->T), 1);
        units first = {0, RNNRT_PANEL, 1, 0, c.sc.shares, c.sc.how == SPLIT_RANGES};
        c.parts = step_parts(&c.dr, first);
        if (!rnnrt_try_shares(io->nthreads, c.dr.steps * c.parts + 1, c.sc.shares,
                              units_share, &c)) {
            run_whole(r, io);
        }
        return;
    }
    default:
        if (c.sc.shares > 1 &&
                (rows_share_flops(r, c.sc.per, io->T) >= ROWS_SHARE_LONG_FLOPS
                     ? rnnrt_try_long_shares(io->nthreads, c.sc.shares, rows_share, &c)
                     : rnnrt_try_shares(io->nthreads, 1, c.sc.shares, rows_share, &c))) {
            return;
        }
        if (c.sc.shares > 1 && !rows_merge_exact(&c.sc, io->B)) {
            for (int k = 0; k < c.sc.shares; k++) {     /* alone, block by block */
                rows_share(&c, 0, k, 0);
            }
            return;
        }
        c.sc.per = io->B;           /* alone: the blocks as one, faster, the same bits */
        rows_share(&c, 0, 0, 0);
        return;
    }
}
