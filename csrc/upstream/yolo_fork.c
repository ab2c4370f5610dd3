/* The fork's [yolo] box decoding (patches yolo-scale-xy and yolo-new-coords), called by
 * yolo_layer.c. Compiled with upstream's sources. */
#include "darknet.h"
#include "pdn_upstream.h"

/* AlexeyAB's scale_x_y: the activated centre offsets x, y of n cells stretched by s about
 * the cell's middle, so that a box centre can reach the cell's edges. */
void scale_xy(float *xy, int n, float s)
{
    int i;
    if(s == 1) return;
    for(i = 0; i < n; ++i) xy[i] = xy[i]*s - .5f*(s - 1);
}

/* new_coords=1: the inputs went through a logistic in the layer before, and box sizes
 * are (2 t)^2 x the anchor instead of exp(t) x the anchor. */
box get_yolo_box_new_coords(float *x, float *biases, int n, int index, int i, int j, int lw, int lh, int w, int h,
                                   int stride)
{
    box b;
    b.x = (i + x[index + 0*stride]) / lw;
    b.y = (j + x[index + 1*stride]) / lh;
    b.w = 4 * x[index + 2*stride] * x[index + 2*stride] * biases[2*n]   / w;
    b.h = 4 * x[index + 3*stride] * x[index + 3*stride] * biases[2*n+1] / h;
    return b;
}
