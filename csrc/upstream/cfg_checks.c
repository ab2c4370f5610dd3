/* The checks a cfg's layers pass before they are made (parser.c's parse functions call
 * them; patch checked-layer-sizes). Darknet sizes and indexes its buffers with int: each
 * count is computed here in 64 bits first, and a layer any of whose counts would not fit
 * an int is a cfg error before it is made, instead of an overflow in im2col or GEMM.
 * Compiled with upstream's sources. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "pdn_upstream.h"

void require_positive(const char *key, int value)
{
    if(value <= 0) darknet_fail(DARKNET_ERR_CFG, "%s must be positive, got %d", key, value);
}

/* Darknet computes sizes and indexes in int. Each layer's sizes are computed first in
 * 64 bits (products saturate), and a layer any of whose counts would not fit an int is
 * refused before it is made. */
long long mul64(long long a, long long b)
{
    long long product;
    return __builtin_mul_overflow(a, b, &product) ? LLONG_MAX : product;
}

void check_fits(const char *what, long long count)
{
    if(count > INT_MAX){
        darknet_fail(DARKNET_ERR_CFG, "%s would be %lld, more than Darknet's limit of %d; "
                "make the input, the batch or this layer smaller", what, count, INT_MAX);
    }
}

/* batch x c x h x w floats: one of the layer's buffers. */
void check_tensor(const char *what, long long batch, long long c, long long h, long long w)
{
    check_fits(what, mul64(mul64(batch, c), mul64(h, w)));
}

/* A layer's output shape, checked before the layer is made (parse_network checks the
 * made layer's output again). */
static void check_output(int batch, long long c, long long h, long long w)
{
    if(c < 1 || h < 1 || w < 1){
        darknet_fail(DARKNET_ERR_CFG, "this layer has an empty output (%lld x %lld x %lld); "
                "check its size, stride and padding", w, h, c);
    }
    check_tensor("the output (batch x channels x height x width)", batch, c, h, w);
}

/* Output size of a window of `size` moved by `stride` over `in` plus `padding` in all,
 * as upstream computes it (C division). */
static long long window_steps(long long in, long long padding, int size, int stride)
{
    check_fits("the padded input", in + padding);
    return (in + padding - size)/stride + 1;
}

/* The previous layer's output must be an image (c x h x w) for this one. */
void require_image(size_params params, const char *type)
{
    if(!(params.h && params.w && params.c)){
        darknet_fail(DARKNET_ERR_CFG, "%s needs an image input (channels x height x width), but the layer "
                "before it outputs a vector of %d values", type, params.inputs);
    }
}

/* A detection layer reads its input as h x w x num x (fields per box): it must fit. */
static void check_detection_input(size_params params, long long boxes, long long fields)
{
    long long expected = mul64(boxes, fields);
    if(expected != params.inputs){
        darknet_fail(DARKNET_ERR_CFG, "this layer reads %lld values per image, but the layer before it outputs "
                "%d; set that layer's filters to match (num x (classes + coords + 1) per cell)",
                expected, params.inputs);
    }
    check_tensor("the output (batch x inputs)", params.batch, 1, 1, params.inputs);
}

/* anchors=a,b,... filling a biases array of `capacity` floats. */
void set_anchors(float *biases, const char *anchors, int capacity)
{
    int n;
    float *values = option_float_list("anchors", anchors, &n);
    if(n > capacity){
        free(values);
        darknet_fail(DARKNET_ERR_CFG, "anchors has %d values, but num allows at most %d", n, capacity);
    }
    memcpy(biases, values, n*sizeof(float));
    free(values);
}

/* A layer reference as written in the cfg (negative: relative), checked and made absolute. */
int layer_reference(const char *key, int index, int current)
{
    int absolute = index < 0 ? current + index : index;
    if(absolute < 0 || absolute >= current){
        darknet_fail(DARKNET_ERR_CFG, "%s=%d refers to layer %d, but only layers 0..%d come before this one",
                key, index, absolute, current - 1);
    }
    return absolute;
}

/* rnn, gru, lstm: connected layers of inputs x output and output x output weights,
 * run over batch / time_steps sequences. */
void check_recurrent(size_params params, int output)
{
    require_positive("output", output);
    if(params.batch % params.time_steps){
        darknet_fail(DARKNET_ERR_CFG, "this layer runs batch / time_steps sequences: batch %d is not a multiple "
                "of time_steps=%d", params.batch, params.time_steps);
    }
    check_fits("the weights (inputs x output)", mul64(params.inputs > output ? params.inputs : output, output));
    check_tensor("the output (batch x output)", params.batch, 1, 1, output);
}

