/* What the oneDNN layers (onednn.c, onednn_pool.c) share: the engine, the thread count
 * primitives are made and run with, failures through darknet_fail(), darknet's
 * activations as post-ops, and memories and reorders. */
#ifndef PDN_ONEDNN_UTIL_H
#define PDN_ONEDNN_UTIL_H

#include <oneapi/dnnl/dnnl.h>

#include "darknet.h"

/* oneDNN runs on the same OpenMP runtime as our loops. A primitive splits its work
 * for the thread count in force when it is made and keeps that split, so primitives
 * are made, and run, with the calling thread's OpenMP count set to darknet_threads()
 * (which this sets and returns), and made again after set_darknet_threads() changes it. */
int onednn_threads(void);

/* The process's CPU engine; onednn_engine() fails through darknet_fail() without one. */
dnnl_engine_t onednn_engine_or_null(void);
dnnl_engine_t onednn_engine(void);

/* Fails with what oneDNN could not do; index < 0: in a forward pass, where darknet's
 * handler names no layer. */
void onednn_fail(dnnl_status_t status, const char *what, int index);

/* Darknet activations as eltwise post-ops, with the constants of activations.h.
 * Returns 0 when no chain of post-ops computes the activation. */
int onednn_activation(dnnl_post_ops_t ops, ACTIVATION a);

/* A memory of descriptor md: over the caller's buffer (data), or allocated by oneDNN. */
dnnl_status_t onednn_memory(dnnl_memory_t *m, const_dnnl_memory_desc_t md, void *data);

/* A reorder between src_md and dst_md, or NULL when they are the same layout and type.
 * scales: DNNL_ARG_SRC and/or DNNL_ARG_DST, OR-ed as bits 1 and 2 (ONEDNN_SCALE_*):
 * the arguments whose per-tensor scale is given at run (dst = src * src_scale / dst_scale). */
enum { ONEDNN_SCALE_SRC = 1, ONEDNN_SCALE_DST = 2 };
dnnl_status_t onednn_reorder(dnnl_primitive_t *r, const_dnnl_memory_desc_t src_md, const_dnnl_memory_desc_t dst_md,
                             int scales);

/* A memory of n floats (a per-tensor scale, one per output channel, biases). */
dnnl_status_t onednn_floats(dnnl_memory_t *m, int n, float **data);

/* An int8 tensor one oneDNN layer passes to the next in NHWC, in place of its NCHW
 * float32 l.output, which is then written only when asked (onednn_plain_output()). */
typedef struct {
    void *data;                   /* batch x h x w x c steps; NULL: the layer writes l.output */
    dnnl_data_type_t type;        /* dnnl_u8 or dnnl_s8 */
    float scale;                  /* value = scale * step */
    dnnl_memory_t scale_memory;   /* that scale, as primitives take it */
} int8_tensor;

/* The state of a layer that reads and writes int8 tensors (the first member of the
 * oneDNN convolution's and pooling's states). */
typedef struct {
    int8_tensor out;              /* what it writes, if the next layer reads int8 */
    int plain;                    /* with out: another layer reads l.output too, written as well */
    const int8_tensor *from;      /* what it reads in place of net.input, or NULL */
} int8_link;

/* t: `bytes` steps of type with that scale; released by onednn_free_tensor(). */
dnnl_status_t onednn_tensor(int8_tensor *t, size_t bytes, dnnl_data_type_t type, float scale);
void onednn_free_tensor(int8_tensor *t);
/* For steps of steps_md (4-d NHWC): a memory of their plain NCHW float32 values (its
 * buffer set at each run) and the reorder that writes them there (run_plain_copy). */
dnnl_status_t onednn_plain_copy(const_dnnl_memory_desc_t steps_md, dnnl_memory_t *plain, dnnl_primitive_t *copy);
dnnl_status_t onednn_run_plain_copy(dnnl_primitive_t copy, dnnl_stream_t stream, dnnl_memory_t steps,
                                    dnnl_memory_t plain, const int8_tensor *t);
/* The plain NCHW float32 values of n x c x h x w in t (t->data non-NULL) into out. */
void onednn_dequantize(const int8_tensor *t, int n, int c, int h, int w, float *out);

#endif
