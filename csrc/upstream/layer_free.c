/* What free_layer() frees beyond upstream's buffers (patch free-layer-parts): composite
 * layers' sublayers, a CUSTOM layer's data, a backend's state and cuDNN descriptors.
 * Compiled with upstream's sources. */
#include <stdlib.h>

#include "darknet.h"
#include "pdn_upstream.h"

/* A composite layer's sublayer (rnn, crnn, gru, lstm make theirs with malloc). */
static void free_sublayer(layer *sub)
{
    if(!sub) return;
    free_layer(*sub);
    free(sub);
}

/* Frees those parts of l; its pointers into a sublayer's buffers are cleared, since
 * the sublayer frees them. */
void free_layer_owned(layer *l)
{
    layer *subs[] = {l->input_layer, l->self_layer, l->output_layer, l->uz, l->wz, l->ur,
                     l->wr, l->uh, l->wh, l->uf, l->wf, l->ui, l->wi, l->ug, l->wg, l->uo, l->wo};
    size_t i;
    if(l->output_layer && l->output == l->output_layer->output){  /* rnn, crnn: freed with it */
        l->output = 0;
        l->delta = 0;
#ifdef GPU
        l->output_gpu = 0;
        l->delta_gpu = 0;
#endif
    }
    for(i = 0; i < sizeof(subs)/sizeof(*subs); ++i) free_sublayer(subs[i]);
    if(l->type == CUSTOM) free(l->user);
    if(l->free_backend) l->free_backend(l->backend);
#ifdef CUDNN
    /* the cuDNN descriptors the constructors made (host memory, one set per load) */
    if(l->srcTensorDesc)  cudnnDestroyTensorDescriptor(l->srcTensorDesc);
    if(l->dstTensorDesc)  cudnnDestroyTensorDescriptor(l->dstTensorDesc);
    if(l->dsrcTensorDesc) cudnnDestroyTensorDescriptor(l->dsrcTensorDesc);
    if(l->ddstTensorDesc) cudnnDestroyTensorDescriptor(l->ddstTensorDesc);
    if(l->normTensorDesc) cudnnDestroyTensorDescriptor(l->normTensorDesc);
    if(l->weightDesc)     cudnnDestroyFilterDescriptor(l->weightDesc);
    if(l->dweightDesc)    cudnnDestroyFilterDescriptor(l->dweightDesc);
    if(l->convDesc)       cudnnDestroyConvolutionDescriptor(l->convDesc);
#endif
}
