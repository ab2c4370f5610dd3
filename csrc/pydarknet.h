/* The C API that pydarknet's Python code calls: the cffi cdef (read by
 * pydarknet/source/ffi_builder.py) and the header the glue (glue.c, network.c,
 * devices.c, detection.c, python_layers.c) is compiled against, so the compiler
 * checks that both agree. Plain declarations only: cffi's parser takes no preprocessor. */

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
    int inputs, outputs;       /* floats per image in and out */
    int partial_load;          /* dontload, dontloadscales, numload or flipped is set */
    int winograd;              /* Winograd output tile (2 or 4); 0: im2col + GEMM */
    int onednn;                /* 1: runs as a oneDNN primitive */
    int int8;                  /* 1: that primitive computes in int8 */
    char kernel[48];           /* the primitive's implementation, e.g. "brg:avx2"; "" if none */
    long long n_weights;       /* weights proper, without biases and BN */
    long long n_params;        /* floats this layer reads from a weights file */
    double bflops;             /* billions of floating point operations per image */
} pdn_layer;

/* finite_weights: refuse NaN/infinite weights; max_memory: bytes the network may
 * allocate while it is made and loaded (0: no limit); device: -1 for the CPU, else the
 * CUDA device the network lives on (GPU builds; others fail with DARKNET_ERR_DEVICE). */
int pdn_load(const char *cfg, const char *weights, int batch, int verbose, int finite_weights,
             unsigned long long max_memory, int device, network **out, pdn_error *err);
/* The CUDA device a network lives on, -1 for the CPU. */
int pdn_network_device(network *net);
/* CUDA devices this process can use: 0 without a GPU, a driver or a GPU build. */
int pdn_cuda_device_count(void);
/* Device index's name and compute capability (major * 10 + minor); -1 if none. */
int pdn_cuda_device_name(int index, char *name, int size);
/* Free and total memory of a CUDA device in bytes; -1 if there is no such device. */
int pdn_cuda_memory(int index, unsigned long long *free_bytes, unsigned long long *total_bytes);
/* Versions as CUDA numbers them (12080 = 12.8), 0 where absent: the CUDA runtime
 * loaded, the driver's CUDA version and cuDNN's. */
void pdn_cuda_versions(int *runtime, int *driver, int *cudnn);
void pdn_free(network *net);
void pdn_network_info_get(network *net, pdn_network_info *info);
int pdn_layer_get(network *net, int index, pdn_layer *out);
/* n <= batch images: input n * inputs floats, output n * outputs floats;
 * layer_seconds: NULL, or n_layers doubles for each layer's forward time. */
int pdn_predict(network *net, const float *input, int n, float *output, double *layer_seconds,
                int verbose, pdn_error *err);
/* After pdn_predict on n images: layer index's output, n * its outputs floats. */
int pdn_layer_output(network *net, int index, int n, float *output, pdn_error *err);
/* fold_bn < 0: as the network is; else layers with batch normalization are written
 * folded for runtime fold_bn (0 CPU, 1 GPU), and the network is unchanged. */
int pdn_save_weights(network *net, const char *path, int fold_bn, int verbose, pdn_error *err);
/* Folds batch normalization into the weights in place for runtime target (0 CPU,
 * 1 GPU) and turns it off in those layers (a GPU network's device copy too). */
int pdn_fold_batchnorm(network *net, int target, pdn_error *err);
/* The forward functions a network runs with: upstream's own (UPSTREAM); our CPU
 * kernels (CPU), with Winograd convolutions where `winograd` is set and the layer suits
 * it; and also oneDNN primitives for the other convolutions (ONEDNN, only in builds
 * where pdn_has_onednn()). Call once, after loading (and folding). *use counts the
 * layers each took. */
enum { PDN_BACKEND_UPSTREAM = 0, PDN_BACKEND_CPU = 1, PDN_BACKEND_ONEDNN = 2 };
typedef struct {
    int cpu, winograd, onednn, int8;
} pdn_backend_use;
/* int8 (ONEDNN only; NULL: float32): per layer, the scale of its input's int8 steps
 * (0: the layer stays float32) and whether that input can be negative (s8) or not (u8);
 * those convolutions become int8 oneDNN primitives, before Winograd takes any. */
typedef struct {
    float scale;
    int is_signed;
} pdn_int8_input;
int pdn_has_onednn(void);
int pdn_use_backend(network *net, int backend, int winograd, const pdn_int8_input *int8, pdn_backend_use *use,
                    pdn_error *err);
/* oneDNN's instruction set on this CPU and the kernels it picks for a 3x3 convolution in
 * float32 and in int8 ("" in builds without oneDNN). */
void pdn_onednn_kernels(char *isa, char *float32, char *int8, int size);
const char *pdn_build_info(void);
/* Threads for the BLAS GEMM and OpenMP loops (whichever the build has). */
void pdn_set_num_threads(int n);
int pdn_num_threads(void);

