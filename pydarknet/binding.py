"""The binding: the compiled extension, loaded once for every module (``from ..binding
import ffi, lib``), and the conversion of the C side's errors into exceptions. The
error codes and fold targets are the C headers' own constants, compiled in through
cffi (source/ffi_builder.py)."""

import json
import threading
from pathlib import Path

from . import cpus, errors
from .source import inputs

# Libraries the extension may link from wheels, with the wheel of each, in an order
# that loads each one's own needs first. Installed, the extension's run path finds
# them beside pydarknet; a build inside a source checkout has no such neighbours.
WHEEL_LIBRARIES = (
    ("libdnnl.so.3", "onednn-cpu-gomp"),
    ("libcudart.so.13", "nvidia-cuda-runtime"),
    ("libcublasLt.so.13", "nvidia-cublas"),
    ("libcublas.so.13", "nvidia-cublas"),
    ("libcurand.so.10", "nvidia-curand"),
    ("libcudnn.so.9", "nvidia-cudnn-cu13"),
)


def _load_wheel_libraries() -> list:
    """Load, by their paths, the libraries above whose wheels are installed; returns
    the names of those missing."""
    import ctypes
    from importlib import metadata

    missing = []
    for name, wheel in WHEEL_LIBRARIES:
        try:
            files = metadata.distribution(wheel).files or ()
        except metadata.PackageNotFoundError:
            missing.append(f"{name} ({wheel})")
            continue
        for file in files:
            if file.name == name:
                ctypes.CDLL(str(file.locate()), mode=ctypes.RTLD_GLOBAL)
                break
    return missing


def _import():
    try:
        from . import _darknet
    except ImportError as exc:
        if "__asan" in str(exc) or "__ubsan" in str(exc):
            raise ImportError("pydarknet was built with PYDARKNET_SANITIZE=1: run Python with the sanitizer "
                              "runtime preloaded (LD_PRELOAD, see tools/fuzz.py)") from exc
        needed = [name for name, _ in WHEEL_LIBRARIES if name in str(exc)]
        if not needed:
            raise ImportError(
                "pydarknet's compiled extension is missing. Install the package with "
                "'pip install .' and run Python (and pytest) from outside the source folder, "
                "so that the installed package is imported rather than the sources."
            ) from exc
        missing = _load_wheel_libraries()
        try:
            from . import _darknet
        except ImportError as again:
            raise ImportError(f"pydarknet's extension needs libraries that are not installed: {again}. "
                              f"Not found: {', '.join(missing) or 'none of the known wheels'}; pip install "
                              "the wheels named (a GPU build needs NVIDIA's CUDA 13 wheels)") from again
    return _darknet


def _check_sources(built_info: str) -> None:
    """In a source checkout, the extension must have been built from its csrc/ and
    darknet_patches/ as they are now: else the Python of today runs yesterday's C."""
    root = Path(__file__).resolve().parent.parent
    if not inputs.is_checkout(root):
        return  # an installed package: built from the sources it was installed with
    if json.loads(built_info).get("sources_sha256") != inputs.digest(root):
        raise ImportError(f"pydarknet's compiled extension in {Path(__file__).parent} was built from other sources "
                          f"than this checkout's csrc/ and darknet_patches/: rebuild it with 'pip install .' "
                          f"in {root}")


with cpus.openmp_environment():  # the OpenMP runtime reads its wait policy as it loads
    _darknet = _import()
ffi, lib = _darknet.ffi, _darknet.lib
_check_sources(ffi.string(lib.pdn_build_info()).decode())
threads_source = cpus.set_default_threads(lib.pdn_set_num_threads)  # what set_num_threads() may then change

# darknet_error_code (include/darknet.h, patches recoverable-errors and recoverable-cuda-errors) -> exception class
_ERRORS = {lib.DARKNET_ERR_FILE: errors.FileError, lib.DARKNET_ERR_CFG: errors.CfgError,
           lib.DARKNET_ERR_WEIGHTS: errors.WeightsError, lib.DARKNET_ERR_IMAGE: errors.ImageError,
           lib.DARKNET_ERR_MEMORY: errors.OutOfMemoryError, lib.DARKNET_ERR_INTERNAL: errors.InternalError,
           lib.DARKNET_ERR_DEVICE: errors.DeviceError}
# bn_denominator (patch bn-free-weights): the runtimes a Darknet fold can be made for
FOLD_TARGETS = {"cpu": lib.BN_DENOMINATOR_CPU, "gpu": lib.BN_DENOMINATOR_GPU}

_pending = threading.local()


def keep_exception(exc: BaseException) -> None:
    """Keep what a Python callback raised inside a C call on this thread: the C side
    reports only that it failed, and error() gives this exception back."""
    _pending.exception = exc


def error(err) -> Exception:
    """The exception for a filled ``pdn_error`` (see csrc/pydarknet.h); if a Python
    layer raised during the call, that exception itself, with Darknet's account added
    as a note."""
    darknet_error = _ERRORS.get(err.code, errors.InternalError)(
        ffi.string(err.message).decode("utf-8", "replace"),
        file=ffi.string(err.file).decode("utf-8", "replace"),
        section=err.section,
        line=err.line,
    )
    raised, _pending.exception = getattr(_pending, "exception", None), None
    if raised is None:
        return darknet_error
    if hasattr(raised, "add_note"):  # Python 3.11+
        raised.add_note(f"(in Darknet: {darknet_error})")
    return raised
