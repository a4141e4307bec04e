/* Single-precision GEMM against a B packed once: every gate product of a recurrent layer
 * (x @ W and h @ R).
 *
 * The weights are constant for a model's life, while general-purpose sgemm repacks B on
 * every call (every time step). The converter stores them in the order the micro-kernel
 * reads them (rnnrt/panels.py), and rnnrt_gemm_packed multiplies with no packing at all.
 * (The kernel's harness, benchmarks/packed_gemm_bench.c, packs its row-major test matrices
 * itself.)
 *
 * Packed layout: B is cut into column panels of RNNRT_PANEL (32) columns. Panel p holds
 * columns [32p, 32p + 32) as k rows of 32 contiguous floats (row r of the panel is
 * B[r, 32p : 32p + 32], zeros past column n), so panel p starts at packed + p * k * 32 and a
 * panel is one contiguous k * 128-byte stream. With the buffer 64-byte aligned (as in a
 * .rnnrt file; unaligned loads keep any other buffer safe, only slower), every panel
 * row is a whole cache line pair, and with AVX-512 exactly two registers.
 *
 * Kernel: C is computed one MR x 32 tile at a time, its accumulators in registers: for each
 * p < k, the panel's row p is loaded once and each of the MR rows of A broadcasts a[i][p] into
 * a fused multiply-add. Panels are the outer loop and row tiles the inner one, so a panel
 * (k * 128 bytes: 32 KiB at k = 256) stays in L1 while every row of A passes over it. Rows are
 * split into tiles of nearly equal height (64 rows: 11,11,11,11,10,10, not 12 x 5 + 4), so no
 * tile is left thin. With few rows (a streaming step), the k loop keeps several independent
 * sets of accumulators over alternating p: 2 * rows chains alone cannot hide the FMA latency
 * (4 cycles, 2 units on Zen 5: 8 chains needed; measured at 4 rows, 1 set: 194 GFLOP/s, 2: 230).
 *
 * The instruction set is chosen once, at load, from what the CPU has: AVX-512, AVX2 with FMA,
 * or a portable C loop; no -march flag is needed. */
#include "rnnrt.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PACKED_X86 1
#include <immintrin.h>
#endif

#define MR_MAX 12    /* the most rows any variant's tile has */

/* np tiles in a row: c[mr x 32] = a[mr x k] @ panel (+ beta * c) for np whole panels, the
 * q-th at panel + dir * q * k * 32 with its columns at c + dir * q * 32 (dir: 1 or -1); all
 * 32 columns are stored. One call runs them all: with a call per panel, the calls took
 * 3-4% of a batch-1 sequence of 128 units (perf), ~1% this way. With `streamed`, a tile of
 * few rows asks for the panel's rows ahead of use. */
typedef void (*tile_fn)(int mr, int k, const float *a, int lda, const float *panel, int np,
                        int dir, float beta, float *c, int ldc, int streamed);

/* The q-th panel of a run, and its columns. */
#define RUN_PANEL(panel, q, dir, k) ((panel) + (long)(dir) * (q) * (k) * RNNRT_PANEL)
#define RUN_C(c, q, dir) ((c) + (long)(dir) * (q) * RNNRT_PANEL)

typedef struct {
    const char *name;
    int mr_max;
    tile_fn tile;
} packed_isa;

/* ---- portable: plain loops the compiler vectorises for whatever the baseline is ---- */
#define PORTABLE_MR 4

static void tile1_portable(int mr, int k, const float *a, int lda, const float *panel,
                           float beta, float *c, int ldc)
{
    float acc[PORTABLE_MR][RNNRT_PANEL] = {{0}};
    for (int p = 0; p < k; p++) {
        const float *bp = panel + (long)p * RNNRT_PANEL;
        for (int i = 0; i < mr; i++) {
            const float x = a[(long)i * lda + p];
            for (int j = 0; j < RNNRT_PANEL; j++) {
                acc[i][j] += x * bp[j];
            }
        }
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + (long)i * ldc;
        for (int j = 0; j < RNNRT_PANEL; j++) {
            ci[j] = beta == 0.0f ? acc[i][j] : acc[i][j] + beta * ci[j];
        }
    }
}

static void tile_portable(int mr, int k, const float *a, int lda, const float *panel, int np,
                          int dir, float beta, float *c, int ldc, int streamed)
{
    (void)streamed;
    for (int q = 0; q < np; q++) {
        tile1_portable(mr, k, a, lda, RUN_PANEL(panel, q, dir, k), beta, RUN_C(c, q, dir),
                       ldc);
    }
}

