/* rnnrt C kernels: the execution plan, its ops, and the kernels behind them.
 * Kernels know only the IR (rnnrt/ir.py) in its packed form (rnnrt/packing.py). */
#ifndef RNNRT_H
#define RNNRT_H

#include <stdint.h>
#include <stddef.h>

/* Hot loops are compiled for x86-64-v4 (AVX-512 with FMA), v3 (AVX2 with FMA) and the
 * baseline, and the CPU picks at load ("avx512f" alone would leave FMA out); no
 * -march=native. Other compilers and CPUs get the plain loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DISPATCH
#endif

/* ---- activations (activations.c) ---- */
enum rnnrt_act_kind {
    ACT_LINEAR = 0, ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_AFFINE, ACT_LEAKY_RELU,
    ACT_THRESHOLDED_RELU, ACT_SCALED_TANH, ACT_HARD_SIGMOID, ACT_ELU, ACT_SOFTSIGN,
    ACT_SOFTPLUS, ACT_RELU6, ACT_SELU, ACT_SILU, ACT_EXPONENTIAL, ACT_GELU, ACT_GELU_TANH,
    ACT_MISH, ACT_HARD_SILU, ACT_LOG_SIGMOID, ACT_TANH_SHRINK,
    ACT_SOFTMAX, ACT_LOG_SOFTMAX          /* row-wise: over the last axis */
};

typedef struct {
    int kind;
    float alpha, beta;
} rnnrt_act;

/* x[i] = act(x[i]) for i < n (elementwise kinds only). */
void rnnrt_act_apply(const rnnrt_act *a, float *x, long n);
/* softmax / log_softmax of each of `rows` rows of length n, in place. */
void rnnrt_act_rows(const rnnrt_act *a, float *x, long rows, long n);

/* ---- BLAS seam (blas.c): row-major C = alpha*A@B + beta*C ---- */
void rnnrt_gemm(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);
void rnnrt_blas_single_thread(void);

/* ---- threads (workers.c, cpu_load.c) ---- */
#define RNNRT_MAX_THREADS 64         /* threads one call may use, the caller included */
#define RNNRT_MAX_SHARES 256         /* shares of one phase */
/* Runs fn(ctx, phase, share, slot) once for every phase < n_phases and share < n_shares: the
 * shares of a phase in any order, on any of up to `threads` threads (slot 0 is the caller,
 * which takes part and runs whatever no worker has claimed), and a phase's only once every
 * share of the one before is done. Returns when all are done. workers.c explains. */
void rnnrt_run_shares(int threads, int n_phases, int n_shares,
                      void (*fn)(void *ctx, int phase, int share, int slot), void *ctx);
/* The same, when a worker can take part now; else runs nothing and returns 0, so that the
 * caller can run a one-thread form of the work instead (one that computes the same bits). */
int rnnrt_try_shares(int threads, int n_phases, int n_shares,
                     void (*fn)(void *ctx, int phase, int share, int slot), void *ctx);
/* The same for one phase of shares long enough to be worth busy cores too: the workers
 * invited do not depend on the load. */
int rnnrt_try_long_shares(int threads, int n_shares,
                          void (*fn)(void *ctx, int phase, int share, int slot), void *ctx);
/* Cores of this process's affinity mask that other processes leave free now (>= 1). */
int rnnrt_free_cores(void);
void rnnrt_free_cores_fix(int n);    /* tests: n > 0 fixes rnnrt_free_cores; 0 measures */
int rnnrt_workers_awake(void);       /* workers not asleep (running or spinning) */
typedef struct {
    int workers, awake;
    unsigned long long jobs, jobs_alone, shares_by_workers;
} rnnrt_workers_info;
void rnnrt_workers_stats(rnnrt_workers_info *info);
void rnnrt_workers_hold(int hold);   /* tests: 1 = workers take no shares (never arrive) */

/* ---- recurrent layer (recurrent.c) ---- */
enum { CELL_RNN = 0, CELL_LSTM = 1, CELL_GRU = 2 };
enum { Y_BTF = 0, Y_TBF = 1, Y_TDBH = 2 };      /* "btdh" is Y_BTF */
enum { STATE_DBH = 0, STATE_BDH = 1 };