/* One function per layer type, called by its parse function with the values it read. */
void check_local(size_params params, int n, int size, int stride, int pad)
{
    int batch = params.batch, h = params.h, w = params.w, c = params.c;
    require_positive("filters", n);
    require_positive("size", size);
    require_positive("stride", stride);
    require_image(params, "local");
    /* local_out_height(): pad=1 pads size/2 pixels, as for convolutions */
    long long padding = pad ? size/2 : 0;
    long long out_h = window_steps(h, 2*padding, size, stride), out_w = window_steps(w, 2*padding, size, stride);
    check_output(batch, n, out_h, out_w);
    check_fits("the weights (channels x filters x size^2 x locations)",
            mul64(mul64(mul64(c, n), mul64(size, size)), mul64(out_h, out_w)));
    check_fits("the workspace (locations x channels x size^2)", mul64(mul64(out_h, out_w), mul64(mul64(size, size), c)));
}

/* padding as given; pad=1 replaces it with size/2 */
void check_deconvolutional(size_params params, int n, int size, int stride, int padding, int pad)
{
    int batch = params.batch, h = params.h, w = params.w, c = params.c;
    require_positive("filters", n);
    require_positive("size", size);
    require_positive("stride", stride);
    require_image(params, "deconvolutional");
    if(padding < 0) darknet_fail(DARKNET_ERR_CFG, "padding must not be negative, got %d", padding);
    if(pad) padding = size/2;
    /* deconvolutional_out_height() */
    check_output(batch, n, mul64(h - 1LL, stride) + size - 2LL*padding, mul64(w - 1LL, stride) + size - 2LL*padding);
    check_fits("the weights (channels x filters x size^2)", mul64(mul64(c, n), mul64(size, size)));
    check_fits("the workspace (input pixels x filters x size^2)", mul64(mul64(h, w), mul64(mul64(size, size), n)));
}

/* padding as given; pad=1 replaces it with size/2 */
void check_convolutional(size_params params, int n, int size, int stride, int padding, int pad, int groups)
{
    int batch = params.batch, h = params.h, w = params.w, c = params.c;
    require_positive("filters", n);
    require_positive("size", size);
    require_positive("stride", stride);
    require_positive("groups", groups);
    if(padding < 0) darknet_fail(DARKNET_ERR_CFG, "padding must not be negative, got %d", padding);
    if(params.c % groups || n % groups){
        darknet_fail(DARKNET_ERR_CFG, "groups=%d must divide both the input channels (%d) and filters (%d)",
                groups, params.c, n);
    }
    if(pad) padding = size/2;
    require_image(params, "convolutional");
    long long out_h = window_steps(h, 2LL*padding, size, stride), out_w = window_steps(w, 2LL*padding, size, stride);
    check_output(batch, n, out_h, out_w);
    check_fits("the weights (channels / groups x filters x size^2)", mul64(mul64(c/groups, n), mul64(size, size)));
    check_fits("the workspace (output pixels x channels / groups x size^2)",
            mul64(mul64(out_h, out_w), mul64(mul64(size, size), c/groups)));
}

void check_crnn(size_params params, int output_filters, int hidden_filters)
{
    require_positive("output_filters", output_filters);
    require_positive("hidden_filters", hidden_filters);
    require_image(params, "crnn");
    if(params.batch % params.time_steps){
        darknet_fail(DARKNET_ERR_CFG, "crnn runs batch / time_steps sequences: batch %d is not a multiple of "
                "time_steps=%d", params.batch, params.time_steps);
    }
    /* three 3x3 convolutions over every time step, and the hidden state of each */
    long long widest = params.c > hidden_filters ? params.c : hidden_filters;
    check_tensor("the hidden state", params.batch + 1LL, hidden_filters, params.h, params.w);
    check_output(params.batch, output_filters, params.h, params.w);
    check_fits("the weights (channels x filters x 9)", mul64(mul64(widest, widest > output_filters ? widest : output_filters), 9));
    check_fits("the workspace (pixels x channels x 9)", mul64(mul64(params.h, params.w), mul64(widest, 9)));
}

void check_connected(size_params params, int output)
{
    require_positive("output", output);
    check_fits("the weights (inputs x output)", mul64(params.inputs, output));
    check_tensor("the output (batch x output)", params.batch, 1, 1, output);
}

void check_softmax(size_params params, int groups)
{
    require_positive("groups", groups);
    if(params.inputs % groups){
        darknet_fail(DARKNET_ERR_CFG, "groups=%d does not divide the %d inputs", groups, params.inputs);
    }
}