/* An image as darknet holds it: planar (c, h, w) float32 in [0, 1], RGB. */
typedef struct {
    int w, h, c;
    float *data;
} pdn_image;

/* One class of one box above the threshold, as upstream's detector prints it. */
typedef struct {
    int image;                 /* index of the image in the call */
    int class_id;
    float prob;                /* objectness x class probability */
    float objectness;
    float x, y, w, h;          /* box centre and size relative to the image (0..1) */
} pdn_detection;

/* Decode with upstream's stb path (3 channels); free with pdn_image_free. Images
 * whose header declares more than max_pixels pixels are refused before decoding. */
int pdn_image_load(const char *path, long long max_pixels, pdn_image *out, pdn_error *err);
int pdn_image_decode(const unsigned char *data, int size, long long max_pixels, pdn_image *out, pdn_error *err);
void pdn_image_free(pdn_image *image);

/* How an image becomes the network input (pydarknet/formats/preprocessing.py says the
 * same in Python): sized to the network (resize: PDN_SIZE_*; CROP: scaled so that its
 * shorter side is crop_from, or just covers the input when crop_from is 0, then the
 * centre cut out), then per input channel k, reading image channel k (RGB) or 2 - k
 * (bgr): (value * pixel_range - mean[k]) * scale[k]. NULL stands for upstream's own:
 * RGB in [0, 1], sized as the path does. */
enum { PDN_SIZE_UPSTREAM = 0, PDN_SIZE_LETTERBOX = 1, PDN_SIZE_STRETCH = 2, PDN_SIZE_CROP = 3 };
typedef struct {
    int resize;
    int crop_from;
    long long max_pixels;  /* CROP: the most pixels the scaled image may have */
    int bgr;
    float pixel_range;
    float mean[3];
    float scale[3];
} pdn_preprocessing;

/* The network input for one image (net->inputs floats into out), as pdn_detect prepares
 * it (Darknet's preprocessing: letterboxed unless the cfg says letter_box=0). */
int pdn_preprocess(network *net, const pdn_image *image, const pdn_preprocessing *pre, float *out,
                   pdn_error *err);

/* Classes of the network's detection layer, or -1 if it has none. */
int pdn_detection_classes(network *net);
/* What pdn_detect does around the forward pass with pre: whether it letterboxes, and the
 * NMS it runs (beta < 0: upstream's IoU; else DIoU's beta, from the cfg's nms_kind). */
void pdn_detection_steps(network *net, const pdn_preprocessing *pre, int *letterbox, float *beta);

/* Upstream's detector path on n <= batch images: each image prepared by pre (NULL:
 * letterboxed to the network size, or stretched where the cfg says letter_box=0,
 * as upstream does), one forward pass, then get_network_boxes() and do_nms_sort() per image.
 * *out receives every (box, class) with prob > thresh (free with
 * pdn_detections_free). */
int pdn_detect(network *net, const pdn_image *images, int n, const pdn_preprocessing *pre, float thresh,
               float hier_thresh, float nms, pdn_detection **out, int *count, int verbose, pdn_error *err);
void pdn_detections_free(pdn_detection *dets);

/* image drawn by upstream's draw_detections(): the count detections (as pdn_detect gives
 * them; those sharing a box are one box with their labels joined), labels[i] the text
 * of detection i (labels NULL: boxes only), glyphs from labels_dir. *out receives the
 * drawn copy (free with pdn_image_free). */
int pdn_draw(const pdn_image *image, const pdn_detection *found, int count, char **labels, int classes,
             const char *labels_dir, pdn_image *out, pdn_error *err);

/* image as a JPEG file at quality 90 (upstream's), every write checked. */
int pdn_save_jpeg(const pdn_image *image, const char *path, pdn_error *err);

/* Upstream's classifier path: the image prepared by pre (NULL: letterboxed), forward,
 * class hierarchy if any. probs receives the network's outputs floats. */
int pdn_classify(network *net, const pdn_image *image, const pdn_preprocessing *pre, float *probs, int verbose,
                 pdn_error *err);

/* Warnings (e.g. unused cfg keys) collected by the last pdn_load on this thread,
 * one per line. */
const char *pdn_warnings(void);

/* Layers written in Python: [name] sections are parsed and run by the callbacks
 * below (defined in Python with ffi.def_extern). PDN_CALLBACK is extern "Python+C"
 * for cffi and extern for C. Both callbacks return < 0 when the Python code raised. */
int pdn_register_python_section(const char *name);
int pdn_unregister_python_section(const char *name);
/* Returns the new layer's id and fills out_shape (c, h, w). */
PDN_CALLBACK int pdn_python_parse(const char *section, int c, int h, int w, int batch,
                                  const char **keys, const char **values, int n, int *out_shape);
PDN_CALLBACK int pdn_python_forward(int id, int batch, const float *input, float *output);
