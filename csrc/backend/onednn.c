/* Convolutions through oneDNN primitives: see onednn.h.
 *
 * Each layer keeps a plan per batch size it has run at: the convolution primitive,
 * its weights in the layout it chose, and reorders between the plain NCHW buffers
 * darknet passes around and the blocked layout the primitive computes in (none where
 * the primitive takes NCHW itself). A plan for the network's batch is made at load;
 * a smaller batch (the last chunk of predict) gets one more, made on first use.
 *
 * oneDNN runs on the same OpenMP runtime as our loops. A primitive splits its work
 * for the thread count in force when it is made and keeps that split, so plans are
 * made, and run, with the calling thread's OpenMP count set to darknet_threads(),
 * and made again after set_darknet_threads() changes it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"
#include "onednn.h"

#include "activations.h"
#include "convolutional_layer.h"
#include "parallel.h"

typedef struct {
    int batch;                            /* 0: an empty slot */
    int threads;                          /* the OpenMP threads it was made for */
    dnnl_primitive_t conv;
    dnnl_primitive_t to_blocked;          /* NCHW input -> the primitive's layout, or NULL */
    dnnl_primitive_t to_plain;            /* the primitive's output layout -> NCHW, or NULL */
    dnnl_memory_t input, src;             /* src == input without to_blocked */
    dnnl_memory_t dst, output;            /* dst == output without to_plain */
    dnnl_memory_t weights, bias;
} conv_plan;

typedef struct {
    conv_plan plans[2];                   /* [0]: the network's batch; [1]: the last other */
    int network_batch;
    dnnl_stream_t stream;                 /* one per layer: a network runs on one thread at a time */
    int darknet_activation;               /* applied after the primitive: no post-op matches it */
} onednn_conv;

static dnnl_engine_t engine;

/* The thread count for the next primitive made or run on this thread. */
static int use_darknet_threads(void)
{
    int n = darknet_threads();
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return n;
}

static void create_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

static dnnl_engine_t cpu_engine(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, create_engine);
    if (!engine) darknet_fail(DARKNET_ERR_INTERNAL, "oneDNN: no CPU engine");
    return engine;
}

/* index < 0: a failure in a forward pass, where darknet's handler names no layer */
static void fail(dnnl_status_t status, const char *what, int index)
{
    char where[32] = "";
    if (index >= 0) snprintf(where, sizeof(where), "layer %d: ", index);
    darknet_fail(status == dnnl_out_of_memory ? DARKNET_ERR_MEMORY : DARKNET_ERR_INTERNAL,
                 "%soneDNN could not %s (status %d)", where, what, (int)status);
}

/* Darknet activations as eltwise post-ops, with the constants of activations.h.
 * Returns 0 when no chain of post-ops computes the activation. */
static int append_activation(dnnl_post_ops_t ops, ACTIVATION a)
{
    switch (a) {
    case LINEAR: return 1;
    case RELU: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_relu, 0.f, 0.f) == dnnl_success;
    case LEAKY: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_relu, .1f, 0.f) == dnnl_success;
    case LOGISTIC: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_logistic, 0.f, 0.f) == dnnl_success;
    case TANH: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_tanh, 0.f, 0.f) == dnnl_success;
    case ELU: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_elu, 1.f, 0.f) == dnnl_success;
    case HARDTAN: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_clip, -1.f, 1.f) == dnnl_success;
    case MISH: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_mish, 0.f, 0.f) == dnnl_success;
    case SWISH: return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_swish, 1.f, 0.f) == dnnl_success;
    case LOGGY:   /* 2 logistic(x) - 1 */
        return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_logistic, 0.f, 0.f) == dnnl_success
            && dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_linear, 2.f, -1.f) == dnnl_success;
    case SELU:    /* 1.0507 elu_1.6732(x) */
        return dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_elu, 1.6732f, 0.f) == dnnl_success
            && dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_linear, 1.0507f, 0.f) == dnnl_success;
    default: return 0;
    }
}

