/* Convolutions through oneDNN primitives: see onednn.h.
 *
 * Each layer keeps a plan per batch size it has run at: the convolution primitive,
 * its weights in the layout it chose, and reorders between the plain NCHW buffers
 * darknet passes around and the blocked layout the primitive computes in (none where
 * the primitive takes NCHW itself). A plan for the network's batch is made at load;
 * a smaller batch (the last chunk of predict) gets one more, made on first use.
 *
 * int8 layers compute in NHWC. Where the next layer is an int8 convolution too (or
 * a maxpool and then one), the convolution writes int8 steps of the next one's input
 * scale straight into an int8_tensor, which the next reads without a reorder (maxima
 * commute with the steps, so a maxpool between them runs on the steps:
 * onednn_pool.c). The steps are those a quantizing reorder of the float32 output
 * would make: round to nearest, saturate. The float32 l.output is written from them
 * where a route or shortcut reads it too, else only when asked for
 * (onednn_plain_output). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "cpu.h"
#include "onednn.h"
#include "onednn_pool.h"
#include "onednn_util.h"

#include "activations.h"
#include "convolutional_layer.h"

typedef struct {
    int batch;                            /* 0: an empty slot */
    int threads;                          /* the OpenMP threads it was made for */
    dnnl_primitive_t conv;
    dnnl_primitive_t to_blocked;          /* NCHW input -> the primitive's layout, or NULL */
    dnnl_primitive_t to_plain;            /* the primitive's output layout -> NCHW, or NULL */
    dnnl_memory_t input, src;             /* src == input without to_blocked */
    dnnl_memory_t dst, output;            /* dst == output without to_plain */
    dnnl_memory_t plain;                  /* what to_plain writes: output, or l.output beside int8 steps */
    dnnl_memory_t weights, bias;
    dnnl_memory_t input_scale, weight_scales;  /* int8 layers: the steps of src and weights */
} conv_plan;

typedef struct {
    int8_link link;                       /* int8 tensors read and written (first: onednn_pool.c's too) */
    conv_plan plans[2];                   /* [0]: the network's batch; [1]: the last other */
    int network_batch;
    dnnl_stream_t stream;                 /* one per layer: a network runs on one thread at a time */
    int darknet_activation;               /* applied after the primitive: no post-op matches it */
    onednn_int8 int8;                     /* scale 0: float32 */
    char kernel[48];                      /* the implementation oneDNN chose */
} onednn_conv;

static void destroy_plan(conv_plan *p)
{
    dnnl_primitive_t primitives[] = {p->conv, p->to_blocked, p->to_plain};
    /* src/dst alias input/output when there is no reorder: destroyed once */
    dnnl_memory_t memories[] = {p->input, p->src != p->input ? p->src : NULL,
                                p->output, p->dst != p->output ? p->dst : NULL, p->weights, p->bias,
                                p->plain != p->output ? p->plain : NULL,
                                p->input_scale, p->weight_scales};
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
    onednn_free_tensor(&s->link.out);
    free(s);
}

/* Symmetric int8 steps per output channel: scales[k] = max |w| / levels over filter k. */
static signed char *quantize_weights(const layer *l, const float *weights, float *scales, int levels)
{
    const size_t per_filter = (size_t)l->nweights / l->n;
    signed char *q = malloc((size_t)l->nweights);  /* checked: fails through darknet_fail */
    int k;
    for (k = 0; k < l->n; ++k) {
        const float *w = weights + k*per_filter;
        float largest = 0;
        size_t i;
        for (i = 0; i < per_filter; ++i) largest = fabsf(w[i]) > largest ? fabsf(w[i]) : largest;
        scales[k] = largest > 0 ? largest/levels : 1;
        for (i = 0; i < per_filter; ++i) q[k*per_filter + i] = (signed char)lrintf(w[i]/scales[k]);
    }
    return q;
}

/* Without VNNI, oneDNN multiplies u8 inputs by s8 weights with vpmaddubsw, whose sums
 * of two products saturate at 32767 (255 x 127 x 2 does not fit): weights of 7 bits
 * keep those sums exact. Signed inputs take another path that oneDNN keeps exact itself
 * (it shifts them to u8 and halves the weights' steps). */
