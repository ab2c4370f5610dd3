"""The compiled extension, loaded once for every module: ``from ._extension import ffi, lib``."""


def _load_onednn() -> bool:
    """Load the oneDNN library of the onednn-cpu-gomp wheel by its path, for an extension
    whose run path does not lead there (a build inside a source checkout)."""
    import ctypes
    from importlib import metadata

    try:
        files = metadata.distribution("onednn-cpu-gomp").files or ()
    except metadata.PackageNotFoundError:
        return False
    for file in files:
        if file.name == "libdnnl.so.3":
            ctypes.CDLL(str(file.locate()), mode=ctypes.RTLD_GLOBAL)
            return True
    return False


def _import():
    try:
        from . import _darknet
    except ImportError as exc:
        if "__asan" in str(exc) or "__ubsan" in str(exc):
            raise ImportError("pydarknet was built with PYDARKNET_SANITIZE=1: run Python with the sanitizer "
                              "runtime preloaded (LD_PRELOAD, see tools/fuzz.py)") from exc
        if "libdnnl" not in str(exc):
            raise ImportError(
                "pydarknet's compiled extension is missing. Install the package with "
                "'pip install .' and run Python (and pytest) from outside the source folder, "
                "so that the installed package is imported rather than the sources."
            ) from exc
        if not _load_onednn():
            raise ImportError("pydarknet was built with oneDNN (PYDARKNET_BACKEND=onednn) but its library is "
                              "not installed: pip install onednn-cpu-gomp==2023.2.0") from exc
        from . import _darknet
    return _darknet


_darknet = _import()
ffi, lib = _darknet.ffi, _darknet.lib
