"""pydarknet: the original Darknet as a dependable Python runtime.

    >>> import pydarknet
    >>> net = pydarknet.Network(pydarknet.upstream_path("cfg/yolov3-tiny.cfg"), "yolov3-tiny.weights")
    >>> out = net.predict(image_chw_float32)

The package by stage: ``source`` (upstream's pinned tree and our patch series, used
by the build), ``formats`` (Darknet cfg/weights, Caffe prototxt/caffemodel),
``transforms`` (BatchNorm folding, Caffe and ONNX to Darknet, Darknet to ONNX), ``binding`` (the compiled
extension), ``runtime`` (networks, images, detection, the model zoo) and ``cli``.
The names that need the compiled extension load on first use, so the pure-Python
tools (``pydarknet patches``) also work in a source checkout before a build.
"""

import os as _os

try:  # load the BLAS library the extension links to (found this way in a source checkout too)
    import scipy_openblas32  # noqa: F401
except ImportError:
    pass

from .errors import (CaffeError, CfgError, ConversionError, DarknetError, DatasetError, DependencyError, DeviceError,
                     FileError, FoldError, ImageError, InternalError, OnnxError, OutOfMemoryError, WeightsError)

__all__ = [
    "Network", "Layer", "load", "predict", "Result", "detect", "detect_batch", "detect_stream", "FrameResult",
    "draw", "classify", "Detection", "export_onnx",
    "Classification", "load_image", "Image", "register_layer", "unregister_layer", "zoo", "evaluate", "Evaluation",
    "quantize",
    "samples", "convert", "build_info", "upstream_path", "set_num_threads", "get_num_threads",
    "thread_policy", "__version__",
    "cuda_device_count", "DarknetError", "FileError", "CfgError", "WeightsError", "ImageError",
    "OutOfMemoryError", "InternalError", "DeviceError", "CaffeError", "OnnxError", "FoldError", "ConversionError",
    "DependencyError", "DatasetError",
    "Preprocessing", "PreprocessingWarning",
]

# name -> the module that defines it; all but upstream_path need the compiled extension
_LAZY = {
    "Network": "runtime.network", "Layer": "runtime.layer_info", "load": "runtime.network",
    "detect": "api.inference", "detect_batch": "api.inference", "classify": "api.inference",
    "predict": "api.stream", "Result": "runtime.results",
    "detect_stream": "api.stream", "FrameResult": "api.stream", "draw": "runtime.drawing",
    "Detection": "runtime.results", "Classification": "runtime.results",
    "load_image": "runtime.images", "Image": "runtime.images",
    "register_layer": "runtime.layers", "unregister_layer": "runtime.layers",
    "cuda_device_count": "runtime.devices", "upstream_path": "runtime.samples",
    "export_onnx": "api.export", "Preprocessing": "formats.preprocessing",
    "evaluate": "api.evaluation", "Evaluation": "api.evaluation", "quantize": "api.quantize",
    "PreprocessingWarning": "runtime.images",
}
# modules offered as attributes: pydarknet.zoo, .samples, .convert (Caffe and ONNX to Darknet),
# .ray (detection on Ray Data)
_MODULES = {"zoo": "api.zoo", "samples": "runtime.samples", "convert": "transforms.convert", "ray": "ray"}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pydarknet")
    except metadata.PackageNotFoundError:  # a source checkout that was never installed
        return "0+unknown"


__version__ = _version()


def _native():
    from . import binding

    return binding


def set_num_threads(n: int) -> None:
    """Threads for a forward pass, for the whole process: the OpenMP pool that runs the
    loops and oneDNN's primitives and splits each GEMM (OpenBLAS itself then stays
    single-threaded), or in a build without OpenMP the BLAS library's threads. The
    default, set at first use: ``PYDARKNET_NUM_THREADS``, else ``OMP_NUM_THREADS``, else
    the CPUs this process may use (its affinity mask capped by its cgroup CPU quota; see
    ``thread_policy()``). At most ``limits.MAX_THREADS``."""
    from .limits import MAX_THREADS, positive_int

    n = positive_int(n, "set_num_threads", MAX_THREADS)
    binding = _native()
    binding.lib.pdn_set_num_threads(n)
    binding.threads_source = "set_num_threads"


def get_num_threads() -> int:
    """The number of threads a forward pass uses."""
    return _native().lib.pdn_num_threads()


def thread_policy() -> dict:
    """How forward passes use the CPU: ``threads`` (as get_num_threads()), ``source``
    (what set that count: set_num_threads, PYDARKNET_NUM_THREADS, OMP_NUM_THREADS, the
    CPU affinity or a cgroup CPU quota), ``cpus`` (the CPUs this process may use) and
    ``wait`` (how idle OpenMP workers wait; see pydarknet/cpus.py)."""
    from . import cpus

    threads = get_num_threads()
    openmp = build_info()["features"]["openmp"]
    return {"threads": threads, "source": _native().threads_source, "cpus": cpus.available_cpus()[0],
            "wait": cpus.wait_policy() if openmp else "no OpenMP in this build (the BLAS library's threads)"}


def __getattr__(name):
    import importlib

    if name in _LAZY:
        if name != "upstream_path":
            _native()
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{_MODULES[name]}", __name__)
    raise AttributeError(f"module 'pydarknet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def build_info() -> dict:
    """How this pydarknet was built: upstream commit and channel, manifest hash,
    applied patches with sha256, compiler and flags, compiled-in features; and, in
    oneDNN builds, ``onednn_kernels``: the instruction set oneDNN uses on this CPU and
    the kernels it picks for a 3x3 convolution in float32 and in int8."""
    import json

    native = _native()
    info = json.loads(native.ffi.string(native.lib.pdn_build_info()).decode())
    if native.lib.pdn_has_onednn():
        isa, float32, int8 = (native.ffi.new("char[]", 64) for _ in range(3))
        native.lib.pdn_onednn_kernels(isa, float32, int8, 64)
        info["onednn_kernels"] = {"isa": native.ffi.string(isa).decode(),
                                  "float32": native.ffi.string(float32).decode(),
                                  "int8": native.ffi.string(int8).decode()}
    return info
