/* Networks: load, inspect, run, save and fold; the backends and threads they run with. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "glue.h"
#include "activations.h"
#include "gemm.h"
#include "network.h"
#include "backend/cpu.h"
#include "backend/parallel.h"
#include "backend/winograd.h"
#ifdef PDN_ONEDNN
#include "backend/onednn.h"
#include "backend/onednn_pool.h"
#endif
#ifdef GPU
#include "cuda.h"
#endif

#include "checked_alloc.h"
#include "pydarknet_build_info.h"

/* The per-thread load settings pdn_load() changes, put back on success and failure. */
static void end_load(void)
{
    darknet_finite_weights = 1;
    pdn_alloc_budget = SIZE_MAX;
}

/* OpenBLAS takes a buffer per thread on its first GEMM that needs one and keeps it.
 * When that first GEMM comes after a large network has taken the memory, OpenBLAS
 * cannot get it and ends the process (exit(1) "giving up"). So every thread of the
 * pool runs one such GEMM before a network is loaded (while memory is there). Two
 * loads at once may both do it: harmless. Runs under a handler (checked allocations). */
static void reserve_blas_buffers(void)
{
#ifdef PDN_BLAS_SET_THREADS
    static int reserved;  /* for this many threads */
    enum { SIDE = 128 };  /* 128^3 > OpenBLAS's small-matrix path, which needs no buffer */
    int threads = pdn_num_threads();
    if (threads <= __atomic_load_n(&reserved, __ATOMIC_RELAXED)) return;
    float *a = calloc((size_t)SIDE * SIDE * threads, sizeof(float));
    float *b = calloc((size_t)SIDE * SIDE, sizeof(float));
    float *c = calloc((size_t)SIDE * SIDE * threads, sizeof(float));
    /* M = SIDE x threads rows: gemm() gives each thread SIDE of them */
    gemm(0, 0, SIDE * threads, SIDE, SIDE, 1, a, SIDE, b, SIDE, 0, c, SIDE);
    free(a); free(b); free(c);
    __atomic_store_n(&reserved, threads, __ATOMIC_RELAXED);
#endif
}

int pdn_load(const char *cfg, const char *weights, int batch, int verbose, int finite_weights,
             unsigned long long max_memory, int device, network **out, pdn_error *err)
{
    /* volatile: read after longjmp, written between setjmp and it. */
    network *volatile net = NULL;
    darknet_clear_warnings();
    darknet_finite_weights = finite_weights;
    PDN_GUARDED(verbose, err, { end_load(); if (net) free_network(net); }, {
        reserve_blas_buffers();  /* not charged to the network */
        pdn_choose_device(device);
        pdn_alloc_budget = max_memory && max_memory < SIZE_MAX ? (size_t)max_memory : SIZE_MAX;
        /* with weights: no random initialisation of what the file replaces */
        net = weights ? parse_network_cfg_for_weights((char *)cfg, batch)
                      : parse_network_cfg_custom((char *)cfg, batch);
        if (weights) load_weights(net, (char *)weights);
        pdn_check_gpu_layers(net);
    });
    end_load();
    *out = net;
    return 0;
}

void pdn_free(network *net)
{
    free_network(net);
}

void pdn_network_info_get(network *net, pdn_network_info *info)
{
    layer last = get_network_output_layer(net);
    info->n_layers = net->n;
    info->batch = net->batch;
    info->w = net->w;
    info->h = net->h;
    info->c = net->c;
    if (net->w * net->h * net->c != net->inputs) {  /* [net] inputs=N (rnn.cfg): a vector */
        info->c = net->inputs;
        info->h = info->w = 1;
    }
    info->inputs = net->inputs;
    info->outputs = net->outputs;
    info->out_w = last.out_w;
    info->out_h = last.out_h;
    info->out_c = last.out_c;
}

static int has_activation(LAYER_TYPE type)
{
    return type == CONVOLUTIONAL || type == DECONVOLUTIONAL || type == CONNECTED
        || type == LOCAL || type == SHORTCUT || type == ACTIVE;
}

