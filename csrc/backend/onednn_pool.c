/* Maxpool on int8 steps through oneDNN: see onednn_pool.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "onednn_pool.h"

#include "maxpool_layer.h"

typedef struct {
    int batch, threads;                   /* batch 0: an empty slot */
    dnnl_primitive_t pool, to_plain;      /* to_plain: the float32 l.output others read, or NULL */
    dnnl_memory_t src, dst, plain;        /* over the int8 tensors and l.output, set at each run */
} pool_plan;

typedef struct {
    int8_link link;                       /* first, as in onednn.c's convolutions */
    pool_plan plans[2];                   /* [0]: the network's batch; [1]: the last other */
    int network_batch;
    dnnl_stream_t stream;
    char kernel[48];                      /* the implementation oneDNN chose */
} onednn_pool;

/* darknet's windows: from -pad/2, size x size, every stride; oneDNN's padding on each
 * side makes the same windows where it is >= 0 (and is ignored by max pooling). */
static int padding_after(const layer *l, int in, int out)
{
    return (out - 1)*l->stride + l->size - in - l->pad/2;
}

int onednn_pool_suits(const layer *l)
{
    return l->type == MAXPOOL && !l->backend && l->pad/2 < l->size
        && padding_after(l, l->w, l->out_w) >= 0 && padding_after(l, l->w, l->out_w) < l->size
        && padding_after(l, l->h, l->out_h) >= 0 && padding_after(l, l->h, l->out_h) < l->size;
}

static void destroy_plan(pool_plan *p)
{
    dnnl_primitive_destroy(p->pool);
    dnnl_primitive_destroy(p->to_plain);
    dnnl_memory_destroy(p->src);
    dnnl_memory_destroy(p->dst);
    dnnl_memory_destroy(p->plain);
    memset(p, 0, sizeof(*p));
}

static void free_onednn_pool(void *state)
{
    onednn_pool *s = state;
    destroy_plan(&s->plans[0]);
    destroy_plan(&s->plans[1]);
    dnnl_stream_destroy(s->stream);
    onednn_free_tensor(&s->link.out);
    free(s);
}

static dnnl_status_t make_plan(pool_plan *p, const layer *l, onednn_pool *s, int batch)
{
    dnnl_dims_t src_dims = {batch, l->c, l->h, l->w}, dst_dims = {batch, l->out_c, l->out_h, l->out_w};
    dnnl_dims_t strides = {l->stride, l->stride}, window = {l->size, l->size}, dilation = {0, 0};
    dnnl_dims_t pad_l = {l->pad/2, l->pad/2};
    dnnl_dims_t pad_r = {padding_after(l, l->h, l->out_h), padding_after(l, l->w, l->out_w)};
    dnnl_memory_desc_t src_md = NULL, dst_md = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const char *kernel = NULL;
    dnnl_status_t status;
    memset(p, 0, sizeof(*p));
    p->threads = onednn_threads();
    if (!(status = dnnl_memory_desc_create_with_tag(&src_md, 4, src_dims, s->link.from->type, dnnl_nhwc))
        && !(status = dnnl_memory_desc_create_with_tag(&dst_md, 4, dst_dims, s->link.out.type, dnnl_nhwc))
        && !(status = dnnl_pooling_forward_primitive_desc_create(&pd, onednn_engine(), dnnl_forward_inference,
                                                                 dnnl_pooling_max, src_md, dst_md, strides, window,
                                                                 dilation, pad_l, pad_r, NULL))
        && !(status = dnnl_primitive_create(&p->pool, pd))
        && !(status = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &kernel))
        && !(status = onednn_memory(&p->src, src_md, DNNL_MEMORY_NONE))
        && !(status = onednn_memory(&p->dst, dst_md, DNNL_MEMORY_NONE))
        && !(status = s->link.plain ? onednn_plain_copy(dst_md, &p->plain, &p->to_plain) : dnnl_success)) {
        p->batch = batch;
        snprintf(s->kernel, sizeof(s->kernel), "%s", kernel ? kernel : "");
    } else {
        destroy_plan(p);
    }
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_desc_destroy(src_md);
    dnnl_memory_desc_destroy(dst_md);
    return status;
}

static void forward_onednn_maxpool(layer l, network net)
{
    onednn_pool *s = l.backend;
    pool_plan *p = &s->plans[l.batch == s->network_batch ? 0 : 1];
    dnnl_status_t status;
    (void)net;  /* the input is the int8 tensor of the convolution before */
    if (p->batch != l.batch || p->threads != onednn_threads()) {
        destroy_plan(p);
        if ((status = make_plan(p, &l, s, l.batch))) onednn_fail(status, "make the int8 maxpool for this batch", -1);
    }
    if ((status = dnnl_memory_set_data_handle(p->src, s->link.from->data))
        || (status = dnnl_memory_set_data_handle(p->dst, s->link.out.data))
        || (p->plain && (status = dnnl_memory_set_data_handle(p->plain, l.output))))
        onednn_fail(status, "set the layer's buffers", -1);
    {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_DST, p->dst}};
        if ((status = dnnl_primitive_execute(p->pool, s->stream, 2, args))) onednn_fail(status, "run the maxpool", -1);
    }
    if (p->to_plain && (status = onednn_run_plain_copy(p->to_plain, s->stream, p->dst, p->plain, &s->link.out)))
        onednn_fail(status, "write the maxpool's float32 output", -1);
    if ((status = dnnl_stream_wait(s->stream))) onednn_fail(status, "finish the maxpool", -1);
}

const int8_tensor *onednn_pool_int8(layer *l, const int8_tensor *from, int plain, int index)
{
    onednn_pool *s = calloc(1, sizeof(*s));  /* checked: fails through darknet_fail */
    dnnl_status_t status;
    s->link.from = from;
    s->link.plain = plain;
    s->network_batch = l->batch;
    if ((status = dnnl_stream_create(&s->stream, onednn_engine(), dnnl_stream_default_flags))
        || (status = onednn_tensor(&s->link.out, (size_t)l->outputs * l->batch, from->type, from->scale))
        || (status = make_plan(&s->plans[0], l, s, l->batch))) {
        free_onednn_pool(s);
        onednn_fail(status, "make the int8 maxpool", index);
    }
    l->backend = s;
    l->free_backend = free_onednn_pool;
    l->forward = forward_onednn_maxpool;
    return &s->link.out;
}

int onednn_pool_layer(const layer *l)
{
    return l->forward == forward_onednn_maxpool;
}

const char *onednn_pool_kernel(const layer *l)
{
    return onednn_pool_layer(l) ? ((const onednn_pool *)l->backend)->kernel : "";
}
