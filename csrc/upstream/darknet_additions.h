/* What pydarknet's patches add to darknet.h's API (included at its end, inside its
 * extern "C"): recoverable errors, parsing choices, the section registry, batch
 * normalization folding and a few loaders. Defined by upstream's patched sources and
 * by csrc/darknet_error.c and csrc/upstream/. */
#ifndef DARKNET_ADDITIONS_H
#define DARKNET_ADDITIONS_H

#include <setjmp.h>

/* Recoverable errors. A host that must survive bad input (a Python module, a
 * server) pushes a handler around each call; darknet_fail() then jumps back to
 * it with the error filled in instead of ending the process. Without a handler
 * the message is printed and the process exits, as the darknet CLI expects.
 * Handlers and errors are per thread. */
typedef enum {
    DARKNET_OK = 0,
    DARKNET_ERR_FILE,      /* a file cannot be opened, read or written */
    DARKNET_ERR_CFG,       /* the network description is invalid */
    DARKNET_ERR_WEIGHTS,   /* the weights file does not match the network */
    DARKNET_ERR_IMAGE,     /* an image cannot be decoded */
    DARKNET_ERR_MEMORY,    /* an allocation failed */
    DARKNET_ERR_INTERNAL,  /* an internal consistency check failed */
    DARKNET_ERR_DEVICE     /* the GPU, its driver or a CUDA library reported an error */
} darknet_error_code;

typedef struct {
    int code;              /* a darknet_error_code */
    char message[1024];
    char file[1024];       /* the file being read, "" if none */
    int section;           /* cfg section or layer index, -1 if none */
    int line;              /* cfg line number, -1 if none */
} darknet_error;

typedef struct darknet_handler {
    jmp_buf env;
    struct darknet_handler *prev;
} darknet_handler;

/* Usage: darknet_handler h; darknet_push_handler(&h);
 *        if (setjmp(h.env)) { error: h is already popped, see darknet_last_error() }
 *        ... calls ...; darknet_pop_handler(&h); */
void darknet_push_handler(darknet_handler *h);
void darknet_pop_handler(darknet_handler *h);
const darknet_error *darknet_last_error(void);
void darknet_set_context(const char *file, int section, int line);
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 2, 3)))
#endif
void darknet_fail(int code, const char *fmt, ...);
/* Warnings that do not stop the work (e.g. cfg keys no layer uses). With a handler
 * pushed they are collected per thread, with the current file/layer/line, for the
 * host to read; without one they are printed. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void darknet_warn(const char *fmt, ...);
/* The same at cfg line ``line`` of the current file (0: the current line). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void darknet_warn_at(int line, const char *fmt, ...);
const char *darknet_warnings(void);     /* one per line, since the last clear */
void darknet_clear_warnings(void);

/* Pass the last error on to the next handler (for handlers that only clean up). */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void darknet_rethrow(void);

/* As parse_network_cfg, with batch > 0 replacing the cfg's batch/subdivisions. */
network *parse_network_cfg_custom(char *filename, int batch);
/* The same for a network whose weights are loaded next: convolutional and connected
 * layers skip the random initialisation the weights replace (most of a parse's time),
 * except layers with dontload or numload, which keep some of it. */
network *parse_network_cfg_for_weights(char *filename, int batch);

/* What a section parser is given: the input its layer will receive, the layer's
 * index and the network parsed so far. */
typedef struct size_params{
    int batch;
    int inputs;
    int h;
    int w;
    int c;
    int index;
    int time_steps;
    network *net;
    const char *section;   /* the section's header, e.g. "[convolutional]" */
} size_params;

/* Turns the key=value options of one cfg section into a layer. */
typedef layer (*darknet_section_parser)(list *options, size_params params);

/* The section registry. darknet_register_section("name", parse) makes [name] sections
 * parse with parse, replacing an earlier registration of that name; the built-in
 * names cannot be replaced. Both return 0, or -1 (built in, too long, registry full,
 * or not registered). */
int darknet_register_section(const char *name, darknet_section_parser parse);
int darknet_unregister_section(const char *name);

/* Batch normalization folded into the weights before it, for inference without
 * the BN pass. Folded weights suit one runtime: upstream's CPU code divides by
 * sqrt(var) + 1e-6, its GPU code by sqrt(var + 1e-5). */
typedef enum { BN_DENOMINATOR_CPU, BN_DENOMINATOR_GPU } bn_denominator;
int can_fold_batchnorm(layer l);
void fold_batchnorm_weights(layer l, float *weights, float *biases, bn_denominator d);
int fold_batchnorm_network(network *net, bn_denominator d);
void save_weights_nobn(network *net, char *filename, bn_denominator d);

/* Decode an encoded image (JPEG, PNG, BMP, ...) held in memory, as load_image_stb() does a file. */
image load_image_memory(const unsigned char *buffer, int size, int channels);

/* The label glyphs from dir (load_alphabet() reads the cwd-relative data/labels). */
image **load_alphabet_from(const char *dir);

/* do_nms_sort() with DIoU: suppress when IoU - (centre distance^2 / enclosing diagonal^2)^beta > thresh */
void do_nms_diou(detection *dets, int total, int classes, float thresh, float beta);

/* Whether make_convolutional_layer() and make_connected_layer() give their weights
 * random values (1 unless a parse for weights turns it off); per thread. */
extern __thread int darknet_random_weights;
/* Whether loading weights refuses NaN and infinite values (1 by default); per thread. */
extern __thread int darknet_finite_weights;

#endif
