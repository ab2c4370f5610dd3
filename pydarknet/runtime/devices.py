"""Where a network runs: the CPU or a CUDA device (GPU builds, ``PYDARKNET_GPU=1``)."""

from __future__ import annotations

import re
from typing import List, NamedTuple, Tuple

from ..binding import ffi, lib
from ..errors import DeviceError


class CudaDevice(NamedTuple):
    index: int
    name: str
    capability: str  # compute capability, e.g. "9.0"


def device_index(device: str) -> int:
    """``device`` ("cpu", "cuda" or "cuda:N") as the C side's index: -1 for the CPU.
    Whether the build and the machine have that device is the loader's check."""
    if not isinstance(device, str):
        raise TypeError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {type(device).__name__}")
    match = re.fullmatch(r"(cpu|cuda)(?::(\d{1,4}))?", device.strip().lower())
    if not match or (match.group(1) == "cpu" and match.group(2) is not None):
        raise ValueError(f"device={device!r}: choose 'cpu', 'cuda' or 'cuda:N' (N from 0)")
    return -1 if match.group(1) == "cpu" else int(match.group(2) or 0)


def device_name(index: int) -> str:
    return "cpu" if index < 0 else f"cuda:{index}"


def present(index: int) -> int:
    """``index`` (from device_index) if this process can use that device, else
    DeviceError: checked before a model is fetched, which the loader would refuse later."""
    count = cuda_device_count()
    if index >= count:
        raise DeviceError(f"{device_name(index)}: this process sees {count} CUDA device{'' if count == 1 else 's'} "
                          "(a build without CUDA, or no GPU or driver, sees none); load with device='cpu'")
    return index


def cuda_device_count() -> int:
    """CUDA devices this process can use: 0 in a build without CUDA, or without a GPU
    or its driver (``CUDA_VISIBLE_DEVICES`` applies)."""
    return lib.pdn_cuda_device_count()


def cuda_devices() -> List[CudaDevice]:
    """Each usable CUDA device with its name and compute capability."""
    found = []
    name = ffi.new("char[]", 256)
    for index in range(cuda_device_count()):
        capability = lib.pdn_cuda_device_name(index, name, 256)
        if capability >= 0:
            found.append(CudaDevice(index, ffi.string(name).decode("utf-8", "replace"),
                                    f"{capability // 10}.{capability % 10}"))
    return found


def cuda_memory(index: int = 0) -> Tuple[int, int]:
    """(free, total) bytes of CUDA device ``index``, as the driver reports them."""
    free, total = ffi.new("unsigned long long *"), ffi.new("unsigned long long *")
    if lib.pdn_cuda_memory(index, free, total):
        raise DeviceError(f"cuda:{index}: no such CUDA device (this process sees {cuda_device_count()})")
    return free[0], total[0]


def cuda_versions() -> dict:
    """Versions in use now: the CUDA runtime loaded, the driver's CUDA and cuDNN
    (None where absent, e.g. no driver or a build without CUDA)."""
    runtime, driver, cudnn = ffi.new("int *"), ffi.new("int *"), ffi.new("int *")
    lib.pdn_cuda_versions(runtime, driver, cudnn)

    def cuda(v: int):
        return f"{v // 1000}.{v % 1000 // 10}" if v else None

    # cuDNN 9 numbers itself major * 10000 + minor * 100 + patch (8: * 1000 + * 100)
    c = cudnn[0]
    cudnn_version = None if not c else (f"{c // 10000}.{c % 10000 // 100}.{c % 100}" if c >= 90000
                                        else f"{c // 1000}.{c % 1000 // 100}.{c % 100}")
    return {"cuda_runtime": cuda(runtime[0]), "cuda_driver": cuda(driver[0]), "cudnn": cudnn_version}
