/* Glue between Python and the patched darknet: every entry point that can fail
 * runs under a darknet_handler, so darknet_fail() anywhere below comes back here
 * as an error code and a filled pdn_error instead of ending the process. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "darknet.h"
#include "activations.h"
#include "network.h"

#include "console.h"
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

int pdn_load(const char *cfg, const char *weights, int batch, int verbose,
             network **out, pdn_error *err)
{
    /* volatile: read after longjmp, written between setjmp and it. */
    network *volatile net = NULL;
    PDN_GUARDED(verbose, err, if (net) free_network(net), {
        net = parse_network_cfg_custom((char *)cfg, batch);
        if (weights) load_weights(net, (char *)weights);
    });
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

int pdn_layer_get(network *net, int index, pdn_layer *out)
{
    if (index < 0 || index >= net->n) return -1;
    layer l = net->layers[index];
    memset(out, 0, sizeof(*out));
    snprintf(out->type, sizeof(out->type), "%s", get_layer_string(l.type));
    if (has_activation(l.type)) {
        snprintf(out->activation, sizeof(out->activation), "%s", get_activation_string(l.activation));
    }
    out->w = l.w; out->h = l.h; out->c = l.c;
    out->out_w = l.out_w; out->out_h = l.out_h; out->out_c = l.out_c;
    out->size = l.size; out->stride = l.stride; out->pad = l.pad; out->groups = l.groups;
    out->batch_normalize = l.batch_normalize;
    long long bn = l.batch_normalize ? 3 : 0;
    switch (l.type) {
    case CONVOLUTIONAL:
    case DECONVOLUTIONAL: {
        /* each weight is used once per output pixel (conv) or per input pixel (deconv) */
        int pixels = l.type == CONVOLUTIONAL ? l.out_h * l.out_w : l.h * l.w;
        out->filters = l.n;
        out->n_weights = l.nweights;
        out->n_params = (1 + bn) * l.n + l.nweights;
        out->bflops = 2.0 * l.nweights * pixels / 1e9;
        break;
    }
    case CONNECTED:
        out->filters = l.outputs;
        out->n_weights = (long long)l.inputs * l.outputs;
        out->n_params = (1 + bn) * l.outputs + out->n_weights;
        out->bflops = 2.0 * out->n_weights / 1e9;
        break;
    case BATCHNORM:
        out->n_params = 3LL * l.c;
        break;
    default:
        break;
    }
    return 0;
}

int pdn_predict(network *net, const float *input, float *output, int verbose, pdn_error *err)
{
    PDN_GUARDED(verbose, err, (void)0, {
        float *result = network_predict(net, (float *)input);
        memcpy(output, result, sizeof(float) * (size_t)net->outputs * net->batch);
    });
    return 0;
}

int pdn_save_weights(network *net, const char *path, int verbose, pdn_error *err)
{
    PDN_GUARDED(verbose, err, (void)0, save_weights(net, (char *)path));
    return 0;
}

const char *pdn_build_info(void)
{
    return PDN_BUILD_INFO_JSON;
}
