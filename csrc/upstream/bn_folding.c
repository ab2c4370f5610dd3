/* Batch normalization folded into the weights before it (patch bn-free-weights): the
 * arithmetic of normalize_cpu() and of the GPU's kernel, in double, for
 * save_weights_nobn() and fold_batchnorm_network() (declared in darknet.h). Compiled
 * with upstream's sources. */
#include <math.h>

#include "darknet.h"
#include "connected_layer.h"
#include "convolutional_layer.h"

/* Convolutional, deconvolutional and connected layers with batch_normalize=1. */
int can_fold_batchnorm(layer l)
{
    return l.batch_normalize && (l.type == CONVOLUTIONAL || l.type == DECONVOLUTIONAL || l.type == CONNECTED);
}

/* The arithmetic of normalize_cpu() and normalize_kernel(), in double. */
static double bn_denominator_of(float variance, bn_denominator d)
{
    if (d == BN_DENOMINATOR_GPU) return sqrt((double)variance + 0.00001);
    return sqrt((double)variance) + (double).000001f;
}

/* Writes l's weights and biases with its batch normalization folded in:
 * k = scales/D, weights *= k, biases = biases - rolling_mean * k (with BN the
 * layer's biases are BN's beta). weights and biases may be l's own arrays. */
void fold_batchnorm_weights(layer l, float *weights, float *biases, bn_denominator d)
{
    int outputs = l.type == CONNECTED ? l.outputs : l.n;
    /* conv: [n][c/groups][size][size]; deconv: [c][n][size][size]; connected: [outputs][inputs] */
    int per_output = l.type == CONNECTED ? l.inputs : l.size*l.size;
    int blocks = l.type == DECONVOLUTIONAL ? l.c : 1;
    int run = l.type == CONVOLUTIONAL ? l.nweights/l.n : per_output;
    int f, b, i;
    for(f = 0; f < outputs; ++f){
        double k = l.scales[f] / bn_denominator_of(l.rolling_variance[f], d);
        for(b = 0; b < blocks; ++b){
            size_t start = ((size_t)b*outputs + f)*run;
            for(i = 0; i < run; ++i){
                weights[start + i] = (float)(l.weights[start + i] * k);
            }
        }
        biases[f] = (float)(l.biases[f] - l.rolling_mean[f] * k);
    }
}

/* Folds every foldable layer in place and turns its batch normalization off.
 * Returns how many layers were folded. */
int fold_batchnorm_network(network *net, bn_denominator d)
{
    int i, folded = 0;
    for(i = 0; i < net->n; ++i){
        layer *l = &net->layers[i];
        if(!can_fold_batchnorm(*l)) continue;
#ifdef GPU
        if(gpu_index >= 0){
            if(l->type == CONNECTED) pull_connected_layer(*l);
            else pull_convolutional_layer(*l);
        }
#endif
        fold_batchnorm_weights(*l, l->weights, l->biases, d);
        l->batch_normalize = 0;
#ifdef GPU
        if(gpu_index >= 0){
            if(l->type == CONNECTED) push_connected_layer(*l);
            else push_convolutional_layer(*l);
        }
#endif
        ++folded;
    }
    return folded;
}
