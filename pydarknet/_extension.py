"""The compiled extension, loaded once for every module: ``from ._extension import ffi, lib``."""

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


_darknet = _import()
ffi, lib = _darknet.ffi, _darknet.lib