static void destroy_plan(conv_plan *p)
{
    dnnl_primitive_t primitives[] = {p->conv, p->to_blocked, p->to_plain};
    /* src/dst alias input/output when there is no reorder: destroyed once */
    dnnl_memory_t memories[] = {p->input, p->src != p->input ? p->src : NULL,
                                p->output, p->dst != p->output ? p->dst : NULL, p->weights, p->bias};
    size_t i;
    for (i = 0; i < sizeof(primitives)/sizeof(*primitives); ++i) dnnl_primitive_destroy(primitives[i]);
    for (i = 0; i < sizeof(memories)/sizeof(*memories); ++i) dnnl_memory_destroy(memories[i]);
    memset(p, 0, sizeof(*p));
}

static void free_onednn_conv(void *state)
{
    onednn_conv *s = state;
    destroy_plan(&s->plans[0]);
    destroy_plan(&s->plans[1]);
    dnnl_stream_destroy(s->stream);
    free(s);
}

/* A memory of descriptor md: over the caller's buffer (data), or allocated by oneDNN. */
static dnnl_status_t new_memory(dnnl_memory_t *m, const_dnnl_memory_desc_t md, void *data)
{
    return dnnl_memory_create(m, md, cpu_engine(), data ? data : DNNL_MEMORY_ALLOCATE);
}

/* A reorder between src_md and dst_md, or NULL when they are the same layout. */
static dnnl_status_t new_reorder(dnnl_primitive_t *r, const_dnnl_memory_desc_t src_md,
                                 const_dnnl_memory_desc_t dst_md)
{
    dnnl_primitive_desc_t pd;
    dnnl_status_t s;
    *r = NULL;
    if (dnnl_memory_desc_equal(src_md, dst_md)) return dnnl_success;
    s = dnnl_reorder_primitive_desc_create(&pd, src_md, cpu_engine(), dst_md, cpu_engine(), NULL);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_create(r, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* The layer's weights and biases as the primitive computes with them: with the
 * batch normalization folded in (the CPU denominator, as darknet's forward pass). */
static dnnl_status_t load_plan_weights(conv_plan *p, const layer *l, const_dnnl_memory_desc_t plain_md,
                                       const_dnnl_memory_desc_t chosen_md, dnnl_stream_t stream)
{
    float *weights = NULL, *biases;
    dnnl_memory_t plain = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_desc_t bias_md;
    dnnl_dims_t bias_dims = {l->n};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_create_with_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x)) != dnnl_success) return s;
    s = new_memory(&p->bias, bias_md, NULL);
    dnnl_memory_desc_destroy(bias_md);
    if (s != dnnl_success) return s;
    if ((s = dnnl_memory_get_data_handle(p->bias, (void **)&biases)) != dnnl_success) return s;
    weights = cpu_inference_weights(l, biases);
    if ((s = new_memory(&plain, plain_md, weights)) != dnnl_success) goto done;
    if ((s = new_memory(&p->weights, chosen_md, NULL)) != dnnl_success) goto done;
    if ((s = new_reorder(&reorder, plain_md, chosen_md)) != dnnl_success) goto done;
    if (reorder) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, p->weights}};
        if ((s = dnnl_primitive_execute(reorder, stream, 2, args)) != dnnl_success) goto done;
        if ((s = dnnl_stream_wait(stream)) != dnnl_success) goto done;
    } else {
        void *handle;
        if ((s = dnnl_memory_get_data_handle(p->weights, &handle)) != dnnl_success) goto done;
        memcpy(handle, weights, sizeof(float) * (size_t)l->nweights);
    }
done:
    dnnl_primitive_destroy(reorder);
    dnnl_memory_destroy(plain);
    cpu_release_weights(l, weights);
    return s;
}

