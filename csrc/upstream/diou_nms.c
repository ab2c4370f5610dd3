/* The overlap by which the fork's nms_kind suppresses boxes (patch diou-nms): box.c's
 * NMS calls it. Compiled with upstream's sources. */
#include <math.h>

#include "box.h"
#include "pdn_upstream.h"

/* IoU (beta < 0), or DIoU-NMS's IoU - (d^2 / c^2)^beta: d the distance of the centres,
 * c the diagonal of the smallest box enclosing both (Zheng et al. 2020, as AlexeyAB's
 * darknet computes it; beta 1 is plain DIoU). */
float nms_overlap(box a, box b, float beta)
{
    float iou = box_iou(a, b);
    if(beta < 0) return iou;
    float left = fminf(a.x - a.w/2, b.x - b.w/2), right = fmaxf(a.x + a.w/2, b.x + b.w/2);
    float top = fminf(a.y - a.h/2, b.y - b.h/2), bottom = fmaxf(a.y + a.h/2, b.y + b.h/2);
    float c = (right - left)*(right - left) + (bottom - top)*(bottom - top);
    if(c == 0) return iou;
    float d = (a.x - b.x)*(a.x - b.x) + (a.y - b.y)*(a.y - b.y);
    return iou - powf(d/c, beta);
}