typedef struct {
    int cell, D, G, H, In, S;        /* In: input size; S: state size (proj, or H) */
    int lbr, input_forget, reverse_only; /* reverse_only: the single direction runs backwards */
    int time_major, y_layout, state_layout, step_order, masked_carry;
    int empty_zero;                  /* a row of length 0 ends in zeros, not its initial state */
    float clip;                      /* 0: no clip */
    rnnrt_act act[2][3];             /* per direction f, g, h */
    const float *Wp;                 /* (D, G, P, I, 32) gate panels, P = ceil(H/32): panels.py */
    const float *Rp;                 /* (D, G, P, S, 32) */
    const float *b;                  /* (D, G*H): input + recurrent bias where they add */
    const float *rbh;                /* (D, H) GRU linear_before_reset recurrent h bias, or NULL */
    const float *P;                  /* (D, 3H) peepholes i, o, f, or NULL */
    const float *Projt;              /* (D, H, S) or NULL */
    /* Constant initial states / lengths, used when no tensor gives them (NULL: none). */
    const float *h0v, *c0v;          /* state layout, with the model's fixed batch */
    const int32_t *lensv;            /* (B,) */
} rnnrt_recurrent;

typedef struct {
    int B, T;
    const float *x;                  /* (B,T,I) or (T,B,I) */
    const int32_t *lens;             /* (B,) or NULL */
    const uint8_t *mask;             /* (B,T) or NULL */
    const float *h0, *c0;            /* state layout, or NULL (zeros) */
    float *y;                        /* y layout, or NULL */
    float *hn, *cn;                  /* state layout, or NULL; may alias h0 / c0 */
    float *hlast, *clast;            /* (B, D*S) / (B, D*H), or NULL */
    float *work;                     /* rnnrt_recurrent_work(r, B, T, nthreads) floats */
    int nthreads;
    int parity;                      /* 1: step 0 reads the weights as an odd step does */
} rnnrt_recurrent_io;

long rnnrt_recurrent_work(const rnnrt_recurrent *r, int B, int T, int nthreads);
/* How a call's threads share a layer (recurrent.c explains): the threads used, and *how. */
enum { SPLIT_ROWS, SPLIT_DIRECTIONS, SPLIT_UNITS, SPLIT_RANGES };
int rnnrt_recurrent_threads(const rnnrt_recurrent *r, int B, int T, int nthreads, int *how);
long rnnrt_l2_bytes(void);           /* the L2 size the schedules plan with */
void rnnrt_recurrent_run(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io);

/* ---- one step of a cell on one row (cells.c) ---- */
/* The hidden units [u0, u1) of a row, direction d: pre holds the step's recurrent products
 * (G*H, gate-major; a SimpleRNN's become its new state in place), gx the row's input
 * projections at the step (same layout). LSTM: updates c and writes the output (o * h(c))
 * to out; c and out are the row's whole vectors. GRU: the gates z, r in place, then the
 * candidate and the new state hnew from h; pre's candidate part holds Rh h
 * (linear_before_reset) or Rh (r*h). */
void rnnrt_rnn_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, int u0,
                   int u1);
void rnnrt_lstm_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, float *c,
                    float *out, int u0, int u1);
void rnnrt_gru_gates_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx, int u0,
                         int u1);
void rnnrt_gru_state_row(const rnnrt_recurrent *r, int d, float *pre, const float *gx,
                         const float *h, float *hnew, int u0, int u1);

/* ---- row-wise layers (layers.c); `rows` = product of all axes but the last ---- */
void rnnrt_dense(const float *x, long rows, int n_in, const float *kernel, const float *bias,
                 int n_out, const rnnrt_act *act, float *out, int nthreads);
/* Returns the index of the first id out of [0, vocab), or -1 when all are valid. */
long rnnrt_embedding(const int64_t *ids, long n, const float *table, long vocab, int dim,
                     float *out, uint8_t *mask);
void rnnrt_masking(const float *x, long rows, int n, float mask_value, float *out,
                   uint8_t *mask);