static int weight_levels(const onednn_int8 *int8)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: case dnnl_cpu_isa_avx: case dnnl_cpu_isa_avx2: case dnnl_cpu_isa_avx512_core:
        return int8->is_signed ? 127 : 63;
    default:
        return 127;
    }
}

/* The layer's weights and biases as the primitive computes with them: with the
 * batch normalization folded in (the CPU denominator, as darknet's forward pass),
 * as int8 steps with their scales for an int8 layer. */
static dnnl_status_t load_plan_weights(conv_plan *p, const layer *l, const onednn_conv *st,
                                       const_dnnl_memory_desc_t plain_md, const_dnnl_memory_desc_t chosen_md)
{
    float *weights = NULL, *biases, *scales;
    signed char *steps = NULL;
    dnnl_memory_t plain = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_status_t s;
    if ((s = onednn_floats(&p->bias, l->n, &biases)) != dnnl_success) return s;
    weights = cpu_inference_weights(l, biases);
    if (st->int8.scale > 0) {
        float *input_scale;
        if ((s = onednn_floats(&p->weight_scales, l->n, &scales))
            || (s = onednn_floats(&p->input_scale, 1, &input_scale)))
            goto done;
        *input_scale = st->int8.scale;
        steps = quantize_weights(l, weights, scales, weight_levels(&st->int8));
    }
    if ((s = onednn_memory(&plain, plain_md, steps ? (void *)steps : (void *)weights)) != dnnl_success) goto done;
    if ((s = onednn_memory(&p->weights, chosen_md, NULL)) != dnnl_success) goto done;
    if ((s = onednn_reorder(&reorder, plain_md, chosen_md, 0)) != dnnl_success) goto done;
    if (reorder) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, p->weights}};
        if ((s = dnnl_primitive_execute(reorder, st->stream, 2, args)) != dnnl_success) goto done;
        if ((s = dnnl_stream_wait(st->stream)) != dnnl_success) goto done;
    } else {
        void *handle;
        if ((s = dnnl_memory_get_data_handle(p->weights, &handle)) != dnnl_success) goto done;
        memcpy(handle, steps ? (void *)steps : (void *)weights, dnnl_memory_desc_get_size(plain_md));
    }
done:
    dnnl_primitive_destroy(reorder);
    dnnl_memory_destroy(plain);
    free(steps);
    cpu_release_weights(l, weights);
    return s;
}

/* Everything of a plan but the descriptors' creation, which make_plan() owns. */
static dnnl_status_t fill_plan(conv_plan *p, const layer *l, onednn_conv *st, dnnl_primitive_desc_t pd,
                               const_dnnl_memory_desc_t input_md, const_dnnl_memory_desc_t output_md,
                               const_dnnl_memory_desc_t plain_weights_md)
{
    const_dnnl_memory_desc_t src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const_dnnl_memory_desc_t dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const_dnnl_memory_desc_t weights_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char *kernel = NULL;
    dnnl_status_t s;
    /* the plain buffers are the caller's: their addresses are set at each run */
    if ((s = onednn_memory(&p->input, input_md, DNNL_MEMORY_NONE)) != dnnl_success) return s;
    if ((s = onednn_memory(&p->output, output_md, DNNL_MEMORY_NONE)) != dnnl_success) return s;
    /* none where the layer reads or writes int8 tensors: input_md and output_md are theirs */
    if ((s = onednn_reorder(&p->to_blocked, input_md, src_md, st->int8.scale > 0 ? ONEDNN_SCALE_DST : 0))
        || (s = onednn_reorder(&p->to_plain, dst_md, output_md, 0)))
        return s;
    p->src = p->input;
    if (p->to_blocked && (s = onednn_memory(&p->src, src_md, NULL)) != dnnl_success) return s;
    p->dst = p->plain = p->output;
    if (p->to_plain && (s = onednn_memory(&p->dst, dst_md, NULL)) != dnnl_success) return s;
    if (st->link.out.data && st->link.plain && (s = onednn_plain_copy(output_md, &p->plain, &p->to_plain))) return s;
    if ((s = load_plan_weights(p, l, st, plain_weights_md, weights_md)) != dnnl_success) return s;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &kernel) == dnnl_success && kernel) {
        snprintf(st->kernel, sizeof(st->kernel), "%s", kernel);
    }
    return dnnl_primitive_create(&p->conv, pd);
}