/* mask indexes the total anchors; freed on failure */
void check_mask(int *mask, int num, int total)
{
    int i;
    for(i = 0; mask && i < num; ++i){
        if(mask[i] < 0 || mask[i] >= total){
            int bad = mask[i];
            free(mask);
            darknet_fail(DARKNET_ERR_CFG, "mask index %d is outside 0..%d (num=%d)", bad, total - 1, total);
        }
    }
}

void check_region(size_params params, int coords, int classes, int num)
{
    require_positive("coords", coords);
    if(classes < 0) darknet_fail(DARKNET_ERR_CFG, "classes must not be negative, got %d", classes);
    require_positive("num", num);
    require_image(params, "region");
    check_fits("the anchors (2 x num)", 2LL*num);
    check_detection_input(params, mul64(params.h, params.w), mul64(num, classes + coords + 1LL));
}

void check_detection(size_params params, int coords, int classes, int num, int side)
{
    require_positive("coords", coords);
    require_positive("num", num);
    require_positive("side", side);
    if(classes < 0) darknet_fail(DARKNET_ERR_CFG, "classes must not be negative, got %d", classes);
    check_detection_input(params, mul64(side, side), mul64(1LL + coords, num) + classes);
}

void check_iseg(size_params params, int classes, int ids)
{
    require_positive("classes", classes);
    require_positive("ids", ids);
    require_image(params, "iseg");
    check_detection_input(params, mul64(params.h, params.w), classes + (long long)ids);
}

void check_crop(size_params params, int crop_height, int crop_width)
{
    int h = params.h, w = params.w;
    require_image(params, "crop");
    if(crop_height < 1 || crop_width < 1 || crop_height > h || crop_width > w){
        darknet_fail(DARKNET_ERR_CFG, "crop_height=%d crop_width=%d must be between 1 and the input's "
                "height %d and width %d", crop_height, crop_width, h, w);
    }
}

void check_reorg(size_params params, int stride, int reverse, int extra)
{
    int batch = params.batch, h = params.h, w = params.w, c = params.c;
    require_positive("stride", stride);
    require_image(params, "reorg");
    long long cells = (long long)stride*stride;
    if(extra < 0) darknet_fail(DARKNET_ERR_CFG, "extra must not be negative, got %d", extra);
    if(extra){
        check_tensor("the output (batch x (inputs + extra))", batch, 1, 1, (long long)params.inputs + extra);
    }else if(c % cells || (!reverse && (w % stride || h % stride))){
        darknet_fail(DARKNET_ERR_CFG, "reorg stride=%d needs channels divisible by %lld%s; the input is "
                "%d x %d x %d", stride, cells, reverse ? "" : " and width and height divisible by the stride",
                w, h, c);
    }else if(reverse){
        check_tensor("the output", batch, c / cells, mul64(h, stride), mul64(w, stride));
    }
}

void check_maxpool(size_params params, int size, int stride, int padding)
{
    int batch = params.batch, h = params.h, w = params.w, c = params.c;
    require_positive("stride", stride);
    require_positive("size", size);
    if(padding < 0) darknet_fail(DARKNET_ERR_CFG, "padding must not be negative, got %d", padding);
    require_image(params, "maxpool");
    check_output(batch, c, window_steps(h, padding, size, stride), window_steps(w, padding, size, stride));
}

void check_normalization(size_params params, int size)
{
    require_image(params, "normalization");
    /* the window sums size/2 channels on either side of each one */
    if(size < 1 || size/2 > params.c){
        darknet_fail(DARKNET_ERR_CFG, "size must be between 1 and 2 x channels + 1 (%d), got %d", 2*params.c + 1, size);
    }
}

void check_upsample(size_params params, int stride)
{
    if(stride == 0) darknet_fail(DARKNET_ERR_CFG, "stride must not be 0");
    require_image(params, "upsample");
    if(stride < 0 && (stride == INT_MIN || params.w % -stride || params.h % -stride)){
        darknet_fail(DARKNET_ERR_CFG, "stride=%d downsamples: width %d and height %d must be divisible by %d",
                stride, params.w, params.h, stride == INT_MIN ? INT_MAX : -stride);
    }
    if(stride > 0) check_tensor("the output", params.batch, params.c, mul64(params.h, stride), mul64(params.w, stride));
}

