/* Winograd convolution F(m x m, 3 x 3) for 3x3 stride-1 kernels (Lavin & Gray 2015):
 * each (m+2) x (m+2) input tile is transformed, multiplied channel by channel with the
 * transformed kernels as (m+2)^2 independent GEMMs on the BLAS, and transformed back to
 * an m x m output tile: 2.25x (m = 2) or 4x (m = 4) fewer multiplications than im2col +
 * GEMM. Results equal the GEMM path's up to the float32 rounding of the transforms
 * (relative differences around 1e-7 for m = 2, 1e-6 for m = 4).
 *
 * Installed per layer through layer.forward (winograd_network()); the layer's state
 * holds the transformed kernels and biases, with batch normalization folded in. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "parallel.h"
#include "winograd.h"

#include "convolutional_layer.h"
#include "gemm.h"
#include "utils.h"

typedef struct {
    int m;            /* output tile: F(m x m, 3 x 3) */
    float *kernels;   /* U[xi][filter][channel], xi < (m+2)^2 */
    float *biases;
} winograd_conv;

#define MAX_ALPHA 6
#define CHANNEL_BLOCK 128  /* kernels transformed at once */
#define SCRATCH_FLOATS 16384  /* per thread, on the stack: 64 KiB, in L2 */

/* G, the (m+2) x 3 kernel transform; the input and output transforms B^T and A^T are
 * written out in input_1d() and output_1d(). */
static const float g2[] = {1, 0, 0,   .5f, .5f, .5f,   .5f, -.5f, .5f,   0, 0, 1};
static const float g4[] = {1/4.f, 0, 0,
                           -1/6.f, -1/6.f, -1/6.f,
                           -1/6.f, 1/6.f, -1/6.f,
                           1/24.f, 1/12.f, 1/6.f,
                           1/24.f, -1/12.f, 1/6.f,
                           0, 0, 1};

/* The tiles are numbered row by row, each row of tiles closed by a spare tile (its
 * output is discarded): an image padded to rows of (tiles_x + 1)*m pixels and split into
 * its m pixel phases then holds pixel j of every tile's row i at one fixed offset from
 * the tile's number, so each 1-D transform is one long vector loop over all tiles of a
 * band of tile rows (a row of tiles alone is often only 7 or 14 long). */
static int tiles_along(int out, int m) { return (out + m - 1) / m; }

static int grid_x(layer l, int m) { return tiles_along(l.out_w, m) + 1; }  /* tiles per row, the spare included */

static int grid_tiles(layer l, int m) { return tiles_along(l.out_h, m)*grid_x(l, m); }

/* Scratch floats per row of tiles: input transform (padded rows, vertical pass,
 * phases) and output transform (vertical pass, horizontal pass, interleaved rows). */
static size_t input_scratch(int m, int gx, int rows) { return (size_t)(m*rows + 2)*gx*m + 2*(size_t)(m + 2)*rows*gx*m + m; }

static size_t output_scratch(int m, int gx, int rows) { return (size_t)(m*(m + 2) + 2*m)*rows*gx; }

/* Rows of tiles one job transforms: as many as the per-thread scratch holds. */
static int band_rows(int m, int gx)
{
    int rows = 1;
    while (input_scratch(m, gx, rows + 1) <= SCRATCH_FLOATS && output_scratch(m, gx, rows + 1) <= SCRATCH_FLOATS) ++rows;
    return rows;
}

static int row_fits(int m, int gx) { return input_scratch(m, gx, 1) <= SCRATCH_FLOATS && output_scratch(m, gx, 1) <= SCRATCH_FLOATS; }

/* Images whose tiles go through one set of GEMMs: enough tiles for the BLAS to run at
 * speed, without a workspace that grows with the batch. */
static int images_per_gemm(layer l, int m)
{
    int tiles = grid_tiles(l, m), group = (256 + tiles - 1)/tiles;
    return group < l.batch ? group : l.batch;
}

/* Tiles inside the output that one set of GEMMs multiplies. */
static int gemm_tiles(layer l, int m)
{
    return tiles_along(l.out_h, m)*tiles_along(l.out_w, m)*images_per_gemm(l, m);
}