/* Everything of a plan but the descriptors' creation, which make_plan() owns. */
static dnnl_status_t fill_plan(conv_plan *p, const layer *l, dnnl_primitive_desc_t pd,
                               const_dnnl_memory_desc_t input_md, const_dnnl_memory_desc_t output_md,
                               const_dnnl_memory_desc_t plain_weights_md, dnnl_stream_t stream)
{
    const_dnnl_memory_desc_t src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const_dnnl_memory_desc_t dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const_dnnl_memory_desc_t weights_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_status_t s;
    /* the plain buffers are the caller's: their addresses are set at each run */
    if ((s = new_memory(&p->input, input_md, DNNL_MEMORY_NONE)) != dnnl_success) return s;
    if ((s = new_memory(&p->output, output_md, DNNL_MEMORY_NONE)) != dnnl_success) return s;
    if ((s = new_reorder(&p->to_blocked, input_md, src_md)) != dnnl_success) return s;
    if ((s = new_reorder(&p->to_plain, dst_md, output_md)) != dnnl_success) return s;
    p->src = p->input;
    if (p->to_blocked && (s = new_memory(&p->src, src_md, NULL)) != dnnl_success) return s;
    p->dst = p->output;
    if (p->to_plain && (s = new_memory(&p->dst, dst_md, NULL)) != dnnl_success) return s;
    if ((s = load_plan_weights(p, l, plain_weights_md, weights_md, stream)) != dnnl_success) return s;
    return dnnl_primitive_create(&p->conv, pd);
}

/* The plan for batch `batch`. dnnl_unimplemented: no primitive for this layer. */
static dnnl_status_t make_plan(conv_plan *p, const layer *l, int batch, dnnl_stream_t stream)
{
    const int threads = use_darknet_threads();
    const int g = l->groups;
    const int pad_bottom = (l->out_h - 1)*l->stride + l->size - l->h - l->pad;  /* may be < 0 */
    const int pad_right = (l->out_w - 1)*l->stride + l->size - l->w - l->pad;
    dnnl_dims_t input_dims = {batch, l->c, l->h, l->w}, output_dims = {batch, l->n, l->out_h, l->out_w};
    dnnl_dims_t weight_dims = {g, l->n/g, l->c/g, l->size, l->size}, bias_dims = {l->n};
    dnnl_dims_t strides = {l->stride, l->stride}, dilates = {0, 0};
    dnnl_dims_t pad_l = {l->pad, l->pad}, pad_r = {pad_bottom, pad_right};
    /* darknet's weights: [n][c/groups][size][size], group by group (goihw) */
    const int weight_ndims = g > 1 ? 5 : 4;
    const dnnl_format_tag_t weight_tag = g > 1 ? dnnl_goihw : dnnl_oihw;
    const dnnl_dim_t *wdims = g > 1 ? weight_dims : weight_dims + 1;
    dnnl_memory_desc_t input_md = NULL, output_md = NULL, src_any = NULL, dst_any = NULL;
    dnnl_memory_desc_t weights_plain = NULL, weights_any = NULL, bias_md = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;

    memset(p, 0, sizeof(*p));
    if ((s = dnnl_memory_desc_create_with_tag(&input_md, 4, input_dims, dnnl_f32, dnnl_nchw))
        || (s = dnnl_memory_desc_create_with_tag(&output_md, 4, output_dims, dnnl_f32, dnnl_nchw))
        || (s = dnnl_memory_desc_create_with_tag(&src_any, 4, input_dims, dnnl_f32, dnnl_format_tag_any))
        || (s = dnnl_memory_desc_create_with_tag(&dst_any, 4, output_dims, dnnl_f32, dnnl_format_tag_any))
        || (s = dnnl_memory_desc_create_with_tag(&weights_plain, weight_ndims, wdims, dnnl_f32, weight_tag))
        || (s = dnnl_memory_desc_create_with_tag(&weights_any, weight_ndims, wdims, dnnl_f32, dnnl_format_tag_any))
        || (s = dnnl_memory_desc_create_with_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x))
        || (s = dnnl_primitive_attr_create(&attr))
        || (s = dnnl_post_ops_create(&ops)))
        goto done;
    if (append_activation(ops, l->activation) && (s = dnnl_primitive_attr_set_post_ops(attr, ops))) goto done;
    s = dnnl_convolution_forward_primitive_desc_create(&pd, cpu_engine(), dnnl_forward_inference,
                                                       dnnl_convolution_direct, src_any, weights_any, bias_md,
                                                       dst_any, strides, dilates, pad_l, pad_r, attr);
    if (s == dnnl_success) s = fill_plan(p, l, pd, input_md, output_md, weights_plain, stream);
    if (s == dnnl_success) {
        p->batch = batch;
        p->threads = threads;
    } else {
        destroy_plan(p);
    }
