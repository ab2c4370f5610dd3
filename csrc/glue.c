/* The guard of every entry point: darknet_fail() anywhere below comes back here as an
 * error code and a filled pdn_error instead of ending the process. */
#include <stdio.h>
#include <string.h>

#include "glue.h"

int pdn_report(pdn_error *err)
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

/* Layers are allocated for the batch the network was loaded with; a smaller count
 * runs as a smaller batch (upstream's set_batch_network) instead of padding. */
void pdn_use_batch(network *net, int n)
{
    if (n < 1 || n > net->batch) darknet_fail(DARKNET_ERR_INTERNAL, "%d images for a batch of %d", n, net->batch);
    if (n != net->batch) set_batch_network(net, n);
}

/* After a failure (already reported): the network back at its own batch. On a GPU
 * network that sets up cuDNN again, which can fail too (the device may be what failed):
 * under a handler of its own, as no other is left to catch it. */
void pdn_restore_batch(network *net, int batch)
{
    darknet_handler handler;
    darknet_push_handler(&handler);
    if (!setjmp(handler.env)) set_batch_network(net, batch);
    darknet_pop_handler(&handler);
}