/* Floats load_weights() reads for a layer: the sum of its parts' for composite ones. */
static long long params_read(layer l)
{
    if (l.dontload) return 0;
    long long bn = l.batch_normalize && !l.dontloadscales ? 3 : 0;
    int n = l.numload ? l.numload : l.n;
    switch (l.type) {
    case CONVOLUTIONAL:
    case DECONVOLUTIONAL:
        return (1 + bn) * n + (long long)l.c / l.groups * n * l.size * l.size;
    case CONNECTED:
        return (1 + bn) * l.outputs + (long long)l.inputs * l.outputs;
    case BATCHNORM:
        return 3LL * l.c;
    case LOCAL:
        return l.outputs + (long long)l.size * l.size * l.c * l.n * l.out_w * l.out_h;
    case CRNN:
    case RNN:
        return params_read(*l.input_layer) + params_read(*l.self_layer) + params_read(*l.output_layer);
    case LSTM:
        return params_read(*l.wi) + params_read(*l.wf) + params_read(*l.wo) + params_read(*l.wg)
             + params_read(*l.ui) + params_read(*l.uf) + params_read(*l.uo) + params_read(*l.ug);
    case GRU:
        return params_read(*l.wz) + params_read(*l.wr) + params_read(*l.wh)
             + params_read(*l.uz) + params_read(*l.ur) + params_read(*l.uh);
    default:
        return 0;
    }
}

int pdn_layer_get(network *net, int index, pdn_layer *out)
{
    if (index < 0 || index >= net->n) return -1;
    layer l = net->layers[index];
    memset(out, 0, sizeof(*out));
    snprintf(out->type, sizeof(out->type), "%s", l.type == CUSTOM ? ((python_layer *)l.user)->name
                                                               : get_layer_string(l.type));
    if (has_activation(l.type)) {
        snprintf(out->activation, sizeof(out->activation), "%s", get_activation_string(l.activation));
    }
    out->w = l.w; out->h = l.h; out->c = l.c;
    out->out_w = l.out_w; out->out_h = l.out_h; out->out_c = l.out_c;
    out->size = l.size; out->stride = l.stride; out->pad = l.pad; out->groups = l.groups;
    out->batch_normalize = l.batch_normalize;
    out->inputs = l.inputs; out->outputs = l.outputs;
    out->partial_load = l.dontload || l.dontloadscales || l.numload || l.flipped;
    out->winograd = winograd_layer_tile(&l);
#ifdef PDN_ONEDNN
    out->onednn = onednn_layer(&l) || onednn_pool_layer(&l);
    out->int8 = onednn_layer_int8(&l) || onednn_pool_layer(&l);
    snprintf(out->kernel, sizeof(out->kernel), "%s", onednn_pool_layer(&l) ? onednn_pool_kernel(&l)
                                                                           : onednn_layer_kernel(&l));
#endif
    out->n_params = params_read(l);
    switch (l.type) {
    case CONVOLUTIONAL:
    case DECONVOLUTIONAL: {
        /* each weight is used once per output pixel (conv) or per input pixel (deconv) */
        int pixels = l.type == CONVOLUTIONAL ? l.out_h * l.out_w : l.h * l.w;
        out->filters = l.n;
        out->n_weights = l.nweights;
        out->bflops = 2.0 * l.nweights * pixels / 1e9;
        break;
    }
    case CONNECTED:
        out->filters = l.outputs;
        out->n_weights = (long long)l.inputs * l.outputs;
        out->bflops = 2.0 * out->n_weights / 1e9;
        break;
    default:
        break;
    }
    return 0;
}

int pdn_predict(network *net, const float *input, int n, float *output, double *layer_seconds,
                int verbose, pdn_error *err)
{
    PDN_GUARDED_AT_BATCH(net, n, verbose, err, (void)0, {
        net->layer_seconds = layer_seconds;  /* cleared again on failure with the whole struct */
        float *result = network_predict(net, (float *)input);
        net->layer_seconds = 0;
        memcpy(output, result, sizeof(float) * (size_t)net->outputs * n);
    });
    return 0;
}

int pdn_layer_output(network *net, int index, int n, float *output, pdn_error *err)
{
    PDN_GUARDED(0, err, (void)0, {
        if (index < 0 || index >= net->n || n < 1 || n > net->batch) {
            darknet_fail(DARKNET_ERR_INTERNAL, "no output %d of %d images (%d layers, batch %d)", index, n, net->n, net->batch);
        }
        layer l = net->layers[index];
#ifdef GPU
        /* a GPU network keeps its outputs on the device (only the last is copied back) */
        if (net->gpu_index >= 0 && l.output_gpu) {
            pdn_use_device(net);
            cuda_pull_array(l.output_gpu, l.output, (size_t)l.outputs * n);
        }
#endif
#ifdef PDN_ONEDNN
        onednn_plain_output(&l, n);
#endif
        memcpy(output, l.output, sizeof(float) * (size_t)l.outputs * n);
    });
    return 0;
}

