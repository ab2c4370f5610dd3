/* CUDA devices: what the runtime reports, where a network is made and run, and its
 * device copy of folded weights. Without GPU (a build without CUDA) there are none. */
#include <stdio.h>

#include "glue.h"
#ifdef GPU
#include "connected_layer.h"
#include "convolutional_layer.h"
#include "cuda.h"
#include "deconvolutional_layer.h"
#endif

int pdn_cuda_device_count(void)
{
#ifdef GPU
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {  /* no driver or no GPU: none to use */
        cudaGetLastError();
        return 0;
    }
    return n;
#else
    return 0;
#endif
}

int pdn_cuda_device_name(int index, char *name, int size)
{
#ifdef GPU
    struct cudaDeviceProp prop;
    if (index < 0 || index >= pdn_cuda_device_count() || cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    snprintf(name, size, "%s", prop.name);
    return prop.major * 10 + prop.minor;
#else
    (void)index; (void)name; (void)size;
    return -1;
#endif
}

int pdn_cuda_memory(int index, unsigned long long *free_bytes, unsigned long long *total_bytes)
{
    *free_bytes = *total_bytes = 0;
#ifdef GPU
    size_t free_now, total;
    int current = 0;
    if (index < 0 || index >= pdn_cuda_device_count() || cudaGetDevice(&current) != cudaSuccess
        || cudaSetDevice(index) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    cudaError_t status = cudaMemGetInfo(&free_now, &total);
    cudaSetDevice(current);
    if (status != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    *free_bytes = free_now;
    *total_bytes = total;
    return 0;
#else
    (void)index;
    return -1;
#endif
}

void pdn_cuda_versions(int *runtime, int *driver, int *cudnn)
{
    *runtime = *driver = *cudnn = 0;
#ifdef GPU
    if (cudaRuntimeGetVersion(runtime) != cudaSuccess) *runtime = 0;
    if (cudaDriverGetVersion(driver) != cudaSuccess) *driver = 0;
    cudaGetLastError();
#ifdef CUDNN
    *cudnn = (int)cudnnGetVersion();
#endif
#endif
}

int pdn_network_device(network *net)
{
#ifdef GPU
    return net->gpu_index;
#else
    (void)net;
    return -1;
#endif
}

/* Where the parser puts the next network made on this thread (upstream's per-thread
 * gpu_index, patch per-thread-gpu-state): -1 the CPU, else that CUDA device, made current. */
void pdn_choose_device(int device)
{
#ifdef GPU
    int count = pdn_cuda_device_count();
    if (device >= count) {
        if (!count) darknet_fail(DARKNET_ERR_DEVICE, "cuda:%d: no CUDA device is visible (no GPU, no driver, or "
                                 "CUDA_VISIBLE_DEVICES hides them); load with device='cpu'", device);
        darknet_fail(DARKNET_ERR_DEVICE, "cuda:%d: this machine has %d CUDA device%s (cuda:0 to cuda:%d)",
                     device, count, count == 1 ? "" : "s", count - 1);
    }
    if (device >= 0) cuda_set_device(device);
    else gpu_index = -1;
#else
    if (device >= 0) darknet_fail(DARKNET_ERR_DEVICE, "this pydarknet build has no CUDA, so cuda:%d cannot be "
                                  "used: reinstall with PYDARKNET_GPU=1 pip install . (docs/gpu.md)", device);
#endif
}

/* A GPU network runs every layer's forward_gpu: refuse one without it. */
void pdn_check_gpu_layers(network *net)
{
#ifdef GPU
    int i;
    if (net->gpu_index < 0) return;
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (l.type == CUSTOM) {
            darknet_fail(DARKNET_ERR_DEVICE, "layer %d [%s] is defined in Python, which runs on the CPU only: "
                         "load this network with device='cpu'", i, ((python_layer *)l.user)->name);
        }
        if (!l.forward_gpu) {
            darknet_fail(DARKNET_ERR_DEVICE, "layer %d (%s) has no GPU implementation in Darknet: load this network "
                         "with device='cpu'", i, get_layer_string(l.type));
        }
    }
#else
    (void)net;
#endif
}

/* CUDA's current device is per thread: each call on a GPU network makes its device
 * current first (cuDNN and cuBLAS handles are per device and thread). */
void pdn_use_device(network *net)
{
#ifdef GPU
    if (net->gpu_index >= 0) cuda_set_device(net->gpu_index);
#else
    (void)net;
#endif
}

/* A GPU network's device copy of what folding changed. */
void pdn_push_folded(network *net)
{
#ifdef GPU
    int i;
    if (net->gpu_index < 0) return;
    pdn_use_device(net);
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (l.type == CONVOLUTIONAL) push_convolutional_layer(l);
        else if (l.type == DECONVOLUTIONAL) push_deconvolutional_layer(l);
        else if (l.type == CONNECTED) push_connected_layer(l);
    }
#else
    (void)net;
#endif
}
