/* gemm() through a CBLAS library's sgemm (patch cblas-gemm; built with DARKNET_CBLAS),
 * under gemm()'s contract: row-major, C = ALPHA * op(A) * op(B) + BETA * C. Compiled
 * with upstream's sources. */
#ifdef DARKNET_CBLAS
#include <stddef.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "parallel.h"
#include "pdn_upstream.h"

/* Below this many multiply-adds a GEMM runs on one thread: splitting costs more. */
#define PARALLEL_GEMM_MIN 2e6

void gemm_cblas(int TA, int TB, int M, int N, int K, float ALPHA, float *A, int lda, float *B, int ldb,
                float BETA, float *C, int ldc)
{
    /* A BLAS library's sgemm, under the same contract: row-major,
     * C = ALPHA * op(A) * op(B) + BETA * C. gemm_cpu() stays the fallback.
     * With OpenMP the BLAS runs single-threaded and the loops' threads split C instead
     * (one thread pool: the BLAS's own workers would spin while the loops run), into
     * blocks of rows or of columns, whichever side is larger: each thread packs its share
     * of the larger operand, and only the smaller one is packed by every thread. */
    int parts = 1, by_rows = M >= N, size = by_rows ? M : N, step, part;
#ifdef _OPENMP
    if (!omp_in_parallel() && (double)M*N*K >= PARALLEL_GEMM_MIN) parts = darknet_threads();
#endif
    step = ((size + parts - 1)/parts + 15)/16*16;  /* whole vector blocks */
    #pragma omp parallel for num_threads(parts) schedule(static) if(parts > 1)
    for (part = 0; part < parts; ++part) {
        int start = part*step, end = start + step < size ? start + step : size;
        int rows = by_rows ? end - start : M, cols = by_rows ? N : end - start;
        size_t a_offset = by_rows ? (TA ? start : (size_t)start*lda) : 0;
        size_t b_offset = by_rows ? 0 : (TB ? (size_t)start*ldb : start);
        size_t c_offset = by_rows ? (size_t)start*ldc : start;
        if (start >= end) continue;
        cblas_sgemm(CblasRowMajor, TA ? CblasTrans : CblasNoTrans, TB ? CblasTrans : CblasNoTrans,
                    rows, cols, K, ALPHA, A + a_offset, lda, B + b_offset, ldb, BETA, C + c_offset, ldc);
    }
}
#endif