void rnnrt_timestep(const float *x, int B, int T, int n, int index, int time_major,
                    float *out);
void rnnrt_feature_slice(const float *x, long rows, int n, int start, int stop, float *out);
void rnnrt_merge(const float *x, long rows, int n, int parts, int mode, float *out);
/* x seen as (outer, x_len, inner): copies x[:, start:start+n, :] into out seen as
 * (outer, out_len, inner) at out[:, out_at:out_at+n, :] (Slice, and each part of Concat). */
void rnnrt_axis_copy(const float *x, long outer, long x_len, long inner, long start, long n,
                     float *out, long out_len, long out_at);
enum { MERGE_SUM = 0, MERGE_MUL = 1, MERGE_AVE = 2 };

/* ---- execution plan (plan.c): one call runs every op in order ---- */
enum rnnrt_op_kind {
    OP_RECURRENT = 0, OP_EMBEDDING, OP_MASKING, OP_DENSE, OP_ACTIVATION, OP_TIMESTEP,
    OP_FEATURE_SLICE, OP_MERGE, OP_SLICE, OP_CONCAT
};

#define RNNRT_MAX_IO 5
#define RNNRT_MAX_W 4                /* generic weight slots of an op */
#define RNNRT_MAX_IV 12              /* generic integer attributes */
#define RNNRT_MAX_FV 4               /* generic float attributes */

typedef struct {
    int kind;
    int in[RNNRT_MAX_IO];            /* slot indices, -1 when absent */
    int out[RNNRT_MAX_IO];
    int tsym;                        /* which time length the op runs over, -1: none */
    long rows_mult;                  /* rows = B * (tsym >= 0 ? T[tsym] : 1) * rows_mult */
    int n_in, n_out;                 /* feature sizes (last axis) */
    rnnrt_recurrent rec;
    rnnrt_act act;
    const float *kernel, *bias, *table;
    long vocab;
    float mask_value;
    int index, time_major, start, stop, parts, mode;
    int stream_state;                /* recurrent: index into the stream state arrays, or -1 */
    /* Slice / Concat: the axes before and after the sliced axis, each a count of
     * (batch if *_b) * (T[*_t] if *_t >= 0) * *_mult elements; axis_len per input. */
    int outer_b, outer_t, inner_b, inner_t;
    long outer_mult, inner_mult;
    int axis_len[RNNRT_MAX_IO];
    /* Kinds added since carry their weights and attributes here, by index: each kind's C
     * file names the indices it reads (an enum beside its kernel), and its layer module
     * (rnnrt/layers/) fills them in the same order. */
    const float *w[RNNRT_MAX_W];
    long iv[RNNRT_MAX_IV];
    float fv[RNNRT_MAX_FV];
} rnnrt_op;

typedef struct {
    int B, nthreads;
    const int *T;                    /* time lengths, one per time symbol of the inputs */
    void **slots;                    /* tensor buffers by slot index */
    float *work;                     /* rnnrt_plan_work_floats(...) */
    float **state_h, **state_c;      /* stream states (D=1, B, S) / (B, H), or NULL */
    long bad_id_op;                  /* out: op index of an out-of-range token id, else -1 */
    unsigned long runs;              /* plan runs made with this call (a stream's steps) */
} rnnrt_call;

long rnnrt_plan_work_floats(const rnnrt_op *ops, int n_ops, int B, const int *T, int nthreads);
void rnnrt_plan_run(const rnnrt_op *ops, int n_ops, rnnrt_call *call);

/* ---- stream pool (pool.c) ---- */
/* Steps n streams of a pool at once. rows[i]: the store row of the i-th stream (valid,
 * distinct). store_h[k] / store_c[k]: the (capacity, S) / (capacity, H) state rows of the
 * recurrent op with stream_state k (store_c[k] is read only for an LSTM). call->state_h[k] /
 * state_c[k] are (n, S) / (n, H) blocks the rows are gathered into; the plan then runs once
 * with B = n (set here) and the new states are scattered back, unless a token id was out of
 * range (call->bad_id_op >= 0), which leaves every stream as it was. */
