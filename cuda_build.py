"""Where a PYDARKNET_GPU=1 build finds CUDA: nvcc, the headers and the libraries.

Each part comes from a system toolkit when ``CUDA_HOME`` is set and has it, else from
NVIDIA's wheels installed in the build environment (``build_backend.py`` adds them to
the build requirements, so a machine with only a GPU driver builds too). The
extension links the libraries by their versioned names and finds them again through
its run path: the wheels' folders relative to the installed package (the wheels are
then run-time dependencies), a toolkit's folders as they are.
"""

import os
import re
import subprocess
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

# Every part a GPU build needs: the wheel that holds it, files that tell it is there,
# and for libraries the file to link (its name is the soname the extension records).
PARTS = {
    "nvcc": SimpleNamespace(wheel="nvidia-cuda-nvcc", major=13, files=("bin/nvcc",)),
    "cccl": SimpleNamespace(wheel="nvidia-cuda-cccl", major=13, files=("include/cccl/nv/target",)),
    "cudart": SimpleNamespace(wheel="nvidia-cuda-runtime", major=13,
                              files=("include/cuda_runtime.h",), library="libcudart.so.13"),
    "cublas": SimpleNamespace(wheel="nvidia-cublas", major=13,
                              files=("include/cublas_v2.h",), library="libcublas.so.13"),
    "curand": SimpleNamespace(wheel="nvidia-curand", major=10,
                              files=("include/curand.h",), library="libcurand.so.10"),
    "cudnn": SimpleNamespace(wheel="nvidia-cudnn-cu13", major=9,
                             files=("include/cudnn.h",), library="libcudnn.so.9"),
}
# The parts the extension links, in link order.
LIBRARY_PARTS = ("cudart", "cublas", "curand", "cudnn")
# Where a toolkit keeps its libraries, by distribution habit.
TOOLKIT_LIBRARY_DIRS = ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib")


def cuda_home():
    home = os.environ.get("CUDA_HOME", "").strip()
    return Path(home) if home else None


def _in_toolkit(home, part):
    """The part's (root, library path) in the toolkit at home, or None."""
    if home is None or not all((home / f).exists() for f in part.files):
        return None
    library = None
    if getattr(part, "library", None):
        library = next((home / d / part.library for d in TOOLKIT_LIBRARY_DIRS if (home / d / part.library).exists()),
                       None)
        if library is None:
            return None
    return home, library


def _in_wheel(part):
    """The part's (root, library path, version) from its installed wheel, or None."""
    try:
        distribution = metadata.distribution(part.wheel)
    except metadata.PackageNotFoundError:
        return None
    root = library = None
    for file in distribution.files or ():
        posix = file.as_posix()
        if root is None and posix.endswith(part.files[0]):
            root = Path(distribution.locate_file(file)).resolve()
            for _ in Path(part.files[0]).parts:
                root = root.parent
        if getattr(part, "library", None) and posix.endswith("/" + part.library):
            library = Path(distribution.locate_file(file)).resolve()
    if root is None or (getattr(part, "library", None) and library is None):
        return None
    return root, library, distribution


def requirements(home=None):
    """The wheels a GPU build needs: those of the parts the toolkit at home lacks."""
    return [f"{part.wheel}>={part.major},<{part.major + 1}" for part in PARTS.values()
            if _in_toolkit(home, part) is None]


def run_requirements(home=None):
    """The wheels the installed package needs at run time: those of the libraries the
    toolkit at home lacks, at least the release the build found installed (before the
    build requirements are installed, any of the same major version)."""
    wanted = []
    for name in LIBRARY_PARTS:
        part = PARTS[name]
        if _in_toolkit(home, part) is not None:
            continue
        found = _in_wheel(part)
        release = ".".join(found[2].version.split(".")[:2]) if found else str(part.major)
        wanted.append(f"{part.wheel}>={release},<{part.major + 1}")
    return wanted


