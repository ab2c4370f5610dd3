/* Reading a cfg's values strictly (option_list.c calls in; patch strict-cfg-numbers): a number
 * that is not all a number, or out of range, is a cfg error naming its key, where
 * upstream's atoi()/atof() read "3x" as 3 and "x" as 0. Also the keys only training
 * reads, which are not reported as unused. Compiled with upstream's sources. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "pdn_upstream.h"

/* Whether text is all of a whole number in int range (stored in *out). */
static int read_int_text(const char *text, void *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if(end == text || *end || errno == ERANGE || value < INT_MIN || value > INT_MAX) return 0;
    *(int *)out = (int)value;
    return 1;
}

/* Whether text is all of a finite float (stored in *out). */
static int read_float_text(const char *text, void *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if(end == text || *end || !isfinite(value) || fabs(value) > FLT_MAX) return 0;
    *(float *)out = (float)value;
    return 1;
}

static const char *INT_WANTED = "a whole number";
static const char *FLOAT_WANTED = "a finite number";

int cfg_int(const char *key, const char *text)
{
    int value;
    if(!read_int_text(text, &value)) darknet_fail(DARKNET_ERR_CFG, "%s=%s is not %s", key, text, INT_WANTED);
    return value;
}

float cfg_float(const char *key, const char *text)
{
    float value;
    if(!read_float_text(text, &value)) darknet_fail(DARKNET_ERR_CFG, "%s=%s is not %s", key, text, FLOAT_WANTED);
    return value;
}

/* The comma-separated items of text (at least one), each read by read_item. */
static void *parse_list(const char *key, const char *text, int *count, size_t item_size,
                        int (*read_item)(const char *, void *), const char *wanted)
{
    int n = 1, i = 0;
    const char *p;
    for(p = text; *p; ++p) if(*p == ',') ++n;
    char *items = calloc(n, item_size);
    char *copy = strdup(text), *item = copy, *comma;
    for(; item; item = comma, ++i){
        comma = strchr(item, ',');
        if(comma) *comma++ = '\0';
        if(!read_item(item, items + i * item_size)){
            char bad[64];
            snprintf(bad, sizeof(bad), "%s", item);
            free(copy);
            free(items);
            darknet_fail(DARKNET_ERR_CFG, "%s=%s: item %d ('%s') is not %s", key, text, i + 1, bad, wanted);
        }
    }
    free(copy);
    *count = n;
    return items;
}

int *option_int_list(const char *key, const char *text, int *count)
{
    return parse_list(key, text, count, sizeof(int), read_int_text, INT_WANTED);
}

float *option_float_list(const char *key, const char *text, int *count)
{
    return parse_list(key, text, count, sizeof(float), read_float_text, FLOAT_WANTED);
}

/* Keys of AlexeyAB's cfgs (yolov4, yolov7) that only training reads: data augmentation,
 * loss weights, schedules. Inference has nothing to do with them, so they are known and
 * no warning, which stays for keys that nothing reads (usually a typo or a feature
 * this runtime lacks). */
static const char *const training_only_keys[] = {
    "mosaic", "mosaic_bound", "cutmix", "mixup", "blur", "gaussian_noise", "flip", "track", "augment_speed",
    "sequential_subdivisions", "try_fix_nan", "loss_scale", "dynamic_minibatch", "optimized_memory",
    "workspace_size_limit_MB", "adversarial_lr", "attention", "ema_alpha", "max_chart_loss", "contrastive",
    "unsupervised", "cudnn_half", "iou_thresh", "iou_thresh_kind", "cls_normalizer", "iou_normalizer",
    "obj_normalizer", "delta_normalizer", "iou_loss", "max_delta", "resize", "objectness_smooth",
    "label_smooth_eps", "counters_per_class", "uc_normalizer", "focal_loss", "stopbackward", "train_only_bn",
};

int cfg_training_only_key(const char *key)
{
    size_t i;
    for(i = 0; i < sizeof(training_only_keys)/sizeof(*training_only_keys); ++i){
        if(strcmp(key, training_only_keys[i]) == 0) return 1;
    }
    return 0;
}
