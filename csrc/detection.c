/* Images in and detections out: decoding, upstream's detector and classifier paths. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "glue.h"
#include "network.h"
#include "option_list.h"
#include "stb_image.h"
#include "stb_image_write.h"

#include "checked_alloc.h"  /* a failed allocation is an OutOfMemoryError, as in upstream's code */

static image as_image(const pdn_image *im)
{
    image out = {im->w, im->h, im->c, im->data};
    return out;
}

static void set_pdn_image(pdn_image *out, image im)
{
    out->w = im.w; out->h = im.h; out->c = im.c; out->data = im.data;
}

/* A header that declares more than max_pixels is refused before anything is decoded
 * (a 1 MB PNG can declare 18000 x 18000: 4 GB as floats). A header stb cannot read
 * is left for the decoder to report. */
static void check_pixels(int known, int w, int h, long long max_pixels)
{
    if (known && (long long)w * h > max_pixels) {
        darknet_fail(DARKNET_ERR_IMAGE, "the image is %d x %d = %lld pixels, more than the limit of %lld; "
                     "if you trust it, decode it with pydarknet.load_image(source, max_pixels=N) and pass that "
                     "image", w, h, (long long)w * h, max_pixels);
    }
}

int pdn_image_load(const char *path, long long max_pixels, pdn_image *out, pdn_error *err)
{
    int w, h, c;
    PDN_GUARDED(0, err, (void)0, {
        int known = stbi_info(path, &w, &h, &c);
        check_pixels(known, w, h, max_pixels);
        set_pdn_image(out, load_image_color((char *)path, 0, 0));
    });
    return 0;
}

int pdn_image_decode(const unsigned char *data, int size, long long max_pixels, pdn_image *out, pdn_error *err)
{
    int w, h, c;
    PDN_GUARDED(0, err, (void)0, {
        int known = stbi_info_from_memory(data, size, &w, &h, &c);
        check_pixels(known, w, h, max_pixels);
        set_pdn_image(out, load_image_memory(data, size, 3));
    });
    return 0;
}

void pdn_image_free(pdn_image *im)
{
    free_image(as_image(im));
    im->data = NULL;
}

static int is_detection_layer(LAYER_TYPE type)
{
    return type == YOLO || type == REGION || type == DETECTION;
}

int pdn_detection_classes(network *net)
{
    int i;
    for (i = net->n - 1; i >= 0; --i) {
        if (is_detection_layer(net->layers[i].type)) return net->layers[i].classes;
    }
    return -1;
}

/* get_network_boxes() reads batch item 0 of each detection layer, and yolo/region
 * layers with batch == 2 average it with a flipped copy (upstream's test-time
 * augmentation). To read item b alone, point the layers at item b and tell them
 * batch 1 (enter), then undo both (leave). */
static void enter_batch_item(network *net, int b, int *saved_batch)
{
    int i;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (!is_detection_layer(l->type)) continue;
        l->output += (long)b * l->outputs;
        saved_batch[i] = l->batch;
        l->batch = 1;
    }
}

static void leave_batch_item(network *net, int b, const int *saved_batch)
{
    int i;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (!is_detection_layer(l->type)) continue;
        l->output -= (long)b * l->outputs;
        l->batch = saved_batch[i];
    }
}

/* The glyphs are read once per process (761 small PNGs), on first annotation. */
static image **alphabet;
static pthread_mutex_t alphabet_lock = PTHREAD_MUTEX_INITIALIZER;

static image **get_alphabet(const char *dir)
{
    pthread_mutex_lock(&alphabet_lock);
    if (!alphabet) alphabet = load_alphabet_from(dir);
    pthread_mutex_unlock(&alphabet_lock);
    return alphabet;
}

