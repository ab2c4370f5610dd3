/* Our CPU kernels for darknet's layers in inference: see cpu.h. */
#include <float.h>
#include <string.h>

#include "cpu.h"
#include "parallel.h"

#include "activations.h"
#include "batchnorm_layer.h"
#include "blas.h"
#include "convolutional_layer.h"
#include "gemm.h"
#include "maxpool_layer.h"
#include "shortcut_layer.h"
#include "upsample_layer.h"
#include "yolo_layer.h"

/* -- activations ------------------------------------------------------------------- */

void cpu_activate_with_bias(float *x, int n, float bias, ACTIVATION a)
{
    int i;
    switch (a) {
    case LINEAR:
        for (i = 0; i < n; ++i) x[i] = x[i] + bias;
        return;
    case LEAKY:
        /* leaky_activate() with both sides computed, so the loop vectorises */
        for (i = 0; i < n; ++i) {
            float v = x[i] + bias;
            float scaled = .1*v;
            x[i] = v > 0 ? v : scaled;
        }
        return;
    case RELU:
        for (i = 0; i < n; ++i) {
            float v = x[i] + bias;
            x[i] = v > 0 ? v : 0*v;  /* relu_activate(): v*(v>0), -0 for negative v */
        }
        return;
    case LOGISTIC:
        for (i = 0; i < n; ++i) x[i] = logistic_activate(x[i] + bias);
        return;
    default:
        for (i = 0; i < n; ++i) x[i] = activate(x[i] + bias, a);
    }
}

void cpu_activate_array(float *x, int n, ACTIVATION a)
{
    const int chunk = PARALLEL_MIN;
    int i;
    if (a == LINEAR) return;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if(n > 2*chunk)
    for (i = 0; i < n; i += chunk) {
        cpu_activate_with_bias(x + i, n - i < chunk ? n - i : chunk, 0, a);
    }
}

float *cpu_inference_weights(const layer *l, float *biases)
{
    float *weights;
    if (!l->batch_normalize) {
        memcpy(biases, l->biases, sizeof(float) * (size_t)l->n);
        return l->weights;
    }
    weights = malloc(sizeof(float) * (size_t)l->nweights);  /* checked: fails through darknet_fail */
    fold_batchnorm_weights(*l, weights, biases, BN_DENOMINATOR_CPU);
    return weights;
}

void cpu_release_weights(const layer *l, float *weights)
{
    if (weights != l->weights) free(weights);
}

/* Bias and activation in one pass over each output map. */
static void add_bias_activate(float *output, const float *biases, int batch, int n, int size, ACTIVATION a)
{
    int map;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if((size_t)batch*n*size > PARALLEL_MIN)
    for (map = 0; map < batch*n; ++map) {
        cpu_activate_with_bias(output + (size_t)map*size, size, biases[map%n], a);
    }
}

/* -- convolution: im2col + GEMM ------------------------------------------------------ */

/* out[w] = in[w*stride] for w0 <= w < w1; inlined with a constant stride, the
 * compiler vectorises the strided loads. */
static inline __attribute__((always_inline))
void strided_copy(float *restrict out, const float *restrict in, int w0, int w1, int stride)
{
    int w;
    for (w = w0; w < w1; ++w) out[w] = in[w * stride];
}

/* Row c of upstream's column matrix (from Caffe's im2col), written a row at a time:
 * the padding columns zero-filled once and the pixels in between copied in one run,
 * instead of a bounds check per element. */
static void im2col_row(const float *image, int height, int width, int ksize, int stride, int pad,
                       int c, int height_col, int width_col, float *out)
{
    int h, w;
    int w_offset = c % ksize - pad;
    int h_offset = (c / ksize) % ksize - pad;
    const float *channel = image + (size_t)(c / ksize / ksize) * height * width;
    /* output columns w whose input column w_offset + w*stride is inside the image */
    int w_first = w_offset >= 0 ? 0 : (-w_offset + stride - 1) / stride;
    int w_end = width - 1 - w_offset < 0 ? 0 : (width - 1 - w_offset) / stride + 1;
    if (w_end > width_col) w_end = width_col;
    if (w_first > w_end) w_first = w_end;
    for (h = 0; h < height_col; ++h, out += width_col) {
        int im_row = h_offset + h * stride;
        if (im_row < 0 || im_row >= height) {
            memset(out, 0, sizeof(float) * width_col);
            continue;
        }
        const float *in = channel + (size_t)im_row * width + w_offset;
        for (w = 0; w < w_first; ++w) out[w] = 0;
        if (stride == 1) {
            memcpy(out + w_first, in + w_first, sizeof(float) * (w_end - w_first));
        } else if (stride == 2) {
            strided_copy(out, in, w_first, w_end, 2);
        } else {
            strided_copy(out, in, w_first, w_end, stride);
        }
        for (w = w_end; w < width_col; ++w) out[w] = 0;
    }
}