static const packed_isa isa_portable = {"portable", PORTABLE_MR, tile_portable};

#ifdef PACKED_X86
/* With few rows a panel row is used by a handful of FMAs and never again in this call, so
 * when the weights come from L3 the loop outruns the hardware prefetcher: 1 x 512 x 2048
 * (4 MiB) ran at 100-110 GB/s against the 115 GB/s of a plain read; asking for each row
 * 2 KiB ahead closes that (37 us against 45 us without). From L2 the extra requests cost
 * more than they give (1 x 256 x 1024: 7.8 us against 6.8 us), hence rnnrt_gemm_packed_streamed
 * for the caller that knows its weights do not stay there. Past a panel's end it asks for the
 * next panel's first rows, next in memory; a prefetch never faults. */
#define PREFETCH_ROWS 16

static inline __attribute__((always_inline)) void prefetch_row(const float *row)
{
    _mm_prefetch((const char *)row, _MM_HINT_T0);
    _mm_prefetch((const char *)(row + 16), _MM_HINT_T0);
}

/* ---- AVX-512: 32 columns are 2 zmm per row; 12 rows keep 24 accumulators of 32 ---- */
#define T512 __attribute__((target("avx512f,avx512vl,fma")))
#define INLINE static inline __attribute__((always_inline))

/* mr rows, ks independent accumulator sets over alternating p (ks * mr <= 12), pf: prefetch;
 * all are constants once inlined, so the arrays below become registers. */
T512 INLINE void tile512_body(const int mr, const int ks, const int pf, int k, const float *a,
                              int lda, const float *panel, float beta, float *c, int ldc)
{
    __m512 lo[MR_MAX], hi[MR_MAX];
#pragma GCC unroll 12
    for (int t = 0; t < ks * mr; t++) {
        lo[t] = _mm512_setzero_ps();
        hi[t] = _mm512_setzero_ps();
    }
    int p = 0;
    for (; p + ks <= k; p += ks) {
#pragma GCC unroll 4
        for (int s = 0; s < ks; s++) {
            if (pf) {
                prefetch_row(panel + (long)(p + s + PREFETCH_ROWS) * RNNRT_PANEL);
            }
            const __m512 b0 = _mm512_loadu_ps(panel + (long)(p + s) * RNNRT_PANEL);
            const __m512 b1 = _mm512_loadu_ps(panel + (long)(p + s) * RNNRT_PANEL + 16);
#pragma GCC unroll 12
            for (int i = 0; i < mr; i++) {
                const __m512 x = _mm512_set1_ps(a[(long)i * lda + p + s]);
                lo[s * mr + i] = _mm512_fmadd_ps(x, b0, lo[s * mr + i]);
                hi[s * mr + i] = _mm512_fmadd_ps(x, b1, hi[s * mr + i]);
            }
        }
    }
    for (; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(panel + (long)p * RNNRT_PANEL);
        const __m512 b1 = _mm512_loadu_ps(panel + (long)p * RNNRT_PANEL + 16);
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            const __m512 x = _mm512_set1_ps(a[(long)i * lda + p]);
            lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);
            hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);
        }
    }
#pragma GCC unroll 4
    for (int s = 1; s < ks; s++) {
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            lo[i] = _mm512_add_ps(lo[i], lo[s * mr + i]);
            hi[i] = _mm512_add_ps(hi[i], hi[s * mr + i]);
        }
    }
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        float *ci = c + (long)i * ldc;
        if (beta == 0.0f) {            /* never read c: a workspace may hold NaN */
            _mm512_storeu_ps(ci, lo[i]);
            _mm512_storeu_ps(ci + 16, hi[i]);
        } else {
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), lo[i]));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), hi[i]));
        }
    }
}

T512 static void tile_avx512(int mr, int k, const float *a, int lda, const float *panel,
                             int np, int dir, float beta, float *c, int ldc, int streamed)
{
    /* Prefetching pays only where a panel row feeds few FMAs: up to 6 rows. */
    if (streamed && mr <= 6) {
#define CASE512(MR, KS, PF) \
    case MR: \
        for (int q = 0; q < np; q++) { \
            tile512_body(MR, KS, PF, k, a, lda, RUN_PANEL(panel, q, dir, k), beta, \
                         RUN_C(c, q, dir), ldc); \
        } \
        break
        switch (mr) {
            CASE512(1, 4, 1); CASE512(2, 2, 1); CASE512(3, 2, 1); CASE512(4, 2, 1);
            CASE512(5, 2, 1); CASE512(6, 2, 1);
            default: break;
        }
        return;
    }
    switch (mr) {
        CASE512(1, 4, 0); CASE512(2, 2, 0); CASE512(3, 2, 0); CASE512(4, 2, 0);
        CASE512(5, 2, 0); CASE512(6, 2, 0); CASE512(7, 1, 0); CASE512(8, 1, 0);
        CASE512(9, 1, 0); CASE512(10, 1, 0); CASE512(11, 1, 0); CASE512(12, 1, 0);
        default: break;
    }
#undef CASE512
}

