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

/* Installs the primitives for the network's batch; returns how many layers use them.
 * Layers another backend already took (Winograd) are left alone. Reports failures
 * with darknet_fail(), so call it under a darknet_handler. */
int onednn_network(network *net);

/* 1 if the layer's forward runs on oneDNN. */
int onednn_layer(const layer *l);

#endif
