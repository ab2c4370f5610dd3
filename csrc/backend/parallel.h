#ifndef PARALLEL_H
#define PARALLEL_H

/* Threads for the OpenMP loops and the split GEMM. One setting for the whole process:
 * omp_set_num_threads() sets only the calling thread's count, and a forward pass may
 * run on any thread. 1 in a build without OpenMP. */
int darknet_threads(void);
void set_darknet_threads(int n);  /* n < 1: OpenMP's default (OMP_NUM_THREADS, else every core) */

/* Loops over fewer elements than this run on one thread: waking the others costs more. */
#define PARALLEL_MIN 32768

#endif
