/* Correctness check and benchmark of the packed GEMM (src_c/packed_gemm.c).
 *
 * Build (from the repository root; one line):
 *   B=$(.venv/bin/python -c "import scipy_openblas32 as s; print(s.get_include_dir(), s.get_lib_dir())"); set -- $B; gcc -O3 -std=c11 -pthread -ffp-contract=fast -Wall -Wno-unused-function -Isrc_c -I$1 benchmarks/packed_gemm_bench.c -L$2 -Wl,-rpath,$2 -lscipy_openblas -lm -o /tmp/packed_gemm_bench
 * Run:
 *   /tmp/packed_gemm_bench check      every instruction set this CPU has, against a naive loop
 *   /tmp/packed_gemm_bench case M K N N0 N1 BETA SEED     one shape, every instruction set
 *   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 /tmp/packed_gemm_bench bench [variant]
 *   (variant: avx512, avx2 or portable; default: the one this CPU picks. A variant the CPU
 *   lacks is not checked for: it would die of an illegal instruction.)
 *
 * The kernel source is included, not linked, so that each instruction-set variant (static
 * there) can be checked on one machine, not only the one the CPU picks. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src_c/packed_gemm.c"
#include "../src_c/blas.c"      /* gemm_few_rows: the few-row kernel on a row-major B */

/* ---- packing a row-major B the way the converter does (rnnrt/panels.py) ---- */
/* Floats pack_b writes: whole panels of k rows, zero-padded past column n. */
static long packed_floats(int k, int n)
{
    long panels = (n + RNNRT_PANEL - 1) / RNNRT_PANEL;
    return panels * RNNRT_PANEL * (long)k;
}

static void pack_b(int k, int n, const float *b, int ldb, float *packed)
{
    for (int j0 = 0; j0 < n; j0 += RNNRT_PANEL) {
        int w = n - j0 < RNNRT_PANEL ? n - j0 : RNNRT_PANEL;
        float *panel = packed + (long)(j0 / RNNRT_PANEL) * k * RNNRT_PANEL;
        for (int r = 0; r < k; r++) {
            float *dst = panel + (long)r * RNNRT_PANEL;
            memcpy(dst, b + (long)r * ldb + j0, (size_t)w * sizeof(float));
            memset(dst + w, 0, (size_t)(RNNRT_PANEL - w) * sizeof(float));
        }
    }
}

/* ---- deterministic random numbers (splitmix64) ---- */
static unsigned long long rng_state = 0x1234567887654321ULL;