static void collect(detection *dets, int nboxes, int classes, int image_index, float thresh,
                    pdn_detection *out, int *count)
{
    int i, j;
    for (i = 0; i < nboxes; ++i) {
        for (j = 0; j < classes; ++j) {
            if (dets[i].prob[j] <= thresh) continue;
            pdn_detection *d = &out[(*count)++];
            d->image = image_index;
            d->class_id = j;
            d->prob = dets[i].prob[j];
            d->objectness = dets[i].objectness;
            d->x = dets[i].bbox.x; d->y = dets[i].bbox.y;
            d->w = dets[i].bbox.w; d->h = dets[i].bbox.h;
        }
    }
}

typedef struct {
    FILE *file;
    int failed;
} jpeg_output;

static void write_jpeg_bytes(void *context, void *data, int size)
{
    jpeg_output *out = context;
    if (fwrite(data, 1, size, out->file) != (size_t)size) out->failed = 1;
}

/* upstream's save_image_options() for JPEG at quality 90 (the CLI's), with the path as
 * given (upstream's copies it into a 256-byte buffer) and every write checked
 * (stbi_write_jpg() reports success for a file cut short by a full disk). */
static int save_jpeg(image im, const char *path)
{
    size_t pixels = (size_t)im.w * im.h, i;
    unsigned char *data = malloc(pixels * im.c);
    int k;
    for (k = 0; k < im.c; ++k) {
        for (i = 0; i < pixels; ++i) data[i * im.c + k] = (unsigned char)(255 * im.data[i + k * pixels]);
    }
    errno = 0;
    jpeg_output out = {fopen(path, "wb"), 0};
    if (!out.file) {
        free(data);
        return 0;
    }
    int encoded = stbi_write_jpg_to_func(write_jpeg_bytes, &out, im.w, im.h, im.c, data, 90);
    free(data);
    if (fclose(out.file)) out.failed = 1;
    return encoded && !out.failed;
}

/* The NMS the network's last detection layer asks for: a [yolo] head may choose DIoU
 * (nms_kind, patch diou-nms): its beta; < 0 for upstream's IoU. */
static float nms_beta(network *net)
{
    int i;
    for (i = net->n - 1; i >= 0 && !is_detection_layer(net->layers[i].type); --i) continue;
    return i >= 0 && net->layers[i].type == YOLO ? net->layers[i].nms_beta : -1;
}

static void apply_nms(network *net, detection *dets, int n, int classes, float thresh)
{
    float beta = nms_beta(net);
    if (beta >= 0) do_nms_diou(dets, n, classes, thresh, beta);
    else do_nms_sort(dets, n, classes, thresh);
}

/* im scaled so that its shorter side is shorter (or, for 0 or less, so that it just
 * covers w x h), then its centre w x h: the classifiers' "resize, centre crop". */
static image centre_crop(image im, int w, int h, int shorter, long long max_pixels)
{
    double scale = fmax((double)w / im.w, (double)h / im.h);
    if (shorter > 0) scale = fmax(scale, (double)shorter / (im.w < im.h ? im.w : im.h));
    double scaled_w = fmax(w, floor(im.w * scale + 0.5)), scaled_h = fmax(h, floor(im.h * scale + 0.5));
    if (scaled_w * scaled_h > (double)max_pixels) {
        darknet_fail(DARKNET_ERR_IMAGE, "cropping from a %.0f x %.0f scaled image: more than the limit of %lld "
                     "pixels (lower crop_from)", scaled_w, scaled_h, max_pixels);
    }
    int rw = (int)scaled_w, rh = (int)scaled_h;
    image resized = rw == im.w && rh == im.h ? copy_image(im) : resize_image(im, rw, rh);
    image cropped = crop_image(resized, (rw - w) / 2, (rh - h) / 2, w, h);
    free_image(resized);
    return cropped;
}

/* Whether pre letterboxes; upstream: what the path does by itself. */
static int letterboxes(const pdn_preprocessing *pre, int upstream)
{
    return pre && pre->resize != PDN_SIZE_UPSTREAM ? pre->resize == PDN_SIZE_LETTERBOX : upstream;
}

/* The network input for im as pre asks (pydarknet.h); letterbox: upstream's default for
 * this path. Channel values are computed in double, rounded once. */