static void im2col(const float *image, int channels, const layer *l, float *columns)
{
    const int rows = channels * l->size * l->size, pixels = l->out_h * l->out_w;
    int c;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if((size_t)rows*pixels > PARALLEL_MIN)
    for (c = 0; c < rows; ++c) {
        im2col_row(image, l->h, l->w, l->size, l->stride, l->pad, c, l->out_h, l->out_w,
                   columns + (size_t)c * pixels);
    }
}

static void forward_cpu_convolutional(layer l, network net)
{
    const int m = l.n/l.groups, k = l.size*l.size*l.c/l.groups, n = l.out_w*l.out_h;
    int i, j;
    if (net.train) {
        forward_convolutional_layer(l, net);
        return;
    }
#ifndef DARKNET_CBLAS
    fill_cpu(l.outputs*l.batch, 0, l.output, 1);  /* gemm_cpu() scales C by beta 0: a stale NaN stays */
#endif
    for (i = 0; i < l.batch; ++i) {
        for (j = 0; j < l.groups; ++j) {
            float *a = l.weights + (size_t)j*l.nweights/l.groups;
            float *image = net.input + ((size_t)i*l.groups + j)*l.c/l.groups*l.h*l.w;
            float *columns = image;  /* 1x1 stride-1 unpadded: the image is its own column matrix */
            if (!im2col_is_input(l)) {
                columns = net.workspace;
                im2col(image, l.c/l.groups, &l, columns);
            }
            gemm(0, 0, m, n, k, 1, a, k, columns, n, 0, l.output + ((size_t)i*l.groups + j)*n*m, n);
        }
    }
    if (l.batch_normalize) {
        forward_batchnorm_layer(l, net);  /* upstream's: rolling statistics outside training */
        cpu_activate_array(l.output, l.outputs*l.batch, l.activation);
    } else {
        add_bias_activate(l.output, l.biases, l.batch, l.n, n, l.activation);
    }
}

/* -- maxpool --------------------------------------------------------------------------- */

/* out[j] = max(out[j], col[j*stride]) for j0 <= j < j1; inlined with a constant
 * stride, the compiler vectorises the strided loads. */
static inline __attribute__((always_inline))
void max_into(float *restrict out, const float *restrict col, int j0, int j1, int stride)
{
    int j;
    for (j = j0; j < j1; ++j) {
        float v = col[j*stride];
        out[j] = v > out[j] ? v : out[j];
    }
}

/* The maxima only (the argmax indexes serve backward passes). Output columns whose
 * window lies inside the image take a loop without bounds tests, which the compiler
 * vectorises; the others are clipped. */
static void forward_cpu_maxpool(layer l, network net)
{
    const int offset = -l.pad/2;
    /* columns j0 <= j < j1: offset + j*stride >= 0 and offset + j*stride + size <= w */
    int j0 = offset < 0 ? (-offset + l.stride - 1)/l.stride : 0;
    int j1 = l.w - l.size - offset >= 0 ? (l.w - l.size - offset)/l.stride + 1 : 0;
    int map;
    if (net.train) {
        forward_maxpool_layer(l, net);
        return;
    }
    if (j1 > l.out_w) j1 = l.out_w;
    if (j1 < j0) j1 = j0;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if(l.outputs*l.batch > PARALLEL_MIN)
    for (map = 0; map < l.batch*l.c; ++map) {
        const float *in = net.input + (size_t)map*l.w*l.h;
        int i, j, n, m;
        for (i = 0; i < l.out_h; ++i) {
            int top = offset + i*l.stride;
            int n0 = top < 0 ? -top : 0;
            int n1 = top + l.size > l.h ? l.h - top : l.size;
            float *out = l.output + ((size_t)map*l.out_h + i)*l.out_w;
            for (j = 0; j < l.out_w; ++j) out[j] = -FLT_MAX;
            for (n = n0; n < n1; ++n) {
                const float *row = in + (size_t)(top + n)*l.w;
                /* windows wider than the map have no inside columns: skip their m loop,
                 * which would cost `size` steps per row (a 29999-wide window hung the fuzzer) */
                for (m = 0; j0 < j1 && m < l.size; ++m) {
                    const float *col = row + offset + m;
                    if (l.stride == 1) max_into(out, col, j0, j1, 1);
                    else if (l.stride == 2) max_into(out, col, j0, j1, 2);
                    else max_into(out, col, j0, j1, l.stride);
                }
                for (j = 0; j < l.out_w; ++j) {  /* the clipped columns */
                    if (j == j0) j = j1;
                    if (j >= l.out_w) break;
                    int left = offset + j*l.stride;
                    int m0 = left < 0 ? -left : 0;
                    int m1 = left + l.size > l.w ? l.w - left : l.size;
                    for (m = m0; m < m1; ++m) {
                        if (row[left + m] > out[j]) out[j] = row[left + m];
                    }
                }
            }
        }
    }
}

