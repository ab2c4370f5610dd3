#include "parallel.h"

#include <pthread.h>
#include <unistd.h>

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

#ifdef _OPENMP
/* GNU OpenMP keeps the worker threads of a thread's last parallel region docked for
 * the next one. A forked child inherits that bookkeeping but not the threads, so its
 * first parallel region on the forking thread waits for them forever (gunicorn
 * --preload, Celery prefork and multiprocessing's fork all load, then fork). Before a
 * fork, the forking thread releases its workers (OpenMP 5.0's pause; LLVM's and
 * Intel's runtimes handle fork themselves, and pausing is harmless there); the parent
 * and the child each start theirs again on their next parallel region. Weak: a
 * runtime older than OpenMP 5.0 has no pause, and then a child runs single-threaded,
 * which is said once on stderr. */
#pragma weak omp_pause_resource_all

static void release_workers(void)
{
    if (omp_pause_resource_all) omp_pause_resource_all(omp_pause_soft);
}

static void single_threaded_child(void)
{
    static const char note[] = "pydarknet: this OpenMP runtime cannot release its threads before a fork: "
                               "networks in this forked process run on one thread\n";
    if (omp_pause_resource_all) return;
    set_darknet_threads(1);
    if (write(STDERR_FILENO, note, sizeof(note) - 1) < 0) { /* nowhere to say it */ }
}

__attribute__((constructor)) static void fork_safe_openmp(void)
{
    pthread_atfork(release_workers, NULL, single_threaded_child);
}
#endif
