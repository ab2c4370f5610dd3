/* Checked reading and writing of weights files (parser.c's load and save functions
 * call in; patches checked-weights-io and bn-free-weights). Compiled
 * with upstream's sources. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "pdn_upstream.h"
#include "connected_layer.h"
#include "convolutional_layer.h"
#include "utils.h"

/* Weights files have no structure of their own: only exact sizes tell a file
 * that belongs to the cfg from one that does not, so every read and write is checked.
 * The file is closed before failing, since the caller never gets it back. */
void read_weights(void *dst, size_t size, size_t count, FILE *fp)
{
    long start = ftell(fp);
    if(fread(dst, size, count, fp) == count) return;
    fseek(fp, 0, SEEK_END);
    long end = ftell(fp);
    fclose(fp);
    darknet_fail(DARKNET_ERR_WEIGHTS, "file is too short: it has %ld bytes, but the cfg needs bytes %ld..%ld here; "
            "the file is truncated or belongs to another cfg", end, start, start + (long)(size*count));
}

__thread int darknet_finite_weights = 1;

/* count floats; non-finite values are refused unless darknet_finite_weights is off:
 * one NaN (a diverged training run) turns every output to NaN. */
void read_floats(float *dst, size_t count, FILE *fp)
{
    long start = ftell(fp);
    read_weights(dst, sizeof(float), count, fp);
    size_t i;
    for(i = 0; darknet_finite_weights && i < count; ++i){
        if(isfinite(dst[i])) continue;
        fclose(fp);
        darknet_fail(DARKNET_ERR_WEIGHTS, "the value at byte %ld is %s: these weights are not usable (a diverged "
                "training run writes them); load with finite_weights off to inspect them anyway",
                start + (long)(i*sizeof(float)), isnan(dst[i]) ? "NaN" : "infinite");
    }
}

/* After the layers: a load of every layer must have used the whole file (a longer one
 * belongs to another cfg). The error context goes back to none either way. */
void check_weights_used(FILE *fp, const char *filename, int every_layer)
{
    darknet_set_context(filename, -1, -1);
    if(every_layer){
        long used = ftell(fp);
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        if(size != used){
            fclose(fp);
            darknet_fail(DARKNET_ERR_WEIGHTS, "file is too long: the cfg uses %ld bytes, the file has %ld more; "
                    "it belongs to another cfg", used, size - used);
        }
    }
    darknet_set_context(0, -1, -1);
}

void write_failed(FILE *fp)
{
    int saved = errno;
    fclose(fp);
    darknet_fail(DARKNET_ERR_FILE, "write failed: %s", strerror(saved));
}

void write_weights(const void *src, size_t size, size_t count, FILE *fp)
{
    if(fwrite(src, size, count, fp) != count) write_failed(fp);
}

/* Writes a layer with batch normalization as its folded form: biases, then weights,
 * which is the layout of both conv and connected layers without BN. */
void save_folded_weights(layer l, FILE *fp, bn_denominator d)
{
#ifdef GPU
    if(gpu_index >= 0){
        if(l.type == CONNECTED) pull_connected_layer(l);
        else pull_convolutional_layer(l);
    }
#endif
    int outputs = l.type == CONNECTED ? l.outputs : l.n;
    size_t count = outputs + (l.type == CONNECTED ? (size_t)l.outputs*l.inputs : (size_t)l.nweights);
    float *folded = calloc(count, sizeof(float));
    if(!folded) malloc_error();
    fold_batchnorm_weights(l, folded + outputs, folded, d);
    int written = fwrite(folded, sizeof(float), count, fp) == count;
    free(folded);
    if(!written) write_failed(fp);
}
