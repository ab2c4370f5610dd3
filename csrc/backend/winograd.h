/* Winograd convolution F(m x m, 3 x 3) for 3x3 stride-1 layers in inference (all builds).
 *
 * winograd_network() replaces the forward function of the convolutional layers where
 * Winograd is measured faster than the other path: F(4x4, 3x3) on maps of 14 pixels
 * and more, F(2x2, 3x3) below, with 8 or more input channels and at least 36 tiles
 * per GEMM (a batch counts); against oneDNN only F(4x4), from 32 input channels. The kernels are transformed once, with batch normalization
 * folded in; bias and activation are applied to each output row while it is in cache. */
#ifndef PDN_WINOGRAD_H
#define PDN_WINOGRAD_H

#include "darknet.h"

/* Installs it on the layers it suits that no backend has taken yet, where it beats
 * im2col + GEMM, or with versus_onednn set where it beats oneDNN's convolution;
 * returns how many. Reports failures with darknet_fail(), so call it under a
 * darknet_handler. */
int winograd_network(network *net, int versus_onednn);

/* The output tile m (2 or 4) the layer runs with; 0 when it is not a Winograd layer. */
int winograd_layer_tile(const layer *l);

#endif
