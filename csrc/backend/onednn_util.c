/* What the oneDNN layers share: see onednn_util.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "onednn_util.h"
#include "parallel.h"

static dnnl_engine_t engine;

int onednn_threads(void)
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

dnnl_engine_t onednn_engine_or_null(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, create_engine);
    return engine;
}

dnnl_engine_t onednn_engine(void)
{
    if (!onednn_engine_or_null()) darknet_fail(DARKNET_ERR_INTERNAL, "oneDNN: no CPU engine");
    return engine;
}

void onednn_fail(dnnl_status_t status, const char *what, int index)
{
    char where[32] = "";
    if (index >= 0) snprintf(where, sizeof(where), "layer %d: ", index);
    darknet_fail(status == dnnl_out_of_memory ? DARKNET_ERR_MEMORY : DARKNET_ERR_INTERNAL,
                 "%soneDNN could not %s (status %d)", where, what, (int)status);
}

int onednn_activation(dnnl_post_ops_t ops, ACTIVATION a)
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

dnnl_status_t onednn_memory(dnnl_memory_t *m, const_dnnl_memory_desc_t md, void *data)
{
    return dnnl_memory_create(m, md, onednn_engine(), data ? data : DNNL_MEMORY_ALLOCATE);
}

dnnl_status_t onednn_reorder(dnnl_primitive_t *r, const_dnnl_memory_desc_t src_md, const_dnnl_memory_desc_t dst_md,
                             int scales)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t s = dnnl_success;
    *r = NULL;
    if (dnnl_memory_desc_equal(src_md, dst_md)) return dnnl_success;
    if (scales && (s = dnnl_primitive_attr_create(&attr)) == dnnl_success) {
        if (scales & ONEDNN_SCALE_SRC) s = dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0);
        if (!s && (scales & ONEDNN_SCALE_DST)) s = dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_DST, 0);
    }
    if (s == dnnl_success) {
        s = dnnl_reorder_primitive_desc_create(&pd, src_md, onednn_engine(), dst_md, onednn_engine(), attr);
    }
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_create(r, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

dnnl_status_t onednn_floats(dnnl_memory_t *m, int n, float **data)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {n};
    dnnl_status_t s = dnnl_memory_desc_create_with_tag(&md, 1, dims, dnnl_f32, dnnl_x);
    if (s != dnnl_success) return s;
    s = onednn_memory(m, md, NULL);
    dnnl_memory_desc_destroy(md);
    return s ? s : dnnl_memory_get_data_handle(*m, (void **)data);
}

dnnl_status_t onednn_tensor(int8_tensor *t, size_t bytes, dnnl_data_type_t type, float scale)
{
    float *value;
    dnnl_status_t s = onednn_floats(&t->scale_memory, 1, &value);
    if (s != dnnl_success) return s;
    *value = t->scale = scale;
    t->type = type;
    t->data = malloc(bytes ? bytes : 1);  /* checked: fails through darknet_fail */
    return dnnl_success;
}

void onednn_free_tensor(int8_tensor *t)
{
    free(t->data);
    dnnl_memory_destroy(t->scale_memory);
    memset(t, 0, sizeof(*t));
}

dnnl_status_t onednn_plain_copy(const_dnnl_memory_desc_t steps_md, dnnl_memory_t *plain, dnnl_primitive_t *copy)
{
    const dnnl_dims_t *dims = NULL;
    dnnl_memory_desc_t plain_md = NULL;
    dnnl_status_t s = dnnl_memory_desc_query(steps_md, dnnl_query_dims, &dims);
    if (!s) s = dnnl_memory_desc_create_with_tag(&plain_md, 4, *dims, dnnl_f32, dnnl_nchw);
    if (!s) s = onednn_memory(plain, plain_md, DNNL_MEMORY_NONE);
    if (!s) s = onednn_reorder(copy, steps_md, plain_md, ONEDNN_SCALE_SRC);
    dnnl_memory_desc_destroy(plain_md);
    return s;
}

dnnl_status_t onednn_run_plain_copy(dnnl_primitive_t copy, dnnl_stream_t stream, dnnl_memory_t steps,
                                    dnnl_memory_t plain, const int8_tensor *t)
{
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, steps}, {DNNL_ARG_TO, plain},
                              {DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, t->scale_memory}};
    return dnnl_primitive_execute(copy, stream, 3, args);
}

void onednn_dequantize(const int8_tensor *t, int n, int c, int h, int w, float *out)
{
    dnnl_dims_t dims = {n, c, h, w};
    dnnl_memory_desc_t steps_md = NULL;
    dnnl_memory_t steps = NULL, plain = NULL;
    dnnl_primitive_t copy = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t s;
    onednn_threads();
    if (!(s = dnnl_memory_desc_create_with_tag(&steps_md, 4, dims, t->type, dnnl_nhwc))
        && !(s = onednn_memory(&steps, steps_md, t->data)) && !(s = onednn_plain_copy(steps_md, &plain, &copy))
        && !(s = dnnl_memory_set_data_handle(plain, out))
        && !(s = dnnl_stream_create(&stream, onednn_engine(), dnnl_stream_default_flags))
        && !(s = onednn_run_plain_copy(copy, stream, steps, plain, t))) {
        s = dnnl_stream_wait(stream);
    }
    dnnl_stream_destroy(stream);
    dnnl_primitive_destroy(copy);
    dnnl_memory_destroy(steps);
    dnnl_memory_destroy(plain);
    dnnl_memory_desc_destroy(steps_md);
    if (s != dnnl_success) onednn_fail(s, "convert an int8 output to float32", -1);
}
