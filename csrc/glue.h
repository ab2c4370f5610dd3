/* What the glue's files share (not part of the API in pydarknet.h): the guard that
 * turns darknet_fail() into an error code, the batch and device a call runs a network
 * at, and what a Python-defined layer keeps. */
#ifndef PDN_GLUE_H
#define PDN_GLUE_H

#include <setjmp.h>

#include "darknet.h"
#include "console.h"
#define PDN_CALLBACK extern
#include "pydarknet.h"

/* Fills err from darknet's last error; returns its code. */
int pdn_report(pdn_error *err);

/* Runs the statements (...) under a handler; on failure, reports the error into err,
 * runs cleanup (which may fail in turn without changing that report) and returns the
 * error code from the calling function. */
#define PDN_GUARDED(verbose, err, cleanup, ...)       \
    do {                                              \
        darknet_handler handler_;                     \
        pdn_console_verbose = (verbose);              \
        darknet_push_handler(&handler_);              \
        if (setjmp(handler_.env)) {                   \
            const int code_ = pdn_report(err);        \
            cleanup;                                  \
            return code_;                             \
        }                                             \
        __VA_ARGS__;                                  \
        darknet_pop_handler(&handler_);               \
        pdn_console_verbose = 0;                      \
    } while (0)

/* What a CUSTOM layer made by pydarknet keeps in layer.user. */
typedef struct {
    int id;          /* the Python side's handle for this layer */
    char name[32];   /* the section name, for summaries and messages */
} python_layer;

/* Devices (devices.c): where the parser puts the next network made on this thread,
 * refusing layers without GPU code on a GPU, the network's device made current for
 * this thread, and the device copy of folded weights. */
void pdn_choose_device(int device);
void pdn_check_gpu_layers(network *net);
void pdn_use_device(network *net);
void pdn_push_folded(network *net);
/* The network run at batch n (<= its batch), and put back (glue.c). */
void pdn_use_batch(network *net, int n);
void pdn_restore_batch(network *net, int batch);

/* PDN_GUARDED with the network run at batch n; the batch it was loaded with is
 * restored afterwards, on failure (before cleanup) as on success. On failure the whole
 * network struct is restored first: network_predict() points net->input at the
 * caller's buffer (and clears truth, delta, train) and puts them back only when it
 * returns, so after a longjmp out of a forward pass free_network() would free the
 * caller's buffer (found as heap corruption after a Python layer raised). */
#define PDN_GUARDED_AT_BATCH(net, n, verbose, err, cleanup, ...)                              \
    do {                                                                                      \
        const network saved_ = *(net);  /* not written after setjmp: valid after longjmp */   \
        PDN_GUARDED(verbose, err,                                                             \
                    { *(net) = saved_; if (n != saved_.batch) pdn_restore_batch(net, saved_.batch); cleanup; }, \
                    pdn_use_device(net); pdn_use_batch(net, n); __VA_ARGS__;                  \
                    if (n != saved_.batch) set_batch_network(net, saved_.batch));             \
    } while (0)

#endif
