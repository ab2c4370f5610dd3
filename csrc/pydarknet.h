/* The C API that pydarknet's Python code calls: the cffi cdef (read by setup.py)
 * and the header the glue (pydarknet.c) is compiled against, so the compiler checks
 * that both agree. Plain declarations only: cffi's parser takes no preprocessor. */

typedef struct network network;

/* An error as darknet_fail() reported it; code 0 means success. */
typedef struct {
    int code;
    char message[1024];
    char file[1024];
    int section;               /* layer index, -1 if none */
    int line;                  /* cfg line, -1 if none */
} pdn_error;

typedef struct {
    int n_layers;
    int batch;
    int w, h, c;               /* network input */
    int inputs;                /* floats per input image */
    int outputs;               /* floats per output of the last layer */
    int out_w, out_h, out_c;
} pdn_network_info;

typedef struct {
    char type[32];             /* upstream's layer type name, e.g. "convolutional" */
    char activation[16];       /* "" for layers without one */
    int w, h, c;               /* input */
    int out_w, out_h, out_c;
    int filters, size, stride, pad, groups;
    int batch_normalize;
    long long n_weights;       /* weights proper, without biases and BN */
    long long n_params;        /* floats this layer reads from a weights file */
    double bflops;             /* billions of floating point operations per image */
} pdn_layer;

int pdn_load(const char *cfg, const char *weights, int batch, int verbose,
             network **out, pdn_error *err);
void pdn_free(network *net);
void pdn_network_info_get(network *net, pdn_network_info *info);
int pdn_layer_get(network *net, int index, pdn_layer *out);
/* input: batch * inputs floats; output: batch * outputs floats. */
int pdn_predict(network *net, const float *input, float *output, int verbose, pdn_error *err);
int pdn_save_weights(network *net, const char *path, int verbose, pdn_error *err);
const char *pdn_build_info(void);
