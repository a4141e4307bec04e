/* The one seam to BLAS: scipy-openblas32's prefixed CBLAS, single-threaded inside our
 * OpenMP threads (all parallelism is ours), and our own kernel for a few rows. It serves the
 * products whose weights are not in gate panels: Dense heads and the LSTM projection (the
 * recurrent layers' own products use packed_gemm.c). */
#include <cblas.h>
#include "rnnrt.h"

/* OpenBLAS sgemm repacks B on every call, which dominates when A has few rows (measured:
 * K=256, N=1024, one row: sgemm 67 us, sgemv 12 us), and its sgemv reaches 70-88% of the
 * read bandwidth. A streaming step is all few-row products, bound by reading B once. Up to
 * FEW_ROWS rows, the kernel below streams B row by row, four rows at a time, adding each
 * into the output rows (which stay in L1): every byte of B is read once, contiguously. */
#define FEW_ROWS 4


DISPATCH
static void gemm_few_rows(int m, int n, int k, const float *a, int lda,
                          const float *restrict b, int ldb, float beta, float *restrict c,
                          int ldc)
{
    for (int r = 0; r < m; r++) {
        float *restrict cr = c + (long)r * ldc;
        for (int j = 0; j < n; j++) {
            cr[j] = beta == 0.0f ? 0.0f : beta * cr[j];   /* never 0 * NaN from a workspace */
        }
    }
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        const float *restrict b0 = b + (long)p * ldb, *restrict b1 = b0 + ldb;
        const float *restrict b2 = b1 + ldb, *restrict b3 = b2 + ldb;
        for (int r = 0; r < m; r++) {
            const float *ar = a + (long)r * lda + p;
            const float x0 = ar[0], x1 = ar[1], x2 = ar[2], x3 = ar[3];
            float *restrict cr = c + (long)r * ldc;
            for (int j = 0; j < n; j++) {
                cr[j] += (x0 * b0[j] + x1 * b1[j]) + (x2 * b2[j] + x3 * b3[j]);
            }
        }
    }
    for (; p < k; p++) {
        const float *restrict b0 = b + (long)p * ldb;
        for (int r = 0; r < m; r++) {
            const float x0 = a[(long)r * lda + p];
            float *restrict cr = c + (long)r * ldc;
            for (int j = 0; j < n; j++) {
                cr[j] += x0 * b0[j];
            }
        }
    }
}

void rnnrt_gemm(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc)
{
    if (m == 0 || n == 0) {
        return;
    }
    if (m <= FEW_ROWS) {
        gemm_few_rows(m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                      beta, c, ldc);
}

void rnnrt_blas_single_thread(void)
{
    scipy_openblas_set_num_threads(1);
}