/* int8 scales: one for the input, one per output channel (and group) for the weights. */
static dnnl_status_t set_int8_scales(dnnl_primitive_attr_t attr, int grouped)
{
    dnnl_status_t s = dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0);
    return s ? s : dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, grouped ? 3 : 1);
}

/* The plan for batch `batch`. dnnl_unimplemented: no primitive for this layer. */
static dnnl_status_t make_plan(conv_plan *p, const layer *l, onednn_conv *st, int batch)
{
    const int threads = onednn_threads();
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
    const int int8 = st->int8.scale > 0;
    const dnnl_data_type_t src_type = !int8 ? dnnl_f32 : st->int8.is_signed ? dnnl_s8 : dnnl_u8;
    const dnnl_data_type_t weight_type = int8 ? dnnl_s8 : dnnl_f32;
    const dnnl_data_type_t dst_type = st->link.out.data ? st->link.out.type : dnnl_f32;
    /* int8 in NHWC, the layout of the tensors int8 layers pass on; float32 as oneDNN likes */
    const dnnl_format_tag_t layout = int8 ? dnnl_nhwc : dnnl_format_tag_any;
    dnnl_memory_desc_t input_md = NULL, output_md = NULL, src_any = NULL, dst_any = NULL;
    dnnl_memory_desc_t weights_plain = NULL, weights_any = NULL, bias_md = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;

    memset(p, 0, sizeof(*p));
    if ((s = st->link.from ? dnnl_memory_desc_create_with_tag(&input_md, 4, input_dims, src_type, dnnl_nhwc)
                           : dnnl_memory_desc_create_with_tag(&input_md, 4, input_dims, dnnl_f32, dnnl_nchw))
        || (s = st->link.out.data ? dnnl_memory_desc_create_with_tag(&output_md, 4, output_dims, dst_type, dnnl_nhwc)
                                  : dnnl_memory_desc_create_with_tag(&output_md, 4, output_dims, dnnl_f32, dnnl_nchw))
        || (s = dnnl_memory_desc_create_with_tag(&src_any, 4, input_dims, src_type, layout))
        || (s = dnnl_memory_desc_create_with_tag(&dst_any, 4, output_dims, dst_type, layout))
        || (s = dnnl_memory_desc_create_with_tag(&weights_plain, weight_ndims, wdims, weight_type, weight_tag))
        || (s = dnnl_memory_desc_create_with_tag(&weights_any, weight_ndims, wdims, weight_type, dnnl_format_tag_any))
        || (s = dnnl_memory_desc_create_with_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x))
        || (s = dnnl_primitive_attr_create(&attr))
        || (s = dnnl_post_ops_create(&ops)))
        goto done;
    if (onednn_activation(ops, l->activation) && (s = dnnl_primitive_attr_set_post_ops(attr, ops))) goto done;
    if (int8 && (s = set_int8_scales(attr, g > 1))) goto done;
    if (st->link.out.data && (s = dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_DST, 0))) goto done;
    s = dnnl_convolution_forward_primitive_desc_create(&pd, onednn_engine(), dnnl_forward_inference,
                                                       dnnl_convolution_direct, src_any, weights_any, bias_md,
                                                       dst_any, strides, dilates, pad_l, pad_r, attr);
    if (s == dnnl_success) s = fill_plan(p, l, st, pd, input_md, output_md, weights_plain);
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
    const int threads = onednn_threads();
    conv_plan *p = &s->plans[l->batch == s->network_batch ? 0 : 1];
    dnnl_status_t status;
    if (p->batch == l->batch && p->threads == threads) return p;
    destroy_plan(p);
    status = make_plan(p, l, s, l->batch);
    if (status != dnnl_success) onednn_fail(status, "make the convolution for this batch", -1);
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
    if ((status = dnnl_memory_set_data_handle(p->input, s->link.from ? s->link.from->data : net.input))
        || (status = dnnl_memory_set_data_handle(p->output, s->link.out.data ? s->link.out.data : l.output))
        || (p->plain != p->output && (status = dnnl_memory_set_data_handle(p->plain, l.output))))
        onednn_fail(status, "set the layer's buffers", -1);
    if (p->to_blocked) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, p->input}, {DNNL_ARG_TO, p->src},
                                  {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, p->input_scale}};
        if ((status = dnnl_primitive_execute(p->to_blocked, s->stream, p->input_scale ? 3 : 2, args)))
            onednn_fail(status, "reorder the input", -1);
    }
    {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->weights},
                                  {DNNL_ARG_BIAS, p->bias}, {DNNL_ARG_DST, p->dst},
                                  {DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, p->input_scale},
                                  {DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, p->weight_scales},
                                  {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, s->link.out.scale_memory}};
        if ((status = dnnl_primitive_execute(p->conv, s->stream, !p->input_scale ? 4 : s->link.out.data ? 7 : 6,
                                             args)))
            onednn_fail(status, "run the convolution", -1);
    }
    if (p->to_plain) {  /* the float32 output, from the primitive's layout or the int8 steps */
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, p->dst}, {DNNL_ARG_TO, p->plain}};
        status = s->link.out.data ? onednn_run_plain_copy(p->to_plain, s->stream, p->dst, p->plain, &s->link.out)
                                  : dnnl_primitive_execute(p->to_plain, s->stream, 2, args);
        if (status) onednn_fail(status, "reorder the output", -1);
    }
    if ((status = dnnl_stream_wait(s->stream))) onednn_fail(status, "finish the convolution", -1);
    if (s->darknet_activation) activate_array(l.output, l.outputs*l.batch, l.activation);
}

