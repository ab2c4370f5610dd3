/* Convolutions through oneDNN primitives (built with PYDARKNET_BACKEND=onednn).
 *
 * onednn_network() replaces the forward function of each convolutional layer that a
 * oneDNN primitive can compute: batch normalization folded into the primitive's
 * weights and bias, the activation fused as post-ops, the weights reordered once into
 * the layout the primitive chooses. Outputs stay plain NCHW in layer.output, so every
 * other layer, layer_outputs() and the detection code read them as before. */
#ifndef PDN_ONEDNN_H
#define PDN_ONEDNN_H

#include "darknet.h"

/* What an int8 layer's input is: int8 steps of `scale` (0: the layer stays float32),
 * signed (s8) or not (u8, for inputs that are never negative). */
typedef struct {
    float scale;
    int is_signed;
} onednn_int8;

/* Installs the primitives for the network's batch; returns how many layers use them.
 * int8 NULL: float32 convolutions (not 1x1, see eligible()); else int8 ones for the
 * layers whose int8[index].scale > 0, their weights quantized symmetrically per output
 * channel, the input quantized by the reorder into the primitive's layout and the
 * output float32 (or int8 steps for the next int8 layer: onednn.c). Layers another backend already took (Winograd) are left alone, and
 * so are layers oneDNN has no int8 kernel for. Reports failures with darknet_fail(),
 * so call it under a darknet_handler. */
int onednn_network(network *net, const onednn_int8 *int8);

/* 1 if the layer's forward is a oneDNN convolution; onednn_layer_int8: an int8 one. */
int onednn_layer(const layer *l);
int onednn_layer_int8(const layer *l);
/* The implementation oneDNN chose for the layer ("brg:avx2", "jit_int8:avx2", ...), "" if none. */
const char *onednn_layer_kernel(const layer *l);

/* Writes l->output for its first n images where the layer passed int8 steps on to the
 * next one in its place (a no-op elsewhere): for readers of intermediate outputs. */
void onednn_plain_output(const layer *l, int n);

/* The instruction set oneDNN's kernels use on this CPU (after ONEDNN_MAX_CPU_ISA). */
const char *onednn_cpu_isa(void);
/* The implementation oneDNN picks for a 3x3 convolution, float32 or int8 (u8 x s8),
 * into name ("none" if it has none). */
void onednn_probe_kernel(int int8, char *name, int size);

#endif
