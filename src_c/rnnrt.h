/* rnnrt C kernels: the execution plan, its ops, and the kernels behind them.
 * Kernels know only the IR (rnnrt/ir.py) in its packed form (rnnrt/packing.py). */
#ifndef RNNRT_H
#define RNNRT_H

#include <stdint.h>
#include <stddef.h>

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

/* ---- recurrent layer (recurrent.c) ---- */
enum { CELL_RNN = 0, CELL_LSTM = 1, CELL_GRU = 2 };
enum { Y_BTF = 0, Y_TBF = 1, Y_TDBH = 2 };      /* "btdh" is Y_BTF */
enum { STATE_DBH = 0, STATE_BDH = 1 };

typedef struct {
    int cell, D, G, H, In, S;        /* In: input size; S: state size (proj, or H) */
    int lbr, input_forget, reverse_only; /* reverse_only: the single direction runs backwards */
    int time_major, y_layout, state_layout, step_order, masked_carry;
    float clip;                      /* 0: no clip */
    rnnrt_act act[2][3];             /* per direction f, g, h */
    const float *Wt;                 /* (I, D*G*H) */
    const float *Rt;                 /* (D, S, G*H) */
    const float *b;                  /* (D, G*H): input + recurrent bias where they add */
    const float *rbh;                /* (D, H) GRU linear_before_reset recurrent h bias, or NULL */
    const float *P;                  /* (D, 3H) peepholes i, o, f, or NULL */
    const float *Projt;              /* (D, H, S) or NULL */
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
    float *work;                     /* rnnrt_recurrent_work_floats(...) * nthreads */
    int nthreads;
} rnnrt_recurrent_io;

long rnnrt_recurrent_work_floats(const rnnrt_recurrent *r, int rows, int T);
void rnnrt_recurrent_run(const rnnrt_recurrent *r, const rnnrt_recurrent_io *io);

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
enum { MERGE_SUM = 0, MERGE_MUL = 1, MERGE_AVE = 2 };

/* ---- execution plan (plan.c): one call runs every op in order ---- */
enum rnnrt_op_kind {
    OP_RECURRENT = 0, OP_EMBEDDING, OP_MASKING, OP_DENSE, OP_ACTIVATION, OP_TIMESTEP,
    OP_FEATURE_SLICE, OP_MERGE
};

#define RNNRT_MAX_IO 5

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
} rnnrt_op;

typedef struct {
    int B, nthreads;
    const int *T;                    /* time lengths, one per time symbol of the inputs */
    void **slots;                    /* tensor buffers by slot index */
    float *work;                     /* rnnrt_plan_work_floats(...) */
    float **state_h, **state_c;      /* stream states (D=1, B, S) / (B, H), or NULL */
    long bad_id_op;                  /* out: op index of an out-of-range token id, else -1 */
} rnnrt_call;

long rnnrt_plan_work_floats(const rnnrt_op *ops, int n_ops, int B, const int *T, int nthreads);
void rnnrt_plan_run(const rnnrt_op *ops, int n_ops, rnnrt_call *call);

#endif
