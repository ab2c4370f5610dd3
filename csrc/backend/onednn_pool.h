/* Maxpool layers between two linked int8 convolutions (onednn.c), computed by oneDNN's
 * max pooling on the int8 steps themselves: rounding to steps keeps the order of
 * values, so the maxima of the steps are the steps of the maxima. */
#ifndef PDN_ONEDNN_POOL_H
#define PDN_ONEDNN_POOL_H

#include "darknet.h"
#include "onednn_util.h"

/* 1 if l is a maxpool that oneDNN's max pooling computes as darknet does (windows
 * clipped at the border, none wholly outside it) and no backend has taken. */
int onednn_pool_suits(const layer *l);

/* Makes l (one that suits) read `from` in place of net.input and write int8 steps of
 * the same type and scale, which it returns; with plain set, its float32 l.output too
 * (for another layer that reads it). Fails through darknet_fail(). */
const int8_tensor *onednn_pool_int8(layer *l, const int8_tensor *from, int plain, int index);

/* 1 if l runs as oneDNN's pooling (its state then starts with an int8_link), and the
 * implementation oneDNN chose ("" if it does not). */
int onednn_pool_layer(const layer *l);
const char *onednn_pool_kernel(const layer *l);

#endif
