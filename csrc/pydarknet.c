/* Glue between Python and the patched darknet: every entry point that can fail
 * runs under a darknet_handler, so darknet_fail() anywhere below comes back here
 * as an error code and a filled pdn_error instead of ending the process. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "darknet.h"
#include "activations.h"
#include "gemm.h"
#include "network.h"
#include "option_list.h"
#include "backend/cpu.h"
#include "backend/parallel.h"
#include "backend/winograd.h"
#ifdef PDN_ONEDNN
#include "backend/onednn.h"
#endif
#ifdef GPU
#include "connected_layer.h"
#include "convolutional_layer.h"
#include "cuda.h"
#include "deconvolutional_layer.h"
#endif

#include "stb_image.h"
#include "stb_image_write.h"

#include "checked_alloc.h"
#include "console.h"
#define PDN_CALLBACK extern
#include "pydarknet.h"
#include "pydarknet_build_info.h"

static int report(pdn_error *err)
{
    const darknet_error *e = darknet_last_error();
    err->code = e->code ? e->code : DARKNET_ERR_INTERNAL;
    snprintf(err->message, sizeof(err->message), "%s", e->message);
    snprintf(err->file, sizeof(err->file), "%s", e->file);
    err->section = e->section;
    err->line = e->line;
    pdn_console_verbose = 0;
    return err->code;
}

/* Runs the statements (...) under a handler; on failure, runs cleanup and returns
 * the error code from the calling function. */
#define PDN_GUARDED(verbose, err, cleanup, ...)       \
    do {                                              \
        darknet_handler handler_;                     \
        pdn_console_verbose = (verbose);              \
        darknet_push_handler(&handler_);              \
        if (setjmp(handler_.env)) {                   \
            cleanup;                                  \
            return report(err);                       \
        }                                             \
        __VA_ARGS__;                                  \
        darknet_pop_handler(&handler_);               \
        pdn_console_verbose = 0;                      \
    } while (0)

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

/* What a CUSTOM layer made by pydarknet keeps in layer.user. */
typedef struct {
    int id;          /* the Python side's handle for this layer */
    char name[32];   /* the section name, for summaries and messages */
} python_layer;

int pdn_cuda_device_count(void)
{
#ifdef GPU
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {  /* no driver or no GPU: none to use */
        cudaGetLastError();
        return 0;
    }
    return n;
#else
    return 0;
#endif
}