/* The tile for layer l against im2col + GEMM, or against oneDNN's direct convolution. */
static int winograd_tile(layer l, int versus_onednn)
{
    int side = l.out_h < l.out_w ? l.out_h : l.out_w, m;
    if (l.type != CONVOLUTIONAL || l.size != 3 || l.stride != 1 || l.groups != 1 || l.xnor || l.binary) return 0;
    /* Measured per layer shape (tools/bench_cpu.py, one and two threads): below 8 input
     * channels the transforms cost more than they save. The transformed kernels are
     * (m+2)^2/9 times the kernels and are streamed through the BLAS for every GEMM set,
     * so a GEMM needs enough tiles (N) to pay for them: with fewer than 36, im2col's
     * single GEMM is faster (batch 1: maps under 11 pixels for m = 2, under 21 for m = 4,
     * where m = 4 would also waste the edges of its larger tiles on small maps). Maps
     * too wide for one row of tiles in the scratch (over about 900 pixels for m = 4,
     * 1600 for m = 2) use the smaller tile or im2col. */
    if (l.c < 8) return 0;
    if (side >= 14 && gemm_tiles(l, 4) >= 36 && row_fits(4, grid_x(l, 4))) m = 4;
    else m = gemm_tiles(l, 2) >= 36 && row_fits(2, grid_x(l, 2)) ? 2 : 0;
    /* Against oneDNN's direct convolution (layers of yolov3-tiny and ResNet-18 timed in
     * turns, one and two threads) F(4x4) wins from 32 input channels up; F(2x2), with
     * its smaller saving and small GEMMs, lost on every layer it took (yolov3-tiny's
     * 512 to 1024 filters on 13x13: 8.4 against 7.6 ms on two threads). */
    if (versus_onednn && (m != 4 || l.c < 32)) return 0;
    return m;
}

/* Workspace bytes for V and M of one set of GEMMs. */
static size_t workspace_size(layer l, int m)
{
    size_t alpha = m + 2;
    return alpha*alpha*(size_t)(l.c + l.n)*grid_tiles(l, m)*images_per_gemm(l, m)*sizeof(float);
}

/* The 1-D transforms over n tiles at once: x[j][t] is element j of tile t, y[k][t] result k.
 * Written out because B^T and A^T are sparse; `omp simd` because the compiler, unsure
 * that x and y never overlap, would otherwise fall back to scalar code. */
static inline __attribute__((always_inline))
void input_1d(int m, const float *const *x, float *const *y, int n)
{
    int t;
    if (m == 2) {
        const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3];
        float *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2], *restrict y3 = y[3];
        #pragma omp simd
        for (t = 0; t < n; ++t) {
            y0[t] = x0[t] - x2[t];
            y1[t] = x1[t] + x2[t];
            y2[t] = x2[t] - x1[t];
            y3[t] = x1[t] - x3[t];
        }
    } else {
        const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3],
                    *restrict x4 = x[4], *restrict x5 = x[5];
        float *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2], *restrict y3 = y[3],
              *restrict y4 = y[4], *restrict y5 = y[5];
        #pragma omp simd
        for (t = 0; t < n; ++t) {
            y0[t] = 4*x0[t] - 5*x2[t] + x4[t];
            y1[t] = -4*x1[t] - 4*x2[t] + x3[t] + x4[t];
            y2[t] = 4*x1[t] - 4*x2[t] - x3[t] + x4[t];
            y3[t] = -2*x1[t] - x2[t] + 2*x3[t] + x4[t];
            y4[t] = 2*x1[t] - x2[t] - 2*x3[t] + x4[t];
            y5[t] = 4*x1[t] - 5*x3[t] + x5[t];
        }
    }
}

static inline __attribute__((always_inline))
void output_1d(int m, const float *const *x, float *const *y, int n)
{
    int t;
    if (m == 2) {
        const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3];
        float *restrict y0 = y[0], *restrict y1 = y[1];
        #pragma omp simd
        for (t = 0; t < n; ++t) {
            y0[t] = x0[t] + x1[t] + x2[t];
            y1[t] = x1[t] - x2[t] - x3[t];
        }
    } else {
        const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3],
                    *restrict x4 = x[4], *restrict x5 = x[5];
        float *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2], *restrict y3 = y[3];
        #pragma omp simd
        for (t = 0; t < n; ++t) {
            y0[t] = x0[t] + x1[t] + x2[t] + x3[t] + x4[t];
            y1[t] = x1[t] - x2[t] + 2*x3[t] - 2*x4[t];
            y2[t] = x1[t] + x2[t] + 4*x3[t] + 4*x4[t];
            y3[t] = x1[t] - x2[t] + 8*x3[t] - 8*x4[t] + x5[t];
        }
    }
}

