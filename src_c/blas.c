/* The one seam to BLAS: scipy-openblas32's prefixed CBLAS, single-threaded inside our
 * OpenMP threads (all parallelism is ours). */
#include <cblas.h>
#include "rnnrt.h"

void rnnrt_gemm(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc)
{
    if (m == 0 || n == 0) {
        return;
    }
    if (m == 1) {
        /* A single row: y = B^T a, a GEMV over B stored row-major (k x n). With beta 0
         * clear c first: a scaled-by-zero NaN left in a workspace must not leak in. */
        if (beta == 0.0f) {
            for (int j = 0; j < n; j++) {
                c[j] = 0.0f;
            }
        }
        scipy_cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, b, ldb, a, 1,
                          beta == 0.0f ? 1.0f : beta, c, 1);
        return;
    }
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                      beta, c, ldc);
}

void rnnrt_blas_single_thread(void)
{
    scipy_openblas_set_num_threads(1);
}
