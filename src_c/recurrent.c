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
#include <omp.h>
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
    int split;      /* other threads own the other units: join them after each step */
    int k, team;    /* this thread's index among the `team` that split the units */
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

/* Wait until every thread of the step has written its units. */
static inline void join_units(units u)
{
    if (u.split) {
        #pragma omp barrier
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

static void run_direction(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d,
                          int b0, int rows, scratch *w, units u)
{
    int B = io->B, T = io->T, H = r->H, S = r->S, GH = r->G * H, N = r->D * GH;
    int reverse = (d == 1) || r->reverse_only;
    int stepwise = !u.split && stepwise_inputs(io, reverse, rows);
    if (!stepwise) {
        project_inputs(r, io, b0, rows, w->gx, d, u);
    }
    /* Row bi's input projections at time t: gx0 + bi * gx_row + t * gx_time. */
    const float *gx0 = w->gx + d * GH;
    const long gx_row = stepwise ? N : (long)T * N, gx_time = stepwise ? 0 : N;
    /* This thread's share of R beyond L2: read ahead, and in alternating directions. */
    const int streamed = r_share_bytes(r, u) > l2_bytes;
    /* This thread's slice of each state vector: its units (S == H when units are split,
     * since a projection mixes all units), and of the cell state. */
    int s0 = u.split ? u.u0 : 0, sn = u.split ? u.u1 - u.u0 : S;
    int c0 = u.u0, cn = u.u1 - u.u0;
    size_t sbytes = sizeof(float) * sn, cbytes = sizeof(float) * cn;

    /* Initial state; lengths bound the number of steps this block runs. A row of length 0
     * never steps: its final state is its initial one, or zeros (empty_zero). */
    int steps = 0;
    for (int bi = 0; bi < rows; bi++) {
        int b = b0 + bi;
        int L = io->lens ? io->lens[b] : T;
        int from_zero = r->empty_zero && L == 0;
        steps = L > steps ? L : steps;
        float *h = w->h + (long)bi * S + s0;
        if (io->h0 && !from_zero) {
            memcpy(h, io->h0 + state_offset(r, B, b, d, S) + s0, sbytes);
        } else {
            memset(h, 0, sbytes);
        }
        if (r->cell == CELL_LSTM) {
            float *c = w->c + (long)bi * H + c0;
            if (io->c0 && !from_zero) {
                memcpy(c, io->c0 + state_offset(r, B, b, d, H) + c0, cbytes);
            } else {
                memset(c, 0, cbytes);
            }
        }
        /* Outputs at steps a short row never reaches are zero. */
        if (io->y && io->lens) {
            for (int t = L < 0 ? 0 : L; t < T; t++) {
                memset(io->y + y_offset(r, B, T, b, t, d) + s0, 0, sbytes);
            }
        }
    }
    steps = steps > T ? T : steps;
    join_units(u);              /* step 0 reads every unit of h */

    /* A GRU with the reset before the product does the candidate's product after r. */
    const int gru_before = r->cell == CELL_GRU && !r->lbr;
    for (int s = 0; s < steps; s++) {
        if (stepwise) {
            project_step(r, io, b0, rows, reverse ? T - 1 - s : s, d, w->gx);
        }
        /* Recurrent GEMM; GRU with reset before the matmul does its h part later. */
        /* A SimpleRNN's one gate has the state's shape (G * H == S): its pre-activations go
         * straight into the next state, activated there in place. */
        float *gr = r->cell == CELL_RNN ? w->hnew : w->gr;
        recurrent_gemm(r, d, rows, w->h, 0, gru_before ? 2 : r->G, u, u.ranged, streamed,
                       s + io->parity, gr);
        if (u.ranged) {
            join_units(u);      /* the epilogue reads gates of its units others computed */
        }
        if (gru_before) {
            gru_reset_state(r, io, d, b0, rows, s, reverse, w, gx0, gx_row, gx_time, u);
            join_units(u);      /* the candidate's product reads every unit of r*h */
            recurrent_gemm(r, d, rows, w->tmp, 2, 3, u, 0, streamed, s + io->parity, w->gr);
        }
        step_epilogue(r, io, d, b0, rows, s, reverse, w, gr, gx0, gx_row, gx_time, gru_before,
                      u);
        if (r->Projt) {         /* never with split units */
            rnnrt_gemm(rows, S, H, w->tmp, H, r->Projt + (long)d * H * S, S, 0.0f, w->hnew, S);
        }
        /* Rows that did not update carry their state; write this step's outputs. */
        for (int bi = 0; bi < rows; bi++) {
            int b = b0 + bi;
            row_step rs = step_of(io, reverse, b, s);
            float *hnew = w->hnew + (long)bi * S + s0;
            if (!rs.update) {
                memcpy(hnew, w->h + (long)bi * S + s0, sbytes);
            }
            if (io->y && rs.active) {
                float *y = io->y + y_offset(r, B, T, b, r->step_order ? s : rs.t, d) + s0;
                if (rs.update || r->masked_carry) {
                    memcpy(y, hnew, sbytes);
                } else {
                    memset(y, 0, sbytes);
                }
            }
        }
        float *swap = w->h;
        w->h = w->hnew;
        w->hnew = swap;
        join_units(u);          /* the next step reads every unit of the new h */
    }

    for (int bi = 0; bi < rows; bi++) {
        int b = b0 + bi;
        const float *h = w->h + (long)bi * S + s0, *c = w->c + (long)bi * H + c0;
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


/* ---- how the threads of one call share the work ----
 * ROWS: each thread runs a block of batch rows through every step and direction on its own
 * (no barrier per step). With fewer rows than threads (a batch-1 stream or sequence), that
 * would leave threads idle, so instead:
 * DIRECTIONS: a bidirectional layer runs its two directions on two threads, each alone;
 * UNITS: the threads split every step's hidden units, each computing its columns of every
 * gate and of the input projection (so each reads only its part of the weights, from its
 * own core's cache), and join once per step (twice for a GRU with the reset before the
 * product). A projection mixes all units each step, so it stays on ROWS.
 * RANGES: UNITS, except that the recurrent product is split into contiguous ranges of R's
 * panels, joined before the epilogue (product_by_ranges says where that pays). */
/* Unit shares are whole panels of 32 units (rnnrt/panels.py): a thread reads only its
 * panels, and its shares of the gates and states start on 32-unit boundaries. */
/* Below this many bytes of recurrent weights a step takes a few microseconds, and a second
 * thread costs more than it saves: its wake-up at each call (a streaming step, T = 1), or
 * the barrier at each step (a sequence). Measured with benchmarks/compare.py A and B: a
 * step gains from 768 KiB (GRU-256) and loses at 256 KiB (LSTM-128, SimpleRNN-256); a
 * sequence gains at 256 KiB (LSTM-128) and not at 192 KiB (GRU-128). */
#define UNITS_MIN_BYTES_STEP (512L * 1024)
#define UNITS_MIN_BYTES_SEQUENCE (224L * 1024)

typedef struct {
    int how, nt;
    int per;        /* ROWS: rows per thread */
} schedule;

static schedule schedule_of(const rnnrt_recurrent *r, int B, int T, int nthreads)
{
    schedule sc = {SPLIT_ROWS, nthreads < 1 ? 1 : nthreads, 0};
    if (B < 1) {
        sc.nt = 1;
        return sc;
    }
    if (sc.nt > B) {
        /* Another split only where it uses more threads than rows would (rows need no
         * barrier); its thresholds were measured at batch 1. */
        long rbytes = sizeof(float) * (long)r->S * r->G * r->H;
        if (r->D == 2 && B == 1) {
            sc.how = SPLIT_DIRECTIONS;
            sc.nt = 2;
            return sc;
        }
        int most = (r->H + RNNRT_PANEL - 1) / RNNRT_PANEL;   /* one panel each at least */
        int shares = sc.nt < most ? sc.nt : most;
        long least = T == 1 ? UNITS_MIN_BYTES_STEP : UNITS_MIN_BYTES_SEQUENCE;
        if (r->D == 1 && !r->Projt && rbytes >= least && shares >= 2 * B) {
            sc.how = product_by_ranges(r, rbytes / shares) ? SPLIT_RANGES : SPLIT_UNITS;
            sc.nt = shares;
            return sc;
        }
        sc.nt = B;
    }
    sc.per = (B + sc.nt - 1) / sc.nt;
    sc.nt = (B + sc.per - 1) / sc.per;
    return sc;
}

int rnnrt_recurrent_threads(const rnnrt_recurrent *r, int B, int T, int nthreads, int *how)
{
    schedule sc = schedule_of(r, B, T, nthreads);
    *how = sc.how;
    return sc.nt;
}

long rnnrt_recurrent_work(const rnnrt_recurrent *r, int B, int T, int nthreads)
{
    schedule sc = schedule_of(r, B, T, nthreads);
    switch (sc.how) {
    case SPLIT_DIRECTIONS: return 2 * block_work_floats(r, B, T);
    case SPLIT_UNITS:
    case SPLIT_RANGES: return block_work_floats(r, B, T);  /* shared by all */
    default: return sc.nt * block_work_floats(r, sc.per, T);
    }
}

/* Every unit, on one thread. */
static units all_units(const rnnrt_recurrent *r)
{
    units u = {0, r->H, 0, 0, 1, 0};
    return u;
}

/* Directions d0, d0 + step, ... of rows b0.. in the scratch w, each from w as carved
 * (run_direction swaps its h and hnew once a step). */
static void run_each_direction(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int d0,
                               int step, int b0, int rows, scratch w, units u)
{
    for (int d = d0; d < r->D; d += step) {
        scratch wd = w;
        run_direction(r, io, d, b0, rows, &wd, u);
    }
}

/* Thread k's block of batch rows, for all steps and directions. */
static void run_block(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int k, int per)
{
    long stride = block_work_floats(r, per, io->T);
    int b0 = k * per;
    int rows = io->B - b0 < per ? io->B - b0 : per;
    if (rows > 0) {
        scratch w = carve(r, io->work + k * stride, rows, io->T);
        run_each_direction(r, io, 0, 1, b0, rows, w, all_units(r));
    }
}

/* Direction d (of a team of `team` threads taking directions in turn) on all rows. */
static void run_directions(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int k,
                           int team)
{
    long stride = block_work_floats(r, io->B, io->T);
    scratch w = carve(r, io->work + k * stride, io->B, io->T);
    run_each_direction(r, io, k, team, 0, io->B, w, all_units(r));
}

/* Thread k of `team` computes its share of the units of every step, on all rows. */
static void run_units(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io, int k, int team,
                      int ranged)
{
    int H = r->H, panels = (H + RNNRT_PANEL - 1) / RNNRT_PANEL;
    units u = {k * panels / team * RNNRT_PANEL, (k + 1) * panels / team * RNNRT_PANEL, 1, k,
               team, ranged};
    u.u1 = u.u1 < H ? u.u1 : H;     /* the last share ends with the last unit */
    run_each_direction(r, io, 0, 1, 0, io->B, carve(r, io->work, io->B, io->T), u);
}

void rnnrt_recurrent_run(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io)
{
    if (io->B == 0 || io->T == 0) {
        return;
    }
    schedule sc = schedule_of(r, io->B, io->T, io->nthreads);
    if (sc.nt == 1) {           /* no parallel region: it costs a streaming step ~0.5 us */
        run_block(r, io, 0, sc.per);
        return;
    }
    if (sc.how == SPLIT_ROWS) {
        #pragma omp parallel for num_threads(sc.nt) schedule(static, 1)
        for (int k = 0; k < sc.nt; k++) {
            run_block(r, io, k, sc.per);
        }
        return;
    }
    /* The team may be smaller than asked (OMP_THREAD_LIMIT, nesting): shares follow it. */
    #pragma omp parallel num_threads(sc.nt)
    {
        int k = omp_get_thread_num(), team = omp_get_num_threads();
        if (sc.how == SPLIT_DIRECTIONS) {
            run_directions(r, io, k, team);
        } else {
            run_units(r, io, k, team, sc.how == SPLIT_RANGES);
        }
    }
}