/* U = G w G^T for every filter and channel of the weights w ([n][c][3][3]). */
static void transform_kernels(const layer *l, int m, const float *weights, float *kernels)
{
    const float *g = m == 4 ? g4 : g2;
    int a = m + 2, f;
    #pragma omp parallel for num_threads(darknet_threads()) schedule(static)
    for (f = 0; f < l->n; ++f) {
        float u[MAX_ALPHA*MAX_ALPHA][CHANNEL_BLOCK];  /* U[xi][f][c0 + ch] for a block of channels */
        int c0, ch, i, j, k;
        for (c0 = 0; c0 < l->c; c0 += CHANNEL_BLOCK) {
            int nc = l->c - c0 < CHANNEL_BLOCK ? l->c - c0 : CHANNEL_BLOCK;
            for (ch = 0; ch < nc; ++ch) {
                const float *w = weights + ((size_t)f*l->c + c0 + ch)*9;
                float gw[MAX_ALPHA*3];  /* G w */
                for (i = 0; i < a; ++i) {
                    for (j = 0; j < 3; ++j) gw[i*3 + j] = g[i*3]*w[j] + g[i*3 + 1]*w[3 + j] + g[i*3 + 2]*w[6 + j];
                }
                for (i = 0; i < a; ++i) {
                    for (j = 0; j < a; ++j) {  /* (G w G^T)[i][j] */
                        float sum = 0;
                        for (k = 0; k < 3; ++k) sum += gw[i*3 + k]*g[j*3 + k];
                        u[i*a + j][ch] = sum;
                    }
                }
            }
            for (i = 0; i < a*a; ++i) {
                memcpy(kernels + ((size_t)i*l->n + f)*l->c + c0, u[i], nc*sizeof(float));
            }
        }
    }
}

/* V[xi][t] (xi = i*alpha + j) for the tiles of tile rows ty0 .. ty0+rows-1 of one
 * channel image (tile t = ty*gx + tx, counted from ty0). */
static inline __attribute__((always_inline))
void transform_input(int m, const float *im, int h, int w, int pad, int gx, int ty0, int rows,
                     float *v, size_t xi_stride)
{
    const int a = m + 2, width = gx*m, n = rows*gx;  /* padded row length; tiles */
    float scratch[SCRATCH_FLOATS];
    float *padded = scratch;                           /* (m*rows + 2) x width */
    float *vertical = padded + (m*rows + 2)*width;     /* vertical[k][ty][x] = sum_i B^T[k][i] padded[ty*m + i][x] */
    float *phases = vertical + (size_t)a*rows*width;   /* phases[r][p] = vertical[p*m + r], a*n + 1 each */
    const size_t phase_len = (size_t)a*n + 1;
    const float *x[MAX_ALPHA];
    float *y[MAX_ALPHA];
    int i, j, k, r, ty;
    size_t p;
    for (i = 0; i < m*rows + 2; ++i) {
        float *row = padded + (size_t)i*width;
        int iy = ty0*m + i - pad, inside = w < width - pad ? w : width - pad;
        if (iy < 0 || iy >= h) {
            memset(row, 0, width*sizeof(float));
            continue;
        }
        memset(row, 0, pad*sizeof(float));
        memcpy(row + pad, im + (size_t)iy*w, inside*sizeof(float));
        memset(row + pad + inside, 0, (width - pad - inside)*sizeof(float));
    }
    for (ty = 0; ty < rows; ++ty) {
        for (i = 0; i < a; ++i) x[i] = padded + (size_t)(ty*m + i)*width;
        for (k = 0; k < a; ++k) y[k] = vertical + ((size_t)k*rows + ty)*width;
        input_1d(m, x, y, width);
    }
    for (r = 0; r < m; ++r) {
        float *phase = phases + r*phase_len;
        #pragma omp simd
        for (p = 0; p < phase_len - 1; ++p) phase[p] = vertical[p*m + r];
        phase[phase_len - 1] = 0;  /* read only by the last spare tile */
    }
    for (k = 0; k < a; ++k) {  /* V[k][j] = sum_l vertical[k][tile's column + l] B[l][j] */
        for (j = 0; j < a; ++j) {
            x[j] = phases + (j % m)*phase_len + (size_t)k*n + j/m;
            y[j] = v + (k*a + j)*xi_stride;
        }
        input_1d(m, x, y, n);
    }
}

