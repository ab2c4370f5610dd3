/* Our C that upstream's sources call (the .c files of csrc/upstream, compiled with
 * them): each function is named by the patch that calls it. Every failure is a
 * darknet_fail(). */
#ifndef PDN_UPSTREAM_H
#define PDN_UPSTREAM_H

#include <stdio.h>

#include "darknet.h"

/* cfg_numbers.c: a key's value as a whole number / a finite float, or a cfg error
 * naming the key (strict-cfg-numbers); comma-separated lists of them, to free(). */
int cfg_int(const char *key, const char *text);
float cfg_float(const char *key, const char *text);
int *option_int_list(const char *key, const char *text, int *count);
float *option_float_list(const char *key, const char *text, int *count);
/* keys only training reads: not reported as unused (unused-key-warnings) */
int cfg_training_only_key(const char *key);

/* cfg_sections.c: the parser of a section header such as "[convolutional]", built in
 * or registered, or 0 (section-registry). */
darknet_section_parser cfg_find_section(const char *header);

/* cfg_checks.c: a layer's parameters and 64-bit sizes, checked before it is made
 * (checked-layer-sizes). */
void require_positive(const char *key, int value);
long long mul64(long long a, long long b);  /* saturating */
void check_fits(const char *what, long long count);
void check_tensor(const char *what, long long batch, long long c, long long h, long long w);
void require_image(size_params params, const char *type);
void set_anchors(float *biases, const char *anchors, int capacity);
int layer_reference(const char *key, int index, int current);
void check_recurrent(size_params params, int output);
/* one per layer type, with the values its parse function read */
void check_local(size_params params, int n, int size, int stride, int pad);
void check_deconvolutional(size_params params, int n, int size, int stride, int padding, int pad);
void check_convolutional(size_params params, int n, int size, int stride, int padding, int pad, int groups);
void check_crnn(size_params params, int output_filters, int hidden_filters);
void check_connected(size_params params, int output);
void check_softmax(size_params params, int groups);
void check_mask(int *mask, int num, int total);
void check_region(size_params params, int coords, int classes, int num);
void check_detection(size_params params, int coords, int classes, int num, int side);
void check_iseg(size_params params, int classes, int ids);
void check_crop(size_params params, int crop_height, int crop_width);
void check_reorg(size_params params, int stride, int reverse, int extra);
void check_maxpool(size_params params, int size, int stride, int padding);
void check_normalization(size_params params, int size);
void check_upsample(size_params params, int stride);
void check_shortcut(size_params params, int index);
void check_yolo(size_params params, int classes, int total, const char *mask);
int *route_inputs(const char *text, size_params params, int groups, int group_id, int *count);
/* [net]: width x height x channels (the default of inputs=), then inputs= itself */
int net_image_floats(network *net);
void check_net_inputs(network *net);
void read_steps(network *net, const char *steps, const char *scales);

/* weights_io.c: exact reads and writes of weights files (checked-weights-io), finite
 * values (checked-weights-io), a layer written with its batch normalization folded in
 * (bn-free-weights). */
void read_weights(void *dst, size_t size, size_t count, FILE *fp);
void read_floats(float *dst, size_t count, FILE *fp);
void check_weights_used(FILE *fp, const char *filename, int every_layer);
void write_failed(FILE *fp);
void write_weights(const void *src, size_t size, size_t count, FILE *fp);
void save_folded_weights(layer l, FILE *fp, bn_denominator d);

/* cblas_gemm.c: gemm() through cblas_sgemm, on our threads (cblas-gemm). */
void gemm_cblas(int TA, int TB, int M, int N, int K, float ALPHA, float *A, int lda, float *B, int ldb,
                float BETA, float *C, int ldc);

/* diou_nms.c: IoU (beta < 0) or DIoU-NMS's overlap of two boxes (diou-nms). */
float nms_overlap(box a, box b, float beta);

/* layer_free.c: what free_layer() frees beyond upstream's buffers (free-layer-parts). */
void free_layer_owned(layer *l);

/* yolo_fork.c: the fork's [yolo] centres and sizes (yolo-scale-xy, yolo-new-coords). */
void scale_xy(float *xy, int n, float s);
box get_yolo_box_new_coords(float *x, float *biases, int n, int index, int i, int j, int lw, int lh, int w, int h,
                            int stride);

#endif