static unsigned long long rng_next(void)
{
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int rng_int(int lo, int hi)       /* in [lo, hi] */
{
    return lo + (int)(rng_next() % (unsigned long long)(hi - lo + 1));
}

static float rng_float(void)             /* in [-1, 1) */
{
    return (float)((rng_next() >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static void fill(float *x, long n)
{
    for (long i = 0; i < n; i++) {
        x[i] = rng_float();
    }
}

static void *alloc_aligned(long floats)
{
    size_t bytes = ((size_t)(floats > 0 ? floats : 1) * sizeof(float) + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- correctness ---- */
#define GUARD 12345.0f   /* in c past the window's columns: must be left alone */

/* Worst relative error of c (m x w, then guard columns up to ldc) against the exact
 * product; NaN or a touched guard is infinite. */
static double error_of(const float *c, const float *c0, int m, int k, int w, int ldc,
                       const float *a, int lda, const float *b, int ldb, int n0, float beta)
{
    double worst = 0.0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < ldc; j++) {
            float got = c[(long)i * ldc + j];
            if (j >= w) {
                worst = got != GUARD ? INFINITY : worst;
                continue;
            }
            double sum = 0.0, scale = 0.0;
            for (int p = 0; p < k; p++) {
                double t = (double)a[(long)i * lda + p] * b[(long)p * ldb + n0 + j];
                sum += t;
                scale += fabs(t);
            }
            if (beta != 0.0f) {
                double old = c0[(long)i * ldc + j];
                sum += beta * old;
                scale += fabs(beta * old);
            }
            double err = fabs(got - sum) / (scale > 0.0 ? scale : 1.0);
            worst = !(err <= worst) ? err : worst;     /* NaN sticks */
        }
    }
    return worst;
}

/* One case, read every way (plain; streamed, rows asked for ahead, panels in either order);
 * returns 0 when it passed. */
static int check_case(const packed_isa *isa, int m, int k, int n, int n0, int n1, float beta)
{
    const int lda = k + rng_int(0, 3), ldb = n + rng_int(0, 5);
    const int w = n1 - n0, ldc = w + rng_int(0, 4);
    float *a = alloc_aligned((long)m * lda), *b = alloc_aligned((long)k * ldb);
    float *packed = alloc_aligned(packed_floats(k, n));
    float *c = alloc_aligned((long)m * ldc), *c0 = alloc_aligned((long)m * ldc);
    fill(a, (long)m * lda);
    fill(b, (long)k * ldb);
    for (long i = 0; i < (long)m * ldc; i++) {
        c0[i] = (i % ldc) >= w ? GUARD : (beta == 0.0f ? NAN : rng_float());
    }
    /* Poison the packed buffer: pack_b must write every float, the padding included. */
    long np = packed_floats(k, n);
    for (long i = 0; i < np; i++) {
        packed[i] = NAN;
    }
    pack_b(k, n, b, ldb, packed);
    int failed = 0;
    for (long i = 0; i < np; i++) {
        long panel = i / ((long)k * RNNRT_PANEL), col = panel * RNNRT_PANEL + i % RNNRT_PANEL;
        long row = (i / RNNRT_PANEL) % (k > 0 ? k : 1);
        float want = col < n ? b[row * ldb + col] : 0.0f;
        if (packed[i] != want) {
            printf("FAIL pack_b k=%d n=%d ldb=%d\n", k, n, ldb);
            failed = 1;
            break;
        }
    }
    /* Every way of reading the panels: plain; streamed forward and backward. */
    static const char *const how[3] = {"", " streamed", " streamed backward"};
    for (int way = 0; way < 3 && !failed; way++) {
        memcpy(c, c0, sizeof(float) * (size_t)m * ldc);
        gemm_packed_with(isa, way > 0, way == 2, m, n0, n1, k, a, lda, packed, beta, c, ldc);
        double worst = error_of(c, c0, m, k, w, ldc, a, lda, b, ldb, n0, beta);
        if (!(worst <= 1e-6)) {
            printf("FAIL %s%s m=%d k=%d n=%d window=[%d,%d) beta=%g lda=%d ldb=%d ldc=%d "
                   "(worst relative error %.3g)\n", isa->name, how[way], m, k, n, n0, n1,
                   beta, lda, ldb, ldc, worst);
            failed = 1;
        }
    }
    free(a); free(b); free(packed); free(c); free(c0);
    return failed;
}

/* The variants this CPU can run, best last; returns how many. */
static int supported_isas(const packed_isa *isas[3])
{
    int n_isa = 0;
    isas[n_isa++] = &isa_portable;
#ifdef PACKED_X86
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        isas[n_isa++] = &isa_avx2;
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) {
        isas[n_isa++] = &isa_avx512;
    }
#endif
    return n_isa;
}

static void print_summary(int cases, const packed_isa *const *isas, int n_isa, int failed)
{
    printf("packed gemm: checked %d cases on", cases);
    for (int v = 0; v < n_isa; v++) {
        printf(" %s", isas[v]->name);
    }
    printf(" (in use: %s); %d failed\n", rnnrt_packed_isa(), failed);
}

static int run_checks(void)
{
    const packed_isa *isas[3];
    const int n_isa = supported_isas(isas);
    static const int ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 31, 64, 257};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    int cases = 0, failed = 0;
    for (int v = 0; v < n_isa; v++) {
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            for (int rep = 0; rep < 3; rep++) {
                const int m = ms[mi];
                const int k = rep == 0 ? rng_int(1, 7) : rng_int(8, 300);
                /* n: not a panel multiple, except one case in four */
                int n = rng_int(1, 150);
                if (rng_int(0, 3) == 0) {
                    n = rng_int(1, 5) * RNNRT_PANEL;
                }
                /* window: from a panel boundary (often > 0) to any column <= n */
                const int n0 = rng_int(0, (n - 1) / RNNRT_PANEL) * RNNRT_PANEL;
                const int n1 = rng_int(n0 + 1, n);
                const float beta = betas[(mi + rep) % 3];
                failed += check_case(isas[v], m, k, n, n0, n1, beta);
                cases++;
            }
        }
        /* Recurrent shapes, whole width: LSTM 4H and GRU 3H. */
        failed += check_case(isas[v], 64, 256, 1024, 0, 1024, 0.0f);
        failed += check_case(isas[v], 5, 128, 384, 128, 384, 1.0f);
        cases += 2;
    }
    /* k == 0: c = beta * c (and 0 with beta 0, whatever c held). */
    failed += check_case(packed_isa_used, 3, 0, 40, 32, 40, 0.0f);
    failed += check_case(packed_isa_used, 3, 0, 40, 0, 40, 1.0f);
    cases += 2;
    print_summary(cases, isas, n_isa, failed);
    return failed ? 1 : 0;
}

/* One shape given on the command line (tests/test_packed_gemm.py draws them), on every
 * variant; the data are random from `seed`. */
static int run_one_case(char **arg)
{
    const int m = atoi(arg[0]), k = atoi(arg[1]), n = atoi(arg[2]);
    const int n0 = atoi(arg[3]), n1 = atoi(arg[4]);
    const float beta = (float)atof(arg[5]);
    rng_state = strtoull(arg[6], NULL, 10);
    if (m < 1 || k < 0 || n < 1 || n0 < 0 || n0 % RNNRT_PANEL != 0 || n1 <= n0 || n1 > n) {
        fprintf(stderr, "bad case: expected m >= 1, k >= 0, n >= 1, 0 <= n0 < n1 <= n with "
                "n0 a multiple of %d; got m=%d k=%d n=%d n0=%d n1=%d\n", RNNRT_PANEL, m, k,
                n, n0, n1);
        return 2;
    }
    const packed_isa *isas[3];
    const int n_isa = supported_isas(isas);
    int failed = 0;
    for (int v = 0; v < n_isa; v++) {
        failed += check_case(isas[v], m, k, n, n0, n1, beta);
    }
    print_summary(n_isa, isas, n_isa, failed);
    return failed ? 1 : 0;
}

/* ---- benchmark ---- */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

enum { KERNEL_PACKED, KERNEL_STREAMED, KERNEL_SGEMM, KERNEL_FEW_ROWS };

typedef struct {
    const packed_isa *isa;
    int m, k, n;
    const float *a, *b, *packed;
    float *c;
} bench_case;

static void call_kernel(int kernel, const bench_case *s)
{
    switch (kernel) {
    case KERNEL_PACKED:
    case KERNEL_STREAMED:
        gemm_packed_with(s->isa, kernel == KERNEL_STREAMED, 0, s->m, 0, s->n, s->k, s->a,
                         s->k, s->packed, 0.0f, s->c, s->n);
        break;
    case KERNEL_SGEMM:
        scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->m, s->n, s->k, 1.0f,
                          s->a, s->k, s->b, s->n, 0.0f, s->c, s->n);
        break;
    default:
        gemm_few_rows(s->m, s->n, s->k, s->a, s->k, s->b, s->n, 0.0f, s->c, s->n);
        break;
    }
}