/* Output rows of tile rows ty0 .. ty0+rows-1 of one output channel from M[xi][t]. */
static inline __attribute__((always_inline))
void transform_output(int m, const float *mm, size_t xi_stride, int gx, int ty0, int rows,
                      float *out, int out_h, int out_w, float bias, ACTIVATION activation)
{
    const int a = m + 2, n = rows*gx;
    float scratch[SCRATCH_FLOATS];
    float *vertical = scratch;                 /* vertical[r][j][t] = sum_i A^T[r][i] M[i][j][t] */
    float *pixels = vertical + (size_t)m*a*n;  /* pixels[s][t]: pixel s of row r of tile t */
    float *rowbuf = pixels + (size_t)m*n;      /* rowbuf[t*m + s]: the rows r of all tiles, side by side */
    const float *x[MAX_ALPHA];
    float *y[MAX_ALPHA];
    int i, j, r, s, ty, t;
    for (j = 0; j < a; ++j) {
        for (i = 0; i < a; ++i) x[i] = mm + (i*a + j)*xi_stride;
        for (r = 0; r < m; ++r) y[r] = vertical + ((size_t)r*a + j)*n;
        output_1d(m, x, y, n);
    }
    for (s = 0; s < m; ++s) y[s] = pixels + (size_t)s*n;
    for (r = 0; r < m; ++r) {
        for (j = 0; j < a; ++j) x[j] = vertical + ((size_t)r*a + j)*n;
        output_1d(m, x, y, n);
        #pragma omp simd
        for (t = 0; t < n; ++t) {
            for (s = 0; s < m; ++s) rowbuf[t*m + s] = pixels[(size_t)s*n + t];
        }
        for (ty = 0; ty < rows && (ty0 + ty)*m + r < out_h; ++ty) {
            float *o = out + (size_t)((ty0 + ty)*m + r)*out_w;
            memcpy(o, rowbuf + (size_t)ty*gx*m, out_w*sizeof(float));
            /* bias and activation while the row is in cache */
            cpu_activate_with_bias(o, out_w, bias, activation);
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* compiled for AVX-512, AVX2 and the baseline; the loader picks one for the CPU */
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "fma", "default")))
#else
#define VECTOR_CLONES
#endif

VECTOR_CLONES static void input_tiles2(const float *im, int h, int w, int pad, int gx, int ty0, int rows,
                                       float *v, size_t xi_stride)
{
    transform_input(2, im, h, w, pad, gx, ty0, rows, v, xi_stride);
}

VECTOR_CLONES static void input_tiles4(const float *im, int h, int w, int pad, int gx, int ty0, int rows,
                                       float *v, size_t xi_stride)
{
    transform_input(4, im, h, w, pad, gx, ty0, rows, v, xi_stride);
}

VECTOR_CLONES static void output_tiles2(const float *mm, size_t xi_stride, int gx, int ty0, int rows,
                                        float *out, int out_h, int out_w, float bias, ACTIVATION activation)
{
    transform_output(2, mm, xi_stride, gx, ty0, rows, out, out_h, out_w, bias, activation);
}

VECTOR_CLONES static void output_tiles4(const float *mm, size_t xi_stride, int gx, int ty0, int rows,
                                        float *out, int out_h, int out_w, float bias, ACTIVATION activation)
{
    transform_output(4, mm, xi_stride, gx, ty0, rows, out, out_h, out_w, bias, activation);
}