/* -- shortcut and upsample ----------------------------------------------------------- */

/* Identity shortcuts (both inputs of the output's shape): copy and add in one pass. */
static void forward_cpu_shortcut(layer l, network net)
{
    const float *add = net.layers[l.index].output;
    long i, size = (long)l.outputs*l.batch;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if(size > PARALLEL_MIN)
    for (i = 0; i < size; ++i) l.output[i] = l.alpha*net.input[i] + l.beta*add[i];
    cpu_activate_array(l.output, l.outputs*l.batch, l.activation);
}

static void forward_cpu_upsample(layer l, network net)
{
    const int s = l.stride, out_w = l.w*s;
    int map;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if(l.outputs*l.batch > PARALLEL_MIN)
    for (map = 0; map < l.batch*l.c; ++map) {
        const float *in = net.input + (size_t)map*l.w*l.h;
        float *out = l.output + (size_t)map*l.outputs/l.c;
        int i, j;
        for (j = 0; j < l.h*s; ++j) {
            for (i = 0; i < out_w; ++i) out[(size_t)j*out_w + i] = l.scale*in[(size_t)(j/s)*l.w + i/s];
        }
    }
}

/* [yolo] in inference: upstream's forward_yolo_layer() on the threads, without zeroing
 * the deltas, which only training reads: the logistic activations (none with new_coords,
 * whose convolution applied them, patch yolo-new-coords), then scale_x_y on the centres (yolo-scale-xy). */
static void forward_cpu_yolo(layer l, network net)
{
    const int map = l.w*l.h, entries = 4 + 1 + l.classes;  /* x, y, w, h, objectness, classes */
    const float scale = l.scale_x_y, shift = -.5f*(l.scale_x_y - 1);
    int m;
    if (net.train) {
        forward_yolo_layer(l, net);
        return;
    }
    memcpy(l.output, net.input, (size_t)l.outputs*l.batch*sizeof(float));
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static) if((size_t)l.outputs*l.batch > PARALLEL_MIN)
    for (m = 0; m < l.batch*l.n*entries; ++m) {  /* one map of one entry of one anchor */
        int entry = m % entries, i;
        float *x = l.output + (size_t)(m/(l.n*entries))*l.outputs + (size_t)(m%(l.n*entries))*map;
        if (entry == 2 || entry == 3) continue;  /* w and h stay raw */
        if (!l.new_coords) cpu_activate_with_bias(x, map, 0, LOGISTIC);
        if (entry < 2 && scale != 1) {
            for (i = 0; i < map; ++i) x[i] = x[i]*scale + shift;
        }
    }
}

/* -- installation ---------------------------------------------------------------------- */

typedef void (*forward_function)(layer, network);

static forward_function kernel_for(const layer *l)
{
    switch (l->type) {
    case CONVOLUTIONAL:
        return l->binary || l->xnor ? 0 : forward_cpu_convolutional;
    case MAXPOOL:
        return forward_cpu_maxpool;
    case SHORTCUT:  /* l.w, l.h, l.c: the added layer's output */
        return l->w == l->out_w && l->h == l->out_h && l->c == l->out_c ? forward_cpu_shortcut : 0;
    case UPSAMPLE:
        return l->reverse ? 0 : forward_cpu_upsample;
    case YOLO:
        return forward_cpu_yolo;
    default:
        return 0;
    }
}

int cpu_network(network *net)
{
    int i, used = 0;
    for (i = 0; i < net->n; ++i) {
        forward_function kernel = kernel_for(&net->layers[i]);
        if (!kernel) continue;
        net->layers[i].forward = kernel;
        ++used;
    }
    return used;
}