static const packed_isa isa_avx512 = {"avx512", 12, tile_avx512};

/* ---- AVX2 with FMA: 4 ymm per row, 16 registers: 3 rows (12 accumulators) ---- */
#define T256 __attribute__((target("avx2,fma")))

T256 INLINE void tile256_body(const int mr, const int ks, const int pf, int k, const float *a,
                              int lda, const float *panel, float beta, float *c, int ldc)
{
    __m256 acc[3][4];                  /* [set * mr + row][quarter]; ks * mr <= 3 */
#pragma GCC unroll 3
    for (int t = 0; t < ks * mr; t++) {
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            acc[t][q] = _mm256_setzero_ps();
        }
    }
    int p = 0;
    for (; p + ks <= k; p += ks) {
#pragma GCC unroll 3
        for (int s = 0; s < ks; s++) {
            const float *bp = panel + (long)(p + s) * RNNRT_PANEL;
            if (pf) {
                prefetch_row(bp + PREFETCH_ROWS * RNNRT_PANEL);
            }
#pragma GCC unroll 3
            for (int i = 0; i < mr; i++) {
                const __m256 x = _mm256_broadcast_ss(a + (long)i * lda + p + s);
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    acc[s * mr + i][q] = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp + 8 * q),
                                                         acc[s * mr + i][q]);
                }
            }
        }
    }
    for (; p < k; p++) {
        const float *bp = panel + (long)p * RNNRT_PANEL;
#pragma GCC unroll 3
        for (int i = 0; i < mr; i++) {
            const __m256 x = _mm256_broadcast_ss(a + (long)i * lda + p);
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                acc[i][q] = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp + 8 * q), acc[i][q]);
            }
        }
    }
#pragma GCC unroll 3
    for (int s = 1; s < ks; s++) {
#pragma GCC unroll 3
        for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                acc[i][q] = _mm256_add_ps(acc[i][q], acc[s * mr + i][q]);
            }
        }
    }
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++) {
        float *ci = c + (long)i * ldc;
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            if (beta == 0.0f) {
                _mm256_storeu_ps(ci + 8 * q, acc[i][q]);
            } else {
                _mm256_storeu_ps(ci + 8 * q,
                                 _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8 * q), acc[i][q]));
            }
        }
    }
}

T256 static void tile_avx2(int mr, int k, const float *a, int lda, const float *panel, int np,
                           int dir, float beta, float *c, int ldc, int streamed)
{
#define CASE256(MR, KS, PF) \
    for (int q = 0; q < np; q++) { \
        tile256_body(MR, KS, PF, k, a, lda, RUN_PANEL(panel, q, dir, k), beta, \
                     RUN_C(c, q, dir), ldc); \
    } \
    break
    switch (mr * 2 + (streamed != 0)) {
        case 2: CASE256(1, 2, 0);
        case 3: CASE256(1, 2, 1);
        case 4: CASE256(2, 1, 0);
        case 5: CASE256(2, 1, 1);
        case 6: case 7: CASE256(3, 1, 0);
        default: break;
    }
#undef CASE256
}

static const packed_isa isa_avx2 = {"avx2", 3, tile_avx2};
#endif /* PACKED_X86 */

/* The variant in use: the best the CPU has, set before anything else runs. */
static const packed_isa *packed_isa_used = &isa_portable;

#ifdef PACKED_X86
__attribute__((constructor)) static void packed_isa_pick(void)
{
    __builtin_cpu_init();   /* constructors may run before libgcc's own CPU detection */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma")) {
        packed_isa_used = &isa_avx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        packed_isa_used = &isa_avx2;
    }
}
#endif

/* Row tiles of nearly equal height (64 rows: 11,11,11,11,10,10): `count` of them, the
 * first `tall` one row taller than `rows`. */
typedef struct {
    int count, rows, tall;
} row_tiles;

static row_tiles row_tiles_of(const packed_isa *isa, int m)
{
    row_tiles rt;
    rt.count = (m + isa->mr_max - 1) / isa->mr_max;
    rt.rows = m / rt.count;
    rt.tall = m % rt.count;
    return rt;
}