int pdn_cuda_device_name(int index, char *name, int size)
{
#ifdef GPU
    struct cudaDeviceProp prop;
    if (index < 0 || index >= pdn_cuda_device_count() || cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    snprintf(name, size, "%s", prop.name);
    return prop.major * 10 + prop.minor;
#else
    (void)index; (void)name; (void)size;
    return -1;
#endif
}

int pdn_cuda_memory(int index, unsigned long long *free_bytes, unsigned long long *total_bytes)
{
    *free_bytes = *total_bytes = 0;
#ifdef GPU
    size_t free_now, total;
    int current = 0;
    if (index < 0 || index >= pdn_cuda_device_count() || cudaGetDevice(&current) != cudaSuccess
        || cudaSetDevice(index) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    cudaError_t status = cudaMemGetInfo(&free_now, &total);
    cudaSetDevice(current);
    if (status != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    *free_bytes = free_now;
    *total_bytes = total;
    return 0;
#else
    (void)index;
    return -1;
#endif
}

void pdn_cuda_versions(int *runtime, int *driver, int *cudnn)
{
    *runtime = *driver = *cudnn = 0;
#ifdef GPU
    if (cudaRuntimeGetVersion(runtime) != cudaSuccess) *runtime = 0;
    if (cudaDriverGetVersion(driver) != cudaSuccess) *driver = 0;
    cudaGetLastError();
#ifdef CUDNN
    *cudnn = (int)cudnnGetVersion();
#endif
#endif
}

int pdn_network_device(network *net)
{
#ifdef GPU
    return net->gpu_index;
#else
    (void)net;
    return -1;
#endif
}

/* Where the parser puts the next network made on this thread (upstream's per-thread
 * gpu_index, patch 0050): -1 the CPU, else that CUDA device, made current. */
static void choose_device(int device)
{
#ifdef GPU
    int count = pdn_cuda_device_count();
    if (device >= count) {
        if (!count) darknet_fail(DARKNET_ERR_DEVICE, "cuda:%d: no CUDA device is visible (no GPU, no driver, or "
                                 "CUDA_VISIBLE_DEVICES hides them); load with device='cpu'", device);
        darknet_fail(DARKNET_ERR_DEVICE, "cuda:%d: this machine has %d CUDA device%s (cuda:0 to cuda:%d)",
                     device, count, count == 1 ? "" : "s", count - 1);
    }
    if (device >= 0) cuda_set_device(device);
    else gpu_index = -1;
#else
    if (device >= 0) darknet_fail(DARKNET_ERR_DEVICE, "this pydarknet build has no CUDA, so cuda:%d cannot be "
                                  "used: reinstall with PYDARKNET_GPU=1 pip install . (README, GPU)", device);
#endif
}

/* A GPU network runs every layer's forward_gpu: refuse one without it. */
static void check_gpu_layers(network *net)
{
#ifdef GPU
    int i;
    if (net->gpu_index < 0) return;
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (l.type == CUSTOM) {
            darknet_fail(DARKNET_ERR_DEVICE, "layer %d [%s] is defined in Python, which runs on the CPU only: "
                         "load this network with device='cpu'", i, ((python_layer *)l.user)->name);
        }
        if (!l.forward_gpu) {
            darknet_fail(DARKNET_ERR_DEVICE, "layer %d (%s) has no GPU implementation in Darknet: load this network "
                         "with device='cpu'", i, get_layer_string(l.type));
        }
    }
#else
    (void)net;
#endif
}

/* CUDA's current device is per thread: each call on a GPU network makes its device
 * current first (cuDNN and cuBLAS handles are per device and thread). */
static void use_device(network *net)
{
#ifdef GPU
    if (net->gpu_index >= 0) cuda_set_device(net->gpu_index);
#else
    (void)net;
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
        choose_device(device);
        pdn_alloc_budget = max_memory && max_memory < SIZE_MAX ? (size_t)max_memory : SIZE_MAX;
        /* with weights: no random initialisation of what the file replaces */
        net = weights ? parse_network_cfg_for_weights((char *)cfg, batch)
                      : parse_network_cfg_custom((char *)cfg, batch);
        if (weights) load_weights(net, (char *)weights);
        check_gpu_layers(net);
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
    out->onednn = onednn_layer(&l);
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

/* Layers are allocated for the batch the network was loaded with; a smaller count
 * runs as a smaller batch (upstream's set_batch_network) instead of padding. */
static void use_batch(network *net, int n)
{
    if (n < 1 || n > net->batch) darknet_fail(DARKNET_ERR_INTERNAL, "%d images for a batch of %d", n, net->batch);
    if (n != net->batch) set_batch_network(net, n);
}

/* After a failure: the network back at its own batch. On a GPU network that sets up
 * cuDNN again, which can fail too (the device may be what failed): under a handler of
 * its own, as no other is left to catch it, keeping the first failure's report. */
static void restore_batch(network *net, int batch)
{
    darknet_handler handler;
    darknet_error first = *darknet_last_error();
    darknet_push_handler(&handler);
    if (!setjmp(handler.env)) set_batch_network(net, batch);
    darknet_pop_handler(&handler);
    *(darknet_error *)darknet_last_error() = first;
}

/* PDN_GUARDED with the network run at batch n; the batch it was loaded with is
 * restored afterwards, on failure (before cleanup) as on success. On failure the whole
 * network struct is restored first: network_predict() points net->input at the
 * caller's buffer (and clears truth, delta, train) and puts them back only when it
 * returns, so after a longjmp out of a forward pass free_network() would free the
 * caller's buffer (found as heap corruption after a Python layer raised). */
#define PDN_GUARDED_AT_BATCH(net, n, verbose, err, cleanup, ...)                          \
    do {                                                                                  \
        const network saved_ = *(net);  /* not written after setjmp: valid after longjmp */ \
        PDN_GUARDED(verbose, err, { *(net) = saved_; if (n != saved_.batch) restore_batch(net, saved_.batch); \
                                    cleanup; }, \
                    use_device(net); use_batch(net, n); __VA_ARGS__;                          \
                    if (n != saved_.batch) set_batch_network(net, saved_.batch));             \
    } while (0)

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
            use_device(net);
            cuda_pull_array(l.output_gpu, l.output, (size_t)l.outputs * n);
        }
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

/* A GPU network's device copy of what folding changed. */
static void push_folded(network *net)
{
#ifdef GPU
    int i;
    if (net->gpu_index < 0) return;
    use_device(net);
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (l.type == CONVOLUTIONAL) push_convolutional_layer(l);
        else if (l.type == DECONVOLUTIONAL) push_deconvolutional_layer(l);
        else if (l.type == CONNECTED) push_connected_layer(l);
    }
#else
    (void)net;
#endif
}

int pdn_fold_batchnorm(network *net, int target, pdn_error *err)
{
    PDN_GUARDED(0, err, (void)0, {
        fold_batchnorm_network(net, (bn_denominator)target);
        push_folded(net);
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

int pdn_use_backend(network *net, int backend, int winograd, pdn_backend_use *use, pdn_error *err)
{
    memset(use, 0, sizeof(*use));
    if (backend == PDN_BACKEND_UPSTREAM || pdn_network_device(net) >= 0) return 0;  /* GPU: forward_gpu */
    PDN_GUARDED(0, err, (void)0, {
        use->cpu = cpu_network(net);
        if (winograd) use->winograd = winograd_network(net, backend == PDN_BACKEND_ONEDNN);
#ifdef PDN_ONEDNN
        if (backend == PDN_BACKEND_ONEDNN) use->onednn = onednn_network(net);
#endif
    });
    return 0;
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

static image as_image(const pdn_image *im)
{
    image out = {im->w, im->h, im->c, im->data};
    return out;
}

static void set_pdn_image(pdn_image *out, image im)
{
    out->w = im.w; out->h = im.h; out->c = im.c; out->data = im.data;
}

/* A header that declares more than max_pixels is refused before anything is decoded
 * (a 1 MB PNG can declare 18000 x 18000: 4 GB as floats). A header stb cannot read
 * is left for the decoder to report. */
static void check_pixels(int known, int w, int h, long long max_pixels)
{
    if (known && (long long)w * h > max_pixels) {
        darknet_fail(DARKNET_ERR_IMAGE, "the image is %d x %d = %lld pixels, more than the limit of %lld; "
                     "pass a larger max_pixels if you trust it", w, h, (long long)w * h, max_pixels);
    }
}

int pdn_image_load(const char *path, long long max_pixels, pdn_image *out, pdn_error *err)
{
    int w, h, c;
    PDN_GUARDED(0, err, (void)0, {
        int known = stbi_info(path, &w, &h, &c);
        check_pixels(known, w, h, max_pixels);
        set_pdn_image(out, load_image_color((char *)path, 0, 0));
    });
    return 0;
}

int pdn_image_decode(const unsigned char *data, int size, long long max_pixels, pdn_image *out, pdn_error *err)
{
    int w, h, c;
    PDN_GUARDED(0, err, (void)0, {
        int known = stbi_info_from_memory(data, size, &w, &h, &c);
        check_pixels(known, w, h, max_pixels);
        set_pdn_image(out, load_image_memory(data, size, 3));
    });
    return 0;
}

void pdn_image_free(pdn_image *im)
{
    free_image(as_image(im));
    im->data = NULL;
}

static int is_detection_layer(LAYER_TYPE type)
{
    return type == YOLO || type == REGION || type == DETECTION;
}

int pdn_detection_classes(network *net)
{
    int i;
    for (i = net->n - 1; i >= 0; --i) {
        if (is_detection_layer(net->layers[i].type)) return net->layers[i].classes;
    }
    return -1;
}

/* get_network_boxes() reads batch item 0 of each detection layer, and yolo/region
 * layers with batch == 2 average it with a flipped copy (upstream's test-time
 * augmentation). To read item b alone, point the layers at item b and tell them
 * batch 1 (enter), then undo both (leave). */
static void enter_batch_item(network *net, int b, int *saved_batch)
{
    int i;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (!is_detection_layer(l->type)) continue;
        l->output += (long)b * l->outputs;
        saved_batch[i] = l->batch;
        l->batch = 1;
    }
}

static void leave_batch_item(network *net, int b, const int *saved_batch)
{
    int i;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (!is_detection_layer(l->type)) continue;
        l->output -= (long)b * l->outputs;
        l->batch = saved_batch[i];
    }
}

/* The glyphs are read once per process (761 small PNGs), on first annotation. */
static image **alphabet;
static pthread_mutex_t alphabet_lock = PTHREAD_MUTEX_INITIALIZER;

static image **get_alphabet(const char *dir)
{
    pthread_mutex_lock(&alphabet_lock);
    if (!alphabet) alphabet = load_alphabet_from(dir);
    pthread_mutex_unlock(&alphabet_lock);
    return alphabet;
}

static void collect(detection *dets, int nboxes, int classes, int image_index, float thresh,
                    pdn_detection *out, int *count)
{
    int i, j;
    for (i = 0; i < nboxes; ++i) {
        for (j = 0; j < classes; ++j) {
            if (dets[i].prob[j] <= thresh) continue;
            pdn_detection *d = &out[(*count)++];
            d->image = image_index;
            d->class_id = j;
            d->prob = dets[i].prob[j];
            d->objectness = dets[i].objectness;
            d->x = dets[i].bbox.x; d->y = dets[i].bbox.y;
            d->w = dets[i].bbox.w; d->h = dets[i].bbox.h;
        }
    }
}

typedef struct {
    FILE *file;
    int failed;
} jpeg_output;

static void write_jpeg_bytes(void *context, void *data, int size)
{
    jpeg_output *out = context;
    if (fwrite(data, 1, size, out->file) != (size_t)size) out->failed = 1;
}

/* upstream's save_image_options() for JPEG at quality 90 (the CLI's), with the path as
 * given (upstream's copies it into a 256-byte buffer) and every write checked
 * (stbi_write_jpg() reports success for a file cut short by a full disk). */
static int save_jpeg(image im, const char *path)
{
    size_t pixels = (size_t)im.w * im.h, i;
    unsigned char *data = malloc(pixels * im.c);
    int k;
    for (k = 0; k < im.c; ++k) {
        for (i = 0; i < pixels; ++i) data[i * im.c + k] = (unsigned char)(255 * im.data[i + k * pixels]);
    }
    errno = 0;
    jpeg_output out = {fopen(path, "wb"), 0};
    if (!out.file) {
        free(data);
        return 0;
    }
    int encoded = stbi_write_jpg_to_func(write_jpeg_bytes, &out, im.w, im.h, im.c, data, 90);
    free(data);
    if (fclose(out.file)) out.failed = 1;
    return encoded && !out.failed;
}

int pdn_detect(network *net, const pdn_image *images, int n, float thresh, float hier_thresh,
               float nms, char **names, const char *labels_dir, const char **annotate,
               pdn_detection **out, int *count, int verbose, pdn_error *err)
{
    int classes = pdn_detection_classes(net);
    /* volatile: freed by the cleanup after a longjmp, assigned after setjmp. */
    float *volatile input = NULL;
    detection *volatile dets = NULL;
    volatile int nboxes = 0;
    pdn_detection *volatile found = NULL;
    int *volatile saved_batch = NULL;
    volatile int inside = -1;  /* the batch item the detection layers point at */
    *out = NULL;
    *count = 0;
    PDN_GUARDED_AT_BATCH(net, n, verbose, err, {
        if (inside >= 0) leave_batch_item(net, inside, saved_batch);
        if (dets) free_detections(dets, nboxes);
        free(input); free(found); free(saved_batch);
    }, {
        if (classes < 0) darknet_fail(DARKNET_ERR_CFG, "this network has no detection layer ([yolo], [region] or [detection])");
        int b, allocated = 0;
        input = calloc((size_t)net->inputs * n, sizeof(float));
        saved_batch = calloc(net->n, sizeof(int));
        for (b = 0; b < n; ++b) {
            image sized = letterbox_image(as_image(&images[b]), net->w, net->h);
            memcpy(input + (size_t)b * net->inputs, sized.data, sizeof(float) * net->inputs);
            free_image(sized);
        }
        network_predict(net, input);
        for (b = 0; b < n; ++b) {
            enter_batch_item(net, b, saved_batch);
            inside = b;
            int boxes = 0;
            dets = get_network_boxes(net, images[b].w, images[b].h, thresh, hier_thresh, 0, 1, &boxes);
            nboxes = boxes;
            leave_batch_item(net, b, saved_batch);
            inside = -1;
            if (nms) do_nms_sort(dets, nboxes, classes, nms);
            allocated += nboxes * classes;
            pdn_detection *grown = realloc(found, sizeof(pdn_detection) * (allocated ? allocated : 1));
            if (!grown) darknet_fail(DARKNET_ERR_MEMORY, "out of memory for %d detections", allocated);
            found = grown;
            collect(dets, nboxes, classes, b, thresh, found, count);
            if (annotate && annotate[b]) {
                image drawn = copy_image(as_image(&images[b]));
                draw_detections(drawn, dets, nboxes, thresh, names, get_alphabet(labels_dir), classes);
                int saved = save_jpeg(drawn, annotate[b]);
                free_image(drawn);
                if (!saved) darknet_fail(DARKNET_ERR_FILE, "cannot write the annotated image %s: %s", annotate[b],
                                         errno ? strerror(errno) : "write failed");
            }
            free_detections(dets, nboxes);
            dets = NULL;
        }
        free(input); free(saved_batch);
        input = NULL; saved_batch = NULL;
    });
    *out = found;
    return 0;
}

void pdn_detections_free(pdn_detection *dets)
{
    free(dets);
}

int pdn_classify(network *net, const pdn_image *im, float *probs, int verbose, pdn_error *err)
{
    image *volatile sized = NULL;
    image local;
    PDN_GUARDED_AT_BATCH(net, 1, verbose, err, if (sized) free_image(*sized), {
        local = letterbox_image(as_image(im), net->w, net->h);
        sized = &local;
        float *predictions = network_predict(net, local.data);
        if (net->hierarchy) hierarchy_predictions(predictions, net->outputs, net->hierarchy, 1, 1);
        memcpy(probs, predictions, sizeof(float) * net->outputs);
        free_image(local);
        sized = NULL;
    });
    return 0;
}

const char *pdn_warnings(void)
{
    return darknet_warnings();
}

static void forward_python_layer(layer l, network net)
{
    const python_layer *py = l.user;
    if (pdn_python_forward(py->id, l.batch, net.input, l.output) < 0) {
        darknet_fail(DARKNET_ERR_INTERNAL, "Python layer [%s] raised an exception", py->name);
    }
}

static void backward_python_layer(layer l, network net)
{
    darknet_fail(DARKNET_ERR_INTERNAL, "Python layer [%s] cannot be trained", ((python_layer *)l.user)->name);
}

/* The parser behind every section registered from Python: the options and input
 * shape go to Python, which answers with the output shape and an id. */
static layer parse_python_section(list *options, size_params params)
{
    int n = options->size, i = 0, shape[3];
    /* after a layer without spatial dims (softmax, cost, ...) the input is a vector */
    if (params.c * params.h * params.w != params.inputs) {
        params.c = params.inputs;
        params.h = params.w = 1;
    }
    const char **keys = calloc(n ? n : 1, sizeof(char *));
    const char **values = calloc(n ? n : 1, sizeof(char *));
    node *item;
    for (item = options->front; item; item = item->next, ++i) {
        kvp *pair = item->val;
        pair->used = 1;  /* Python gets every key; none is "unused" */
        keys[i] = pair->key;
        values[i] = pair->val;
    }
    int id = pdn_python_parse(params.section, params.c, params.h, params.w, params.batch, keys, values, n, shape);
    free(keys);
    free(values);
    if (id < 0) darknet_fail(DARKNET_ERR_CFG, "Python layer %s raised an exception in output_shape", params.section);
    if ((long long)shape[0] * shape[1] * shape[2] * params.batch > INT_MAX) {
        darknet_fail(DARKNET_ERR_CFG, "Python layer %s: output %d x %d x %d for a batch of %d is more than "
                     "Darknet's limit of %d values", params.section, shape[0], shape[1], shape[2], params.batch, INT_MAX);
    }

    layer l = {0};
    python_layer *py = calloc(1, sizeof(python_layer));
    py->id = id;
    snprintf(py->name, sizeof(py->name), "%.*s", (int)strlen(params.section) - 2, params.section + 1);
    l.type = CUSTOM;
    l.user = py;
    l.batch = params.batch;
    l.w = params.w; l.h = params.h; l.c = params.c;
    l.out_c = shape[0]; l.out_h = shape[1]; l.out_w = shape[2];
    l.inputs = params.inputs;
    l.outputs = shape[0] * shape[1] * shape[2];
    l.output = calloc((size_t)l.batch * l.outputs, sizeof(float));
    l.delta = calloc((size_t)l.batch * l.outputs, sizeof(float));
    l.forward = forward_python_layer;
    l.backward = backward_python_layer;
    return l;
}

int pdn_register_python_section(const char *name)
{
    return darknet_register_section(name, parse_python_section);
}

int pdn_unregister_python_section(const char *name)
{
    return darknet_unregister_section(name);
}
