/* Our CPU kernels for darknet's layers in inference (all builds).
 *
 * cpu_network() replaces the forward function of the layers it has a faster loop
 * for: convolutional (im2col a row at a time + one GEMM per image and group, bias and
 * activation in one pass), maxpool (maxima only, windows clipped once), identity
 * shortcuts, upsample and [yolo] (its activations), each split over darknet_threads()
 * OpenMP threads. The
 * results are upstream's, up to the GEMM library's rounding. Training passes (net.train)
 * run upstream's own functions, which also record what backward passes need. */
#ifndef PDN_CPU_H
#define PDN_CPU_H

#include "darknet.h"

/* Installs the kernels; returns how many layers use them. */
int cpu_network(network *net);

/* x[i] = activation(x[i] + bias) for n floats: activate()'s per-element results, one
 * loop per common activation, so the compiler vectorises it. */
void cpu_activate_with_bias(float *x, int n, float bias, ACTIVATION a);
/* activate_array(), split over the threads when large. */
void cpu_activate_array(float *x, int n, ACTIVATION a);

/* A convolution's weights and biases as inference computes them, batch normalization
 * folded in (darknet's CPU denominator), for backends that keep their own copy: writes
 * the l->n biases into `biases` and returns the weights, l->weights itself or a folded
 * copy to release with cpu_release_weights(). */
float *cpu_inference_weights(const layer *l, float *biases);
void cpu_release_weights(const layer *l, float *weights);

#endif