def locate():
    """Every part, or SystemExit naming what is missing and how to get it."""
    home = cuda_home()
    found, missing = {}, []
    for name, part in PARTS.items():
        in_toolkit = _in_toolkit(home, part)
        in_wheel = None if in_toolkit else _in_wheel(part)
        if in_toolkit:
            found[name] = SimpleNamespace(root=in_toolkit[0], library=in_toolkit[1], wheel=None)
        elif in_wheel:
            found[name] = SimpleNamespace(root=in_wheel[0], library=in_wheel[1], wheel=in_wheel[2])
        else:
            missing.append(name)
    if missing:
        where = f"in CUDA_HOME={home} or " if home else ""
        raise SystemExit(
            f"PYDARKNET_GPU=1: {', '.join(missing)} not found {where}among the installed NVIDIA wheels. "
            "pip's isolated build installs the wheels itself (pip install . with PYDARKNET_GPU=1); "
            "for --no-build-isolation: pip install " + " ".join(requirements(home)))
    return Toolkit(found)


def _define(header, name):
    """The number a header #defines as name, or None."""
    try:
        match = re.search(rf"#define\s+{name}\s+(\d+)", header.read_text(errors="replace"))
    except OSError:
        return None
    return int(match.group(1)) if match else None


class Toolkit:
    """The located parts, and what the build does with them."""

    def __init__(self, parts):
        self.parts = parts
        self.nvcc = parts["nvcc"].root / "bin" / "nvcc"

    def include_dirs(self):
        dirs = []
        for name in LIBRARY_PARTS:
            include = self.parts[name].root / "include"
            if include not in dirs:
                dirs.append(include)
        return dirs

    def libraries(self):
        return [self.parts[name].library for name in LIBRARY_PARTS]

    def run_paths(self, site_packages_relative="$ORIGIN/.."):
        """Run-path entries: a wheel's folder relative to the installed package (both in
        site-packages), a toolkit's folder as it is."""
        paths = []
        for name in LIBRARY_PARTS:
            part = self.parts[name]
            if part.wheel is not None:
                site = Path(part.wheel.locate_file("")).resolve()
                path = f"{site_packages_relative}/{part.library.parent.relative_to(site).as_posix()}"
            else:
                path = str(part.library.parent)
            if path not in paths:
                paths.append(path)
        return paths

    def versions(self):
        """CUDA runtime and cuDNN versions of the headers built against."""
        cudart = _define(self.parts["cudart"].root / "include" / "cuda_runtime_api.h", "CUDART_VERSION")
        cudnn_header = self.parts["cudnn"].root / "include" / "cudnn_version.h"
        cudnn = [_define(cudnn_header, f"CUDNN_{part}") for part in ("MAJOR", "MINOR", "PATCHLEVEL")]
        try:
            nvcc = subprocess.run([str(self.nvcc), "--version"], capture_output=True, text=True).stdout
        except OSError:
            nvcc = ""
        release = re.search(r"release ([\d.]+)", nvcc)
        return {
            "cuda_runtime": f"{cudart // 1000}.{cudart % 1000 // 10}" if cudart else None,
            "cudnn": ".".join(str(v) for v in cudnn) if None not in cudnn else None,
            "nvcc": release.group(1) if release else None,
            "source": {name: "wheel" if part.wheel is not None else f"CUDA_HOME ({part.root})"
                       for name, part in self.parts.items()},
        }

    def gencode(self, architectures):
        """nvcc flags: machine code for each architecture, and PTX of the newest, which
        later GPUs compile when the extension loads."""
        flags = []
        for arch in architectures:
            flags += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
        newest = max(architectures)
        return flags + ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]


def parse_architectures(text):
    """'75;80;90' (or commas, or spaces) as sorted ints; SystemExit on anything else."""
    items = [a for a in re.split(r"[;,\s]+", text.strip()) if a]
    if not items or not all(re.fullmatch(r"\d{2,3}", a) for a in items):
        raise SystemExit(f"PYDARKNET_CUDA_ARCH={text!r}: give compute capabilities such as '75;80;90'")
    return sorted({int(a) for a in items})