/* In float32, 1x1 kernels stay on im2col + GEMM, whose column matrix is the input
 * itself (or a strided copy): measured faster there than oneDNN with its reorders to
 * and from the blocked layout (yolov3-tiny's and ResNet-18's 1x1 layers,
 * tools/profile_layers.py). In int8 every convolution given a scale is oneDNN's. */
static int eligible(const layer *l, const onednn_int8 *int8)
{
    if (l->type != CONVOLUTIONAL || l->binary || l->xnor || l->backend) return 0;  /* backend: Winograd's */
    return int8 ? int8->scale > 0 : l->size > 1;
}

int onednn_layer(const layer *l)
{
    return l->forward == forward_onednn_convolutional;
}

const char *onednn_layer_kernel(const layer *l)
{
    return onednn_layer(l) ? ((const onednn_conv *)l->backend)->kernel : "";
}

int onednn_layer_int8(const layer *l)
{
    return onednn_layer(l) && ((const onednn_conv *)l->backend)->int8.scale > 0;
}

/* Whether a layer other than the next reads layer j's output (route, shortcut): then
 * it writes l.output as well as the int8 steps it passes on. */
static int read_elsewhere(const network *net, int j)
{
    int i, k;
    for (i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        if (l->type == SHORTCUT && l->index == j) return 1;
        if (l->type == ROUTE) {
            for (k = 0; k < l->n; ++k) if (l->input_layers[k] == j) return 1;
        }
    }
    return 0;
}

/* Makes the network-batch plan again, after the layer's int8 links changed. */
static void remake_plan(layer *l, int index)
{
    onednn_conv *s = l->backend;
    dnnl_status_t status;
    destroy_plan(&s->plans[0]);
    destroy_plan(&s->plans[1]);
    if ((status = make_plan(&s->plans[0], l, s, l->batch))) onednn_fail(status, "make the int8 convolution", index);
}

/* Links each int8 convolution to the next layer where that is an int8 convolution,
 * directly or through a maxpool (see the top of this file), then makes the plan of
 * every linked convolution again, once. */
static void link_int8_layers(network *net)
{
    int j;
    for (j = 0; j + 1 < net->n; ++j) {
        layer *l = &net->layers[j], *next = &net->layers[j + 1], *consumer = NULL, *pool = NULL;
        onednn_conv *s = l->backend, *c;
        dnnl_status_t status;
        if (!onednn_layer_int8(l) || s->darknet_activation) continue;
        if (onednn_layer_int8(next)) {
            consumer = next;
        } else if (j + 2 < net->n && onednn_layer_int8(&net->layers[j + 2]) && onednn_pool_suits(next)) {
            pool = next;
            consumer = &net->layers[j + 2];
        }
        if (!consumer) continue;
        c = consumer->backend;
        status = onednn_tensor(&s->link.out, (size_t)l->outputs * l->batch, c->int8.is_signed ? dnnl_s8 : dnnl_u8,
                               c->int8.scale);
        if (status) onednn_fail(status, "make an int8 tensor", j);
        s->link.plain = read_elsewhere(net, j);
        c->link.from = pool ? onednn_pool_int8(pool, &s->link.out, read_elsewhere(net, j + 1), j + 1) : &s->link.out;
    }
    for (j = 0; j < net->n; ++j) {
        const onednn_conv *s = onednn_layer_int8(&net->layers[j]) ? net->layers[j].backend : NULL;
        if (s && (s->link.from || s->link.out.data)) remake_plan(&net->layers[j], j);
    }
}