void check_shortcut(size_params params, int index)
{
    layer from = params.net->layers[index];
    /* shortcut_cpu() subsamples or strides by integer factors, the same in both axes */
    if(!(from.out_w && from.out_h && params.w && params.h)
            || from.out_w/params.w != from.out_h/params.h || params.w/from.out_w != params.h/from.out_h){
        darknet_fail(DARKNET_ERR_CFG, "shortcut from layer %d (%d x %d x %d) does not fit this input (%d x %d x %d): "
                "width and height must match or differ by the same integer factor",
                index, from.out_w, from.out_h, from.out_c, params.w, params.h, params.c);
    }
}

/* mask: the anchors this layer uses, comma-separated (0: all of num) */
void check_yolo(size_params params, int classes, int total, const char *mask)
{
    int num = total, i;
    require_positive("classes", classes);
    require_positive("num", total);
    require_image(params, "yolo");
    check_fits("the anchors (2 x num)", 2LL*total);
    if(mask) for(num = 1, i = 0; mask[i]; ++i) num += mask[i] == ',';  /* the mask's length */
    check_detection_input(params, mul64(params.h, params.w), mul64(num, classes + 5LL));
}

/* [route] layers=: the inputs as absolute indexes (to free()), each one before this
 * layer, of the first one's width and height, with channels that groups divides; the
 * output within Darknet's int sizes. */
int *route_inputs(const char *text, size_params params, int groups, int group_id, int *count)
{
    if(!text) darknet_fail(DARKNET_ERR_CFG, "route needs layers=LAYER[,LAYER...]");
    require_positive("groups", groups);
    if(group_id < 0 || group_id >= groups){
        darknet_fail(DARKNET_ERR_CFG, "group_id=%d: it must be 0..%d (groups=%d)", group_id, groups - 1, groups);
    }
    int n, i;
    int *layers = option_int_list("layers", text, &n);
    network *net = params.net;
    long long channels = 0;
    for(i = 0; i < n; ++i){
        int absolute = layers[i] < 0 ? params.index + layers[i] : layers[i];
        if(absolute < 0 || absolute >= params.index){
            int written = layers[i];
            free(layers);
            layer_reference("layers", written, params.index);  /* fails, naming the reference */
        }
        layers[i] = absolute;
        layer first = net->layers[layers[0]], next = net->layers[absolute];
        if(next.out_w != first.out_w || next.out_h != first.out_h){
            int first_index = layers[0];
            free(layers);
            darknet_fail(DARKNET_ERR_CFG, "route inputs differ in size: layer %d is %d x %d, layer %d is %d x %d "
                    "(only the channels may differ)", first_index, first.out_w, first.out_h,
                    absolute, next.out_w, next.out_h);
        }
        if(next.out_c % groups){
            int bad = absolute, c = next.out_c;
            free(layers);
            darknet_fail(DARKNET_ERR_CFG, "groups=%d does not divide the %d channels of layer %d", groups, c, bad);
        }
        channels += next.outputs / groups;
    }
    if(mul64(channels, params.batch) > INT_MAX){
        free(layers);
        check_tensor("the output (batch x the inputs' outputs)", params.batch, 1, 1, channels);  /* fails */
    }
    *count = n;
    return layers;
}

/* [net] width x height x channels, the default of inputs= */
int net_image_floats(network *net)
{
    if(net->h < 0 || net->w < 0 || net->c < 0){
        darknet_fail(DARKNET_ERR_CFG, "width, height and channels must not be negative");
    }
    /* in 64 bits: with channels=0 the product fits while height x width alone may not */
    long long image_floats = mul64(mul64(net->h, net->w), net->c);
    check_fits("width x height x channels", image_floats);
    return (int)image_floats;
}

void check_net_inputs(network *net)
{
    if(net->inputs < 0) darknet_fail(DARKNET_ERR_CFG, "inputs must not be negative");
    if(!net->inputs) darknet_fail(DARKNET_ERR_CFG, "no input size: give width, height and channels (or inputs)");
    if(net->h && net->w && net->c && net->inputs != net->h * net->w * net->c){
        darknet_fail(DARKNET_ERR_CFG, "inputs=%d disagrees with width x height x channels = %d",
                net->inputs, net->h * net->w * net->c);
    }
}

/* policy=steps: steps= and scales=, one scale per step */
void read_steps(network *net, const char *steps, const char *scales)
{
    if(!steps || !scales) darknet_fail(DARKNET_ERR_CFG, "policy=steps needs steps= and scales=");
    int n, n_scales;
    /* freed with the network, also when a later check fails */
    net->steps = option_int_list("steps", steps, &n);
    net->scales = option_float_list("scales", scales, &n_scales);
    if(n != n_scales){
        darknet_fail(DARKNET_ERR_CFG, "policy=steps has %d steps but %d scales: give one scale per step",
                n, n_scales);
    }
    net->num_steps = n;
}