static void prepare_input(network *net, const pdn_image *im, const pdn_preprocessing *pre, int letterbox,
                          float *out)
{
    if (im->c < net->c) {
        darknet_fail(DARKNET_ERR_IMAGE, "the image has %d channels, the network takes %d", im->c, net->c);
    }
    letterbox = letterboxes(pre, letterbox);
    image sized;
    if (pre && pre->resize == PDN_SIZE_CROP) {
        sized = centre_crop(as_image(im), net->w, net->h, pre->crop_from, pre->max_pixels);
    } else {
        sized = letterbox ? letterbox_image(as_image(im), net->w, net->h) : resize_image(as_image(im), net->w, net->h);
    }
    size_t plane = (size_t)net->w * net->h, i;
    int k;
    if (!pre) {
        memcpy(out, sized.data, sizeof(float) * net->inputs);
    } else {
        for (k = 0; k < net->c; ++k) {
            const float *from = sized.data + plane * (pre->bgr && net->c == 3 ? 2 - k : k);
            double range = pre->pixel_range, mean = pre->mean[k % 3], scale = pre->scale[k % 3];
            for (i = 0; i < plane; ++i) out[plane * k + i] = (float)((from[i] * range - mean) * scale);
        }
    }
    free_image(sized);
}

void pdn_detection_steps(network *net, const pdn_preprocessing *pre, int *letterbox, float *beta)
{
    *letterbox = letterboxes(pre, net->letter_box);
    *beta = nms_beta(net);
}

int pdn_preprocess(network *net, const pdn_image *image, const pdn_preprocessing *pre, float *out,
                   pdn_error *err)
{
    PDN_GUARDED(0, err, (void)0, prepare_input(net, image, pre, net->letter_box, out));  /* as pdn_detect */
    return 0;
}

int pdn_detect(network *net, const pdn_image *images, int n, const pdn_preprocessing *pre, float thresh,
               float hier_thresh, float nms, pdn_detection **out, int *count, int verbose, pdn_error *err)
{
    int classes = pdn_detection_classes(net);
    /* volatile: freed by the cleanup after a longjmp, assigned after setjmp. */
    float *volatile input = NULL;
    detection *volatile dets = NULL;
    volatile int nboxes = 0;
    pdn_detection *volatile found = NULL;
    int *volatile saved_batch = NULL;
    volatile int inside = -1;  /* the batch item the detection layers point at */
    *out = NULL;
    *count = 0;
    PDN_GUARDED_AT_BATCH(net, n, verbose, err, {
        if (inside >= 0) leave_batch_item(net, inside, saved_batch);
        if (dets) free_detections(dets, nboxes);
        free(input); free(found); free(saved_batch);
    }, {
        if (classes < 0) darknet_fail(DARKNET_ERR_CFG, "this network has no detection layer ([yolo], [region] or [detection])");
        int b, allocated = 0;
        /* stretched: the boxes relative to the input are relative to the image */
        int letterboxed = letterboxes(pre, net->letter_box);
        input = calloc((size_t)net->inputs * n, sizeof(float));
        saved_batch = calloc(net->n, sizeof(int));
        for (b = 0; b < n; ++b) prepare_input(net, &images[b], pre, net->letter_box, input + (size_t)b * net->inputs);
        network_predict(net, input);
        for (b = 0; b < n; ++b) {
            enter_batch_item(net, b, saved_batch);
            inside = b;
            int boxes = 0;
            int box_w = letterboxed ? images[b].w : net->w, box_h = letterboxed ? images[b].h : net->h;
            dets = get_network_boxes(net, box_w, box_h, thresh, hier_thresh, 0, 1, &boxes);
            nboxes = boxes;
            leave_batch_item(net, b, saved_batch);
            inside = -1;
            if (nms) apply_nms(net, dets, nboxes, classes, nms);
            allocated += nboxes * classes;
            found = realloc(found, sizeof(pdn_detection) * (allocated ? allocated : 1));  /* or OutOfMemoryError */
            collect(dets, nboxes, classes, b, thresh, found, count);
            free_detections(dets, nboxes);
            dets = NULL;
        }
        free(input); free(saved_batch);
        input = NULL; saved_batch = NULL;
    });
    *out = found;
    return 0;
}