static void forward_winograd_convolutional(layer l, network net)
{
    const winograd_conv *s = l.backend;
    const int m = s->m, a2 = (m + 2)*(m + 2), c = l.c, n = l.n, h = l.h, w = l.w, pad = l.pad;
    const int gx = grid_x(l, m), tiles = grid_tiles(l, m), group = images_per_gemm(l, m);
    const int tile_rows = tiles_along(l.out_h, m), rows = band_rows(m, gx);
    const int bands = (tile_rows + rows - 1)/rows;
    const int threads = darknet_threads();
    int b0;
    if (net.train) {  /* training keeps darknet's path, which records what backward needs */
        forward_convolutional_layer(l, net);
        return;
    }
    for (b0 = 0; b0 < l.batch; b0 += group) {
        int g = l.batch - b0 < group ? l.batch - b0 : group, job, xi;
        size_t t_all = (size_t)tiles*g;
        /* V[xi][channel][tile] and M[xi][filter][tile] */
        float *v = net.workspace, *mm = net.workspace + (size_t)a2*c*t_all;
        #pragma omp parallel for num_threads(threads) schedule(static)
        for (job = 0; job < g*c*bands; ++job) {
            int ty0 = job%bands*rows, ch = job/bands%c, b = job/bands/c;
            int nr = tile_rows - ty0 < rows ? tile_rows - ty0 : rows;
            (m == 4 ? input_tiles4 : input_tiles2)(net.input + ((size_t)(b0 + b)*c + ch)*h*w, h, w, pad, gx, ty0, nr,
                                                   v + ch*t_all + (size_t)b*tiles + ty0*gx, c*t_all);
        }
        #pragma omp parallel for num_threads(threads) schedule(static)
        for (xi = 0; xi < a2; ++xi) {
#ifndef DARKNET_CBLAS
            /* gemm_cpu() scales C by beta 0, which keeps a stale NaN */
            memset(mm + xi*n*t_all, 0, n*t_all*sizeof(float));
#endif
            gemm(0, 0, n, t_all, c, 1, s->kernels + (size_t)xi*n*c, c, v + xi*c*t_all, t_all,
                 0, mm + xi*n*t_all, t_all);
        }
        #pragma omp parallel for num_threads(threads) schedule(static)
        for (job = 0; job < g*n*bands; ++job) {
            int ty0 = job%bands*rows, f = job/bands%n, b = job/bands/n;
            int nr = tile_rows - ty0 < rows ? tile_rows - ty0 : rows;
            (m == 4 ? output_tiles4 : output_tiles2)(mm + f*t_all + (size_t)b*tiles + ty0*gx, n*t_all, gx, ty0, nr,
                                                     l.output + ((size_t)(b0 + b)*n + f)*l.out_h*l.out_w,
                                                     l.out_h, l.out_w, s->biases[f], l.activation);
        }
    }
}

static void free_winograd_conv(void *state)
{
    winograd_conv *s = state;
    free(s->kernels);
    free(s->biases);
    free(s);
}

/* The network's workspace (the largest any layer asked for) grown to `size` bytes. */
static void ensure_workspace(network *net, layer *l, size_t size)
{
    size_t current = 0;
    int i;
    for (i = 0; i < net->n; ++i) {
        if (net->layers[i].workspace_size > current) current = net->layers[i].workspace_size;
    }
    if (size > current) {  /* the new buffer first: a failed allocation leaves the old one in place */
        float *grown = calloc(1, size);
        if (!grown) malloc_error();
        free(net->workspace);
        net->workspace = grown;
    }
    if (size > l->workspace_size) l->workspace_size = size;
}

/* The state of layer l with tile m: kernels and biases with batch normalization folded.
 * (Allocations are checked: a failure leaves through darknet_fail.) */
static winograd_conv *make_state(const layer *l, int m)
{
    winograd_conv *s = calloc(1, sizeof(*s));
    float *weights;
    s->m = m;
    s->kernels = calloc((size_t)(m + 2)*(m + 2)*l->n*l->c, sizeof(float));
    s->biases = calloc(l->n, sizeof(float));
    weights = cpu_inference_weights(l, s->biases);
    transform_kernels(l, m, weights, s->kernels);
    cpu_release_weights(l, weights);
    return s;
}

int winograd_network(network *net, int versus_onednn)
{
    int i, used = 0;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        int m = l->backend ? 0 : winograd_tile(*l, versus_onednn);
        if (!m) continue;
        ensure_workspace(net, l, workspace_size(*l, m));
        l->backend = make_state(l, m);
        l->free_backend = free_winograd_conv;
        l->forward = forward_winograd_convolutional;
        ++used;
    }
    return used;
}

int winograd_layer_tile(const layer *l)
{
    return l->forward == forward_winograd_convolutional ? ((const winograd_conv *)l->backend)->m : 0;
}