done:
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(input_md);
    dnnl_memory_desc_destroy(output_md);
    dnnl_memory_desc_destroy(src_any);
    dnnl_memory_desc_destroy(dst_any);
    dnnl_memory_desc_destroy(weights_plain);
    dnnl_memory_desc_destroy(weights_any);
    dnnl_memory_desc_destroy(bias_md);
    return s;
}

/* The plan for the layer's batch and the thread count now in force. */
static conv_plan *plan_for(onednn_conv *s, const layer *l)
{
    const int threads = use_darknet_threads();
    conv_plan *p = &s->plans[l->batch == s->network_batch ? 0 : 1];
    dnnl_status_t status;
    if (p->batch == l->batch && p->threads == threads) return p;
    destroy_plan(p);
    status = make_plan(p, l, l->batch, s->stream);
    if (status != dnnl_success) fail(status, "make the convolution for this batch", -1);
    return p;
}

static void forward_onednn_convolutional(layer l, network net)
{
    onednn_conv *s = l.backend;
    conv_plan *p;
    dnnl_status_t status;
    if (net.train) {  /* training keeps darknet's path, which records what backward needs */
        forward_convolutional_layer(l, net);
        return;
    }
    p = plan_for(s, &l);
    if ((status = dnnl_memory_set_data_handle(p->input, net.input))
        || (status = dnnl_memory_set_data_handle(p->output, l.output)))
        fail(status, "set the layer's buffers", -1);
    if (p->to_blocked) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, p->input}, {DNNL_ARG_TO, p->src}};
        if ((status = dnnl_primitive_execute(p->to_blocked, s->stream, 2, args))) fail(status, "reorder the input", -1);
    }
    {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->weights},
                                  {DNNL_ARG_BIAS, p->bias}, {DNNL_ARG_DST, p->dst}};
        if ((status = dnnl_primitive_execute(p->conv, s->stream, 4, args))) fail(status, "run the convolution", -1);
    }
    if (p->to_plain) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, p->dst}, {DNNL_ARG_TO, p->output}};
        if ((status = dnnl_primitive_execute(p->to_plain, s->stream, 2, args))) fail(status, "reorder the output", -1);
    }
    if ((status = dnnl_stream_wait(s->stream))) fail(status, "finish the convolution", -1);
    if (s->darknet_activation) activate_array(l.output, l.outputs*l.batch, l.activation);
}

/* 1x1 kernels stay on im2col + GEMM, whose column matrix is the input itself (or a
 * strided copy): measured faster there than oneDNN with its reorders to and from the
 * blocked layout (yolov3-tiny's and ResNet-18's 1x1 layers, tools/profile_layers.py). */
static int eligible(const layer *l)
{
    return l->type == CONVOLUTIONAL && l->size > 1 && !l->binary && !l->xnor && !l->backend;  /* not Winograd's */
}

int onednn_layer(const layer *l)
{
    return l->forward == forward_onednn_convolutional;
}

int onednn_network(network *net)
{
    int i, used = 0;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        onednn_conv *s;
        dnnl_post_ops_t probe;
        dnnl_status_t status;
        if (!eligible(l)) continue;
        if (!(s = calloc(1, sizeof(*s)))) darknet_fail(DARKNET_ERR_MEMORY, "layer %d: no memory for oneDNN", i);
        if ((status = dnnl_stream_create(&s->stream, cpu_engine(), dnnl_stream_default_flags))) {
            free(s);
            fail(status, "create a stream", i);
        }
        if ((status = dnnl_post_ops_create(&probe))) {
            free_onednn_conv(s);
            fail(status, "create post-ops", i);
        }
        s->darknet_activation = !append_activation(probe, l->activation);
        dnnl_post_ops_destroy(probe);
        s->network_batch = l->batch;
        status = make_plan(&s->plans[0], l, l->batch, s->stream);
        if (status == dnnl_unimplemented) {  /* darknet's own path stays */
            free_onednn_conv(s);
            continue;
        }
        if (status != dnnl_success) {
            free_onednn_conv(s);
            fail(status, "make the convolution", i);
        }
        l->backend = s;
        l->free_backend = free_onednn_conv;
        l->forward = forward_onednn_convolutional;
        ++used;
    }
    return used;
}