#define SAMPLES 15

/* Median seconds per call: SAMPLES samples of enough calls to last about 2 ms each. */
static double time_kernel(int kernel, const bench_case *s)
{
    call_kernel(kernel, s);
    int calls = 1;
    for (;;) {
        double t0 = now();
        for (int r = 0; r < calls; r++) {
            call_kernel(kernel, s);
        }
        if (now() - t0 > 2e-3) {
            break;
        }
        calls *= 2;
    }
    double samples[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        double t0 = now();
        for (int r = 0; r < calls; r++) {
            call_kernel(kernel, s);
        }
        samples[i] = (now() - t0) / calls;
    }
    qsort(samples, SAMPLES, sizeof samples[0], cmp_double);
    return samples[SAMPLES / 2];
}

static void run_bench(const packed_isa *isa)
{
    static const int shapes[][3] = {
        {64, 256, 1024}, {256, 256, 1024}, {256, 384, 1024}, {128, 256, 768},
        {64, 512, 2048}, {1, 256, 1024}, {4, 256, 1024},
        {1, 128, 512}, {4, 128, 512},     /* B fits in L2 (256 KiB) */
        {1, 512, 2048}, {4, 512, 2048},   /* B comes from L3 (4 MiB) */
    };
    scipy_openblas_set_num_threads(1);
    printf("packed kernel: %s; OpenBLAS core: %s; 1 thread; median of %d samples\n",
           isa->name, scipy_openblas_get_corename(), SAMPLES);
    printf("%5s %5s %5s | %14s %14s %6s | %12s %12s %12s %12s\n", "m", "K", "N", "packed GF/s",
           "sgemm GF/s", "ratio", "packed us", "sgemm us", "few_rows us", "streamed us");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        bench_case s = {isa, shapes[i][0], shapes[i][1], shapes[i][2], 0, 0, 0, 0};
        float *a = alloc_aligned((long)s.m * s.k), *b = alloc_aligned((long)s.k * s.n);
        float *packed = alloc_aligned(packed_floats(s.k, s.n));
        s.c = alloc_aligned((long)s.m * s.n);
        fill(a, (long)s.m * s.k);
        fill(b, (long)s.k * s.n);
        pack_b(s.k, s.n, b, s.n, packed);
        s.a = a; s.b = b; s.packed = packed;
        const double flops = 2.0 * s.m * s.k * s.n;
        double tp = time_kernel(KERNEL_PACKED, &s), ts = time_kernel(KERNEL_SGEMM, &s);
        printf("%5d %5d %5d | %14.1f %14.1f %6.2f | %12.2f %12.2f", s.m, s.k, s.n,
               flops / tp * 1e-9, flops / ts * 1e-9, ts / tp, tp * 1e6, ts * 1e6);
        if (s.m <= FEW_ROWS) {
            printf(" %12.2f %12.2f", time_kernel(KERNEL_FEW_ROWS, &s) * 1e6,
                   time_kernel(KERNEL_STREAMED, &s) * 1e6);
        }
        printf("\n");
        free(a); free(b); free(packed); free(s.c);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "check";
    if (strcmp(mode, "check") == 0) {
        return run_checks();
    }
    if (strcmp(mode, "case") == 0 && argc == 9) {
        return run_one_case(argv + 2);
    }
    if (strcmp(mode, "bench") == 0) {
        /* An optional second argument benches another variant than the CPU's pick. */
        const packed_isa *isa = packed_isa_used;
        if (argc > 2) {
            isa = strcmp(argv[2], "portable") == 0 ? &isa_portable : NULL;
#ifdef PACKED_X86
            isa = strcmp(argv[2], "avx2") == 0 ? &isa_avx2 : isa;
            isa = strcmp(argv[2], "avx512") == 0 ? &isa_avx512 : isa;
#endif
            if (!isa) {
                fprintf(stderr, "unknown variant %s: expected avx512, avx2 or portable\n",
                        argv[2]);
                return 2;
            }
        }
        run_bench(isa);
        return 0;
    }
    fprintf(stderr, "usage: %s [check | case M K N N0 N1 BETA SEED | "
            "bench [avx512|avx2|portable]]\n", argv[0]);
    return 2;
}
