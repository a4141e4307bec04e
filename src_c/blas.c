/* The one seam to BLAS: scipy-openblas32's prefixed CBLAS, single-threaded inside our
 * OpenMP threads (all parallelism is ours). */
#include <cblas.h>
#include "rnnrt.h"

/* OpenBLAS sgemm repacks B on every call, which dominates when A has few rows (measured:
 * K=256, N=1024, one row: sgemm 67 us, sgemv 12 us); up to GEMV_ROWS rows, one GEMV per row
 * reads B in place and is faster. */
#define GEMV_ROWS 4

void rnnrt_gemm(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc)
{
    if (m == 0 || n == 0) {
        return;
    }
    if (m <= GEMV_ROWS) {
        for (int i = 0; i < m; i++) {
            float *ci = c + (long)i * ldc;
            /* y = B^T a_i over B stored row-major (k x n). With beta 0, clear c first: a
             * NaN left in a workspace must not leak in through 0 * NaN. */
            if (beta == 0.0f) {
                for (int j = 0; j < n; j++) {
                    ci[j] = 0.0f;
                }
            }
            scipy_cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, b, ldb, a + (long)i * lda,
                              1, beta == 0.0f ? 1.0f : beta, ci, 1);
        }
        return;
    }
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                      beta, c, ldc);
}

void rnnrt_blas_single_thread(void)
{
    scipy_openblas_set_num_threads(1);
}
