#include "parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int threads;  /* 0: OpenMP's default */

int darknet_threads(void)
{
#ifdef _OPENMP
    int n = __atomic_load_n(&threads, __ATOMIC_RELAXED);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

void set_darknet_threads(int n)
{
    __atomic_store_n(&threads, n > 0 ? n : 0, __ATOMIC_RELAXED);
}