int pdn_save_weights(network *net, const char *path, int fold_bn, int verbose, pdn_error *err)
{
    PDN_GUARDED(verbose, err, (void)0, {
        if (fold_bn < 0) save_weights(net, (char *)path);
        else save_weights_nobn(net, (char *)path, (bn_denominator)fold_bn);
    });
    return 0;
}

int pdn_fold_batchnorm(network *net, int target, pdn_error *err)
{
    PDN_GUARDED(0, err, (void)0, {
        fold_batchnorm_network(net, (bn_denominator)target);
        pdn_push_folded(net);
    });
    return 0;
}

int pdn_has_onednn(void)
{
#ifdef PDN_ONEDNN
    return 1;
#else
    return 0;
#endif
}

#ifdef PDN_ONEDNN
/* The int8 layers as onednn_network() takes them. */
static void use_int8(network *net, const pdn_int8_input *int8, pdn_backend_use *use)
{
    onednn_int8 *inputs = calloc(net->n, sizeof(*inputs));  /* checked: fails through darknet_fail */
    int i;
    for (i = 0; i < net->n; ++i) {
        inputs[i].scale = int8[i].scale;
        inputs[i].is_signed = int8[i].is_signed;
    }
    use->int8 = onednn_network(net, inputs);
    free(inputs);
}
#endif

int pdn_use_backend(network *net, int backend, int winograd, const pdn_int8_input *int8, pdn_backend_use *use,
                    pdn_error *err)
{
    memset(use, 0, sizeof(*use));
    if (backend == PDN_BACKEND_UPSTREAM || pdn_network_device(net) >= 0) return 0;  /* GPU: forward_gpu */
    PDN_GUARDED(0, err, (void)0, {
        use->cpu = cpu_network(net);
#ifdef PDN_ONEDNN
        if (int8 && backend == PDN_BACKEND_ONEDNN) use_int8(net, int8, use);
#endif
        if (winograd) use->winograd = winograd_network(net, backend == PDN_BACKEND_ONEDNN);
#ifdef PDN_ONEDNN
        if (backend == PDN_BACKEND_ONEDNN) use->onednn = onednn_network(net, NULL);
#endif
    });
    return 0;
}

void pdn_onednn_kernels(char *isa, char *float32, char *int8, int size)
{
    isa[0] = float32[0] = int8[0] = 0;
#ifdef PDN_ONEDNN
    snprintf(isa, size, "%s", onednn_cpu_isa());
    onednn_probe_kernel(0, float32, size);
    onednn_probe_kernel(1, int8, size);
#endif
}

const char *pdn_build_info(void)
{
    return PDN_BUILD_INFO_JSON;
}

/* The build names the BLAS library's thread functions (setup.py, glue_flags). */
#ifdef PDN_BLAS_SET_THREADS
void PDN_BLAS_SET_THREADS(int n);
int PDN_BLAS_GET_THREADS(void);
#endif

#if defined(_OPENMP) && defined(PDN_BLAS_SET_THREADS)
/* With OpenMP, darknet's gemm() splits the work over the OpenMP threads and calls the
 * BLAS from each: the BLAS itself stays on one thread (its own pool would spin beside
 * OpenMP's on the same cores). Set when the extension is loaded. */
__attribute__((constructor)) static void single_threaded_blas(void)
{
    PDN_BLAS_SET_THREADS(1);
}
#endif

void pdn_set_num_threads(int n)
{
#ifdef _OPENMP
    set_darknet_threads(n);
#elif defined(PDN_BLAS_SET_THREADS)
    PDN_BLAS_SET_THREADS(n);
#endif
    (void)n;
}

int pdn_num_threads(void)
{
#if !defined(_OPENMP) && defined(PDN_BLAS_SET_THREADS)
    return PDN_BLAS_GET_THREADS();
#else
    return darknet_threads();
#endif
}