static inline int tile_height(row_tiles rt, int t)
{
    return rt.rows + (t < rt.tall);
}

/* The last, partial panel (w < 32 columns, output at cj): each tile of rows into a scratch,
 * then the columns that exist (the panel's zero padding makes the rest zeros). */
static void partial_panel(const packed_isa *isa, int streamed, row_tiles rt, int w, int k,
                          const float *a, int lda, const float *panel, float beta, float *cj,
                          int ldc)
{
    for (int t = 0, i0 = 0; t < rt.count; i0 += tile_height(rt, t), t++) {
        const int mr = tile_height(rt, t);
        float scratch[MR_MAX * RNNRT_PANEL];
        isa->tile(mr, k, a + (long)i0 * lda, lda, panel, 1, 1, 0.0f, scratch, RNNRT_PANEL,
                  streamed);
        for (int i = 0; i < mr; i++) {
            float *cr = cj + (long)(i0 + i) * ldc;
            const float *sr = scratch + i * RNNRT_PANEL;
            for (int j = 0; j < w; j++) {
                cr[j] = beta == 0.0f ? sr[j] : sr[j] + beta * cr[j];
            }
        }
    }
}

/* backward: the panels in descending order (see rnnrt_gemm_packed_streamed). */
static void gemm_packed_with(const packed_isa *isa, int streamed, int backward, int m, int n0,
                             int n1, int k, const float *a, int lda, const float *packed,
                             float beta, float *c, int ldc)
{
    if (m <= 0 || n1 <= n0) {
        return;
    }
    const row_tiles rt = row_tiles_of(isa, m);
    const int whole = (n1 - n0) / RNNRT_PANEL, w = (n1 - n0) % RNNRT_PANEL;
    const float *first = packed + (long)(n0 / RNNRT_PANEL) * k * RNNRT_PANEL;
    const float *last = first + (long)whole * k * RNNRT_PANEL;     /* the partial one */
    if (w && backward) {
        partial_panel(isa, streamed, rt, w, k, a, lda, last, beta,
                      c + whole * RNNRT_PANEL, ldc);
    }
    if (whole > 0 && rt.count == 1) {   /* every whole panel in one call */
        const int q0 = backward ? whole - 1 : 0, dir = backward ? -1 : 1;
        isa->tile(m, k, a, lda, RUN_PANEL(first, q0, 1, k), whole, dir, beta,
                  RUN_C(c, q0, 1), ldc, streamed);
    } else {
        /* Panels outer, row tiles inner: a panel stays in L1 while every tile reads it. */
        for (int i = 0; i < whole; i++) {
            const int q = backward ? whole - 1 - i : i;
            for (int t = 0, i0 = 0; t < rt.count; i0 += tile_height(rt, t), t++) {
                isa->tile(tile_height(rt, t), k, a + (long)i0 * lda, lda,
                          RUN_PANEL(first, q, 1, k), 1, 1, beta,
                          RUN_C(c, q, 1) + (long)i0 * ldc, ldc, streamed);
            }
        }
    }
    if (w && !backward) {
        partial_panel(isa, streamed, rt, w, k, a, lda, last, beta,
                      c + whole * RNNRT_PANEL, ldc);
    }
}

void rnnrt_gemm_packed(int m, int n0, int n1, int k, const float *a, int lda,
                       const float *packed, float beta, float *c, int ldc)
{
    gemm_packed_with(packed_isa_used, 0, 0, m, n0, n1, k, a, lda, packed, beta, c, ldc);
}

void rnnrt_gemm_packed_streamed(int m, int n0, int n1, int k, const float *a, int lda,
                                const float *packed, float beta, float *c, int ldc,
                                int backward)
{
    gemm_packed_with(packed_isa_used, 1, backward, m, n0, n1, k, a, lda, packed, beta, c,
                     ldc);
}

const char *rnnrt_packed_isa(void)
{
    return packed_isa_used->name;
}

/* A row's result depends on the height of its tile only through the accumulator sets the
 * tile keeps (ks): AVX-512 keeps one set from 7 rows a tile, AVX2 from 2, portable always.
 * From 14 rows (AVX-512) every tile of nearly equal height has 7 or more. */
int rnnrt_packed_exact_rows(void)
{
    if (packed_isa_used == &isa_portable) {
        return 1;
    }
#ifdef PACKED_X86
    if (packed_isa_used == &isa_avx2) {
        return 2;
    }
#endif
    return 14;
}