void rnnrt_pool_step(const rnnrt_op *ops, int n_ops, rnnrt_call *call, float *const *store_h,
                     float *const *store_c, const int64_t *rows, int n);

/* ---- generation (generate.c) ---- */
/* xoshiro256** seeded through splitmix64: the same numbers for a seed on every platform. */
typedef struct {
    uint64_t s[4];
} rnnrt_rng;

void rnnrt_rng_seed(rnnrt_rng *g, uint64_t seed);
uint64_t rnnrt_rng_next(rnnrt_rng *g);
double rnnrt_rng_uniform(rnnrt_rng *g);     /* in [0, 1), 53 random bits */

enum { GEN_TOKENS = 0, GEN_FORECAST = 1 };
enum { RNNRT_GEN_BAD_ID = -1, RNNRT_GEN_NO_SCORE = -2 };

typedef struct {
    int mode;                        /* GEN_TOKENS or GEN_FORECAST */
    int in_slot, out_slot;           /* the step input and the first output (B = 1, T = 1) */
    int width;                       /* tokens: V, the output's scores; forecast: F */
    int probs;                       /* tokens: the scores are probabilities, else logits */
    double temperature;              /* tokens: 0 = greedy */
    int top_k;                       /* tokens: 0 = all V */
    int64_t stop;                    /* tokens: stop after this id; -1: never */
    uint64_t seed;
    const void *prompt;              /* tokens: int64 (n_prompt,); forecast: float (n_prompt, F) */
    long n_prompt;
    long steps;
    void *result;                    /* tokens: int64 (steps,); forecast: float (steps, F) */
    double *scratch;                 /* tokens: 2 * V doubles */
    long failed_step;                /* out: the step whose scores were unusable, else -1 */
} rnnrt_generate_args;

/* Runs the prompt, then `steps` generated steps, with the stream state in call->state_h /
 * state_c (B = 1, set here; T = 1 for every time symbol). Returns how many steps were
 * generated (fewer than `steps` when the stop id came; it is included), RNNRT_GEN_BAD_ID when
 * the plan met an out-of-range id, RNNRT_GEN_NO_SCORE when no token had a usable score. */
long rnnrt_generate(const rnnrt_op *ops, int n_ops, rnnrt_call *call, rnnrt_generate_args *g);

/* ---- packed GEMM (packed_gemm.c) ---- */
/* For a constant B (a gate's weights, stored packed: rnnrt/panels.py), multiplied with no
 * repacking.
 * Packed layout: panel p holds columns [32p, 32p + 32) of B as k rows of 32 contiguous floats
 * (zeros past column n); panels follow one another, panel p at packed + p * k * 32. The
 * buffer is best 64-byte aligned (any alignment is safe). */
#define RNNRT_PANEL 32                       /* columns per packed panel */
/* c[m x (n1-n0)] = a[m x k] @ B[:, n0:n1] (+ beta*c), B given packed; n0 % RNNRT_PANEL == 0,
 * n1 <= n (n1 need not be a panel multiple). c points at column n0's output (ldc its stride).
 * beta == 0 never reads c (workspaces may hold NaN). Any m >= 1. */
void rnnrt_gemm_packed(int m, int n0, int n1, int k, const float *a, int lda,
                       const float *packed, float beta, float *c, int ldc);
/* The same product, for weights that do not stay in L2 from one call to the next (a wide
 * layer's recurrent matrix, read once a step): with few rows it asks for the weights ahead.
 * backward: the panels in descending order. Calls that alternate directions over the same
 * weights start on what the previous one read last, still in L2; in one direction every
 * call would find L2 holding only what it reads last. */
void rnnrt_gemm_packed_streamed(int m, int n0, int n1, int k, const float *a, int lda,
                                const float *packed, float beta, float *c, int ldc,
                                int backward);
/* The instruction set the kernel runs with: "avx512", "avx2" or "portable". */
const char *rnnrt_packed_isa(void);
/* The fewest rows m from which every product of m or more rows computes each row with the
 * same arithmetic, so that splitting such rows into such blocks changes no bit. */
int rnnrt_packed_exact_rows(void);
/* ---- end packed GEMM ---- */

#endif