int onednn_network(network *net, const onednn_int8 *int8)
{
    int i, used = 0;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        onednn_conv *s;
        dnnl_post_ops_t probe;
        dnnl_status_t status;
        if (!eligible(l, int8 ? &int8[i] : NULL)) continue;
        if (!(s = calloc(1, sizeof(*s)))) darknet_fail(DARKNET_ERR_MEMORY, "layer %d: no memory for oneDNN", i);
        if (int8) s->int8 = int8[i];
        if ((status = dnnl_stream_create(&s->stream, onednn_engine(), dnnl_stream_default_flags))) {
            free(s);
            onednn_fail(status, "create a stream", i);
        }
        if ((status = dnnl_post_ops_create(&probe))) {
            free_onednn_conv(s);
            onednn_fail(status, "create post-ops", i);
        }
        s->darknet_activation = !onednn_activation(probe, l->activation);
        dnnl_post_ops_destroy(probe);
        s->network_batch = l->batch;
        status = make_plan(&s->plans[0], l, s, l->batch);
        if (status == dnnl_unimplemented) {  /* darknet's own path (or float32) stays */
            free_onednn_conv(s);
            continue;
        }
        if (status != dnnl_success) {
            free_onednn_conv(s);
            onednn_fail(status, "make the convolution", i);
        }
        l->backend = s;
        l->free_backend = free_onednn_conv;
        l->forward = forward_onednn_convolutional;
        ++used;
    }
    if (int8) link_int8_layers(net);
    return used;
}

void onednn_plain_output(const layer *l, int n)
{
    const int8_link *link = onednn_layer(l) || onednn_pool_layer(l) ? l->backend : NULL;
    if (link && link->out.data && !link->plain) onednn_dequantize(&link->out, n, l->out_c, l->out_h, l->out_w, l->output);
}

const char *onednn_cpu_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2_vnni_2: return "avx2_vnni_2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_fp16: return "avx512_core_fp16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_amx_fp16: return "avx512_core_amx_fp16";
    default: return "other";
    }
}

void onednn_probe_kernel(int int8, char *name, int size)
{
    dnnl_dims_t src_dims = {1, 64, 56, 56}, weight_dims = {64, 64, 3, 3}, bias_dims = {64};
    dnnl_dims_t strides = {1, 1}, dilates = {0, 0}, pad = {1, 1};
    dnnl_memory_desc_t src = NULL, weights = NULL, bias = NULL, dst = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const char *found = NULL;
    snprintf(name, size, "none");
    if (onednn_engine_or_null()
        && !dnnl_memory_desc_create_with_tag(&src, 4, src_dims, int8 ? dnnl_u8 : dnnl_f32, dnnl_format_tag_any)
        && !dnnl_memory_desc_create_with_tag(&weights, 4, weight_dims, int8 ? dnnl_s8 : dnnl_f32, dnnl_format_tag_any)
        && !dnnl_memory_desc_create_with_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_x)
        && !dnnl_memory_desc_create_with_tag(&dst, 4, src_dims, dnnl_f32, dnnl_format_tag_any)
        && !dnnl_primitive_attr_create(&attr) && (!int8 || !set_int8_scales(attr, 0))
        && !dnnl_convolution_forward_primitive_desc_create(&pd, onednn_engine(), dnnl_forward_inference,
                                                           dnnl_convolution_direct, src, weights, bias, dst,
                                                           strides, dilates, pad, pad, attr)
        && !dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &found) && found)
        snprintf(name, size, "%s", found);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(src);
    dnnl_memory_desc_destroy(weights);
    dnnl_memory_desc_destroy(bias);
    dnnl_memory_desc_destroy(dst);
}
