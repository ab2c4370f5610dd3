/* Layers defined in Python: [name] sections parsed and run through the callbacks. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"
#include "option_list.h"
#include "parser.h"

#include "checked_alloc.h"  /* charged to the load's budget, swept with a failed section */

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