void pdn_detections_free(pdn_detection *dets)
{
    free(dets);
}

int pdn_classify(network *net, const pdn_image *im, const pdn_preprocessing *pre, float *probs, int verbose,
                 pdn_error *err)
{
    float *volatile input = NULL;
    PDN_GUARDED_AT_BATCH(net, 1, verbose, err, free(input), {
        input = calloc(net->inputs, sizeof(float));
        prepare_input(net, im, pre, 1, input);
        float *predictions = network_predict(net, input);
        if (net->hierarchy) hierarchy_predictions(predictions, net->outputs, net->hierarchy, 1, 1);
        memcpy(probs, predictions, sizeof(float) * net->outputs);
        free(input);
        input = NULL;
    });
    return 0;
}

int pdn_draw(const pdn_image *im, const pdn_detection *found, int count, char **labels, int classes,
             const char *labels_dir, pdn_image *out, pdn_error *err)
{
    detection *volatile dets = NULL;
    char **volatile names = NULL;
    int *volatile group = NULL;  /* the box of each detection */
    volatile int made = 0;
    PDN_GUARDED(0, err, {
        int k;
        for (k = 0; k < made; ++k) free(dets[k].prob);
        free(dets);
        free(names);
        free(group);
    }, {
        int i, j;
        group = calloc(count ? count : 1, sizeof(int));
        dets = calloc(count ? count : 1, sizeof(detection));
        names = calloc(classes, sizeof(char *));
        for (i = 0; i < count; ++i) {
            const pdn_detection *d = &found[i];
            if (d->class_id < 0 || d->class_id >= classes) {
                darknet_fail(DARKNET_ERR_INTERNAL, "class %d of %d classes", d->class_id, classes);
            }
            /* one upstream detection per box: its labels are drawn joined, as upstream does */
            for (j = 0; j < made; ++j) {
                box b = dets[j].bbox;
                if (b.x == d->x && b.y == d->y && b.w == d->w && b.h == d->h) break;
            }
            if (j == made) {
                dets[j].prob = calloc(classes, sizeof(float));
                dets[j].bbox.x = d->x; dets[j].bbox.y = d->y; dets[j].bbox.w = d->w; dets[j].bbox.h = d->h;
                dets[j].classes = classes;
                dets[j].objectness = d->objectness;
                made = made + 1;
            }
            group[i] = j;
            if (d->prob > dets[j].prob[d->class_id]) dets[j].prob[d->class_id] = d->prob;
        }
        image drawn = copy_image(as_image(im));
        image **alphabet = labels ? get_alphabet(labels_dir) : NULL;
        /* box by box, names[] holding that box's own labels: upstream's draw_detections()
         * labels a class by its name only, the caller's text (with a confidence) per detection */
        for (j = 0; j < made; ++j) {
            for (i = 0; i < classes; ++i) names[i] = "";
            for (i = 0; i < count; ++i) {
                if (group[i] == j && labels) names[found[i].class_id] = labels[i];
            }
            draw_detections(drawn, &dets[j], 1, 0, names, alphabet, classes);
        }
        set_pdn_image(out, drawn);
        for (i = 0; i < made; ++i) free(dets[i].prob);
        free(dets);
        free(names);
        free(group);
        dets = NULL;
        names = NULL;
        group = NULL;
        made = 0;
    });
    return 0;
}

int pdn_save_jpeg(const pdn_image *im, const char *path, pdn_error *err)
{
    PDN_GUARDED(0, err, (void)0, {
        if (!save_jpeg(as_image(im), path)) {
            darknet_fail(DARKNET_ERR_FILE, "cannot write the image %s: %s", path, errno ? strerror(errno) : "write failed");
        }
    });
    return 0;
}
