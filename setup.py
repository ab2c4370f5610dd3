"""Build pydarknet: fetch and verify upstream Darknet, apply our patches, compile.

All work happens inside ``build_ext`` (nothing at import time). Knobs are environment
variables, or ``--config-settings`` keys that ``build_backend.py`` turns into them:

  PYDARKNET_DARKNET_SRC  darknet-src  upstream directory or tarball (offline builds)
  PYDARKNET_OPENMP       openmp       "auto" (default: on when the compiler links -fopenmp), 1, 0
  PYDARKNET_BACKEND      backend      CPU compute: "onednn" (default where its wheel exists), "openblas", "none"
  PYDARKNET_GPU          gpu          1: CUDA build; refused when nvcc/cuBLAS are missing
  PYDARKNET_CUDA_ARCH    cuda-arch    CUDA architectures, e.g. "75;80;90"
  PYDARKNET_SANITIZE     sanitize     1: AddressSanitizer + UndefinedBehaviorSanitizer (for fuzzing)
  PYDARKNET_OFFLINE      offline      1: skip the network channels
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cuda_build
from pydarknet.source import ffi_builder, inputs, patches, upstream
from setuptools import Extension, setup
from setuptools.errors import CompileError, LinkError
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"

# Upstream sources we compile: all of src/*.c except compare.c, as upstream's Makefile.
UPSTREAM_EXCLUDED = {"compare.c"}
# Installed with the package from the verified tree (cfgs, sample images, label lists).
INSTALLED_DATA = ("cfg/", "data/", "LICENSE")
# No -Ofast/-ffast-math: either would flip flush-to-zero for the whole Python process.
# -fno-wrapv undoes Python's own -fwrapv, which stops gcc from vectorising upstream's
# int-indexed loops (measured: yolov3-tiny forward 2.7 s with it, 0.8 s without).
# -fno-trapping-math (no FP traps: Python enables none) lets gcc vectorise loops with a
# select, like leaky activations; it changes no result, unlike -ffast-math.
# -fopenmp-simd honours `#pragma omp simd` (no runtime needed) in builds without OpenMP too.
OPTIMIZE = ["-O3", "-g0", "-fno-wrapv", "-fno-trapping-math", "-fopenmp-simd"]
# Hidden symbols: calls between upstream files must bind inside our module. Exported,
# a name like error() would resolve to glibc's error(3), loaded first, which exits.
VISIBILITY = ["-fvisibility=hidden"]
UPSTREAM_WARNINGS = ["-Wno-unused-result", "-Wno-unknown-pragmas"]
# PYDARKNET_SANITIZE=1: every C file of the extension under ASan + UBSan, stopping at the
# first report, with frames and line numbers kept (tools/fuzz.py says how to run it).
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
# ... and, where the compiler has it (clang), the coverage libFuzzer (atheris) reads.
FUZZER_COVERAGE = "-fsanitize=fuzzer-no-link"
# image.c holds upstream's stb_image 2.19 and stb_image_write, whose bit reading shifts
# signed ints and by out-of-range counts on corrupt files (UB compilers give the two's
# complement result; a wrong pixel value at worst). Those shifts alone are not reported
# there; ASan and the other UBSan checks stay on.
SANITIZE_PER_FILE = {"image.c": ["-fno-sanitize=shift"]}
# Our C, compiled into the extension beside the cffi source.
GLUE_SOURCES = ("glue.c", "network.c", "devices.c", "detection.c", "python_layers.c", "console.c",
                "checked_alloc.c")
# Included into every upstream source: quiet console, checked allocations.
FORCED_HEADERS = ("console.h", "checked_alloc.h")
# Our C compiled like upstream's sources (it uses their headers): darknet's error
# handling, the thread count and our CPU kernels (installed through layer.forward) in
# every build, and each compute backend's module in the builds that choose it.
UPSTREAM_SIDE_SOURCES = ("darknet_error.c", "backend/parallel.c", "backend/cpu.c", "backend/winograd.c",
                         *(f"upstream/{name}.c" for name in ("cfg_numbers", "cfg_sections", "cfg_checks",
                                                             "weights_io", "bn_folding", "cblas_gemm",
                                                             "diou_nms", "layer_free", "yolo_fork")))
BACKEND_SOURCES = {"onednn": ("backend/onednn_util.c", "backend/onednn_pool.c", "backend/onednn.c")}
# CPU backends: what each computes with (docs/cpu.md).
BACKENDS = ("onednn", "openblas", "none")
# oneDNN from PyPI: the library (a run-time dependency) and its headers (build time),
# CPU only and on GNU OpenMP, the runtime our own loops use. Wheels for Linux x86-64.
ONEDNN_DISTRIBUTIONS = ("onednn-cpu-gomp", "onednn-devel-cpu-gomp")
ONEDNN_PLATFORM = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")
# GPU builds: Turing to Hopper, plus PTX of the newest for later GPUs (cuda_build.py).
DEFAULT_CUDA_ARCH = "75;80;86;89;90"


def default_backend():
    """oneDNN where its wheel exists, OpenBLAS elsewhere."""
    return "onednn" if ONEDNN_PLATFORM else "openblas"


def find_openblas(backend):
    """The scipy_openblas32 module (a build requirement): the GEMM of both BLAS backends."""
    try:
        import scipy_openblas32
    except ImportError:
        raise SystemExit(f"PYDARKNET_BACKEND={backend} needs scipy-openblas32: pip install scipy-openblas32 "
                         "(or PYDARKNET_BACKEND=none for upstream's own GEMM)") from None
    return scipy_openblas32


def find_onednn():
    """oneDNN's headers, library and version from the installed wheels."""
    from importlib import metadata

    def located(distribution, suffix):
        for file in distribution.files or ():
            path = Path(distribution.locate_file(file)).resolve()
            if path.as_posix().endswith(suffix):
                return path
        raise metadata.PackageNotFoundError(f"{distribution.metadata['Name']}: no {suffix}")

    try:
        library, headers = (metadata.distribution(name) for name in ONEDNN_DISTRIBUTIONS)
        header = located(headers, "include/oneapi/dnnl/dnnl.h")
        shared = located(library, "lib/libdnnl.so.3")
    except metadata.PackageNotFoundError as exc:
        where = "" if ONEDNN_PLATFORM else f" (its wheels are for Linux x86-64; this is {sys.platform} {platform.machine()})"
        raise SystemExit(
            f"PYDARKNET_BACKEND=onednn needs oneDNN{where}: pip install "
            + " ".join(f"{name}==2023.2.0" for name in ONEDNN_DISTRIBUTIONS)
            + f" (pip's isolated build does this), or choose PYDARKNET_BACKEND=openblas [{exc}]") from None
    return types.SimpleNamespace(include=header.parents[2], library=shared, version=library.version)


def flag(name, default="0"):
    return os.environ.get(name, default).strip().lower() not in ("", "0", "no", "false", "off")


class BuildConfig:
    def __init__(self):
        self.openmp_choice = os.environ.get("PYDARKNET_OPENMP", "auto").strip().lower() or "auto"
        self.openmp = False  # decided by resolve_openmp(), which needs the compiler
        self.gpu = flag("PYDARKNET_GPU")
        self.cuda_arch = cuda_build.parse_architectures(os.environ.get("PYDARKNET_CUDA_ARCH", DEFAULT_CUDA_ARCH))
        self.sanitize = flag("PYDARKNET_SANITIZE")
        self.fuzzer_coverage = False  # decided by resolve_sanitize(), which needs the compiler
        self.backend = os.environ.get("PYDARKNET_BACKEND", "").strip().lower() or default_backend()
        if self.backend not in BACKENDS:
            raise SystemExit(f"PYDARKNET_BACKEND={self.backend}: choose one of {', '.join(BACKENDS)}")
        self.openblas = find_openblas(self.backend) if self.backend != "none" else None
        self.onednn = find_onednn() if self.backend == "onednn" else None
        self.cuda = cuda_build.locate() if self.gpu else None
        if self.cuda and self.sanitize:
            raise SystemExit("PYDARKNET_SANITIZE=1 builds the CPU code only: build without PYDARKNET_GPU")

    def resolve_openmp(self, compiler, temp):
        """OpenMP threads for the CPU loops: on when asked, or in "auto" when the
        compiler compiles and links a test program with -fopenmp."""
        if self.openmp_choice in ("0", "no", "false", "off"):
            return
        source = temp / "openmp_check.c"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("#include <omp.h>\nint check(void) { return omp_get_max_threads(); }\n")
        try:
            objects = compiler.compile([str(source)], output_dir=str(temp / "openmp_check"), extra_postargs=["-fopenmp"])
            compiler.link_shared_object(objects, str(temp / "openmp_check" / "check.so"), extra_postargs=["-fopenmp"])
            self.openmp = True
        except (CompileError, LinkError):
            if self.openmp_choice != "auto":
                raise SystemExit("PYDARKNET_OPENMP=1: the compiler cannot build with -fopenmp "
                                 "(install the OpenMP runtime, e.g. libgomp, or set PYDARKNET_OPENMP=0)") from None
            print("note: no OpenMP with this compiler; the CPU loops run on one thread", file=sys.stderr)

    def resolve_sanitize(self, compiler, temp):
        """A sanitizer build adds libFuzzer's coverage where the compiler takes it."""
        if not self.sanitize:
            return
        source = temp / "coverage_check.c"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("int check(int x) { return x ? 1 : 2; }\n")
        try:
            compiler.compile([str(source)], output_dir=str(temp / "coverage_check"), extra_postargs=[FUZZER_COVERAGE])
            self.fuzzer_coverage = True
        except CompileError:
            print("note: no libFuzzer coverage with this compiler (use clang): the fuzzer sees only Python code",
                  file=sys.stderr)

    @property
    def blas(self):
        return f"scipy-openblas32 {self.openblas.__version__}" if self.openblas else "none"

    def blas_flags(self):
        """Upstream sources: gemm() through cblas_sgemm, the library's prefixed symbol."""
        if not self.openblas:
            return []
        return ["-DDARKNET_CBLAS", "-Dcblas_sgemm=scipy_cblas_sgemm", f"-I{self.openblas.get_include_dir()}"]

    def upstream_side_sources(self):
        """Our C that is compiled with upstream's sources in this build."""
        return [CSRC / name for name in UPSTREAM_SIDE_SOURCES + BACKEND_SOURCES.get(self.backend, ())]

    def backend_flags(self):
        """Our backend sources and the glue that installs them."""
        return ["-DPDN_ONEDNN", f"-I{self.onednn.include}"] if self.onednn else []

    def glue_flags(self):
        """Our C glue: the BLAS library's thread functions, and OpenMP like upstream's sources."""
        blas = (["-DPDN_BLAS_SET_THREADS=scipy_openblas_set_num_threads",
                 "-DPDN_BLAS_GET_THREADS=scipy_openblas_get_num_threads", f"-I{self.openblas.get_include_dir()}"]
                if self.openblas else [])
        return blas + self.backend_flags() + self.openmp_flags() + self.cuda_flags() + self.sanitize_flags()

    def sanitize_flags(self):
        """Compile and link flags of a sanitizer build."""
        return SANITIZE + ([FUZZER_COVERAGE] if self.fuzzer_coverage else []) if self.sanitize else []

    def openmp_flags(self):
        """Compile and link flags of an OpenMP build."""
        return ["-fopenmp"] if self.openmp else []

    def cuda_flags(self):
        """C sources of a GPU build: upstream's GPU code paths and the CUDA headers."""
        if not self.cuda:
            return []
        return ["-DGPU", "-DCUDNN", *(f"-I{d}" for d in self.cuda.include_dirs())]

    def nvcc_command(self, tree):
        """nvcc for upstream's kernels: the host side compiled like upstream's C."""
        host = ["-fPIC", *VISIBILITY, "-O3"]
        return [str(self.cuda.nvcc), "-O3", "-std=c++17", "-DGPU", "-DCUDNN", f"-I{tree / 'include'}",
                f"-I{tree / 'src'}", f"-I{CSRC / 'upstream'}", *(f"-I{d}" for d in self.cuda.include_dirs()),
                *self.cuda.gencode(self.cuda_arch), "-Xcompiler", ",".join(host)]

    def upstream_flags(self, tree):
        flags = ["-std=gnu11", "-fPIC", *OPTIMIZE, *VISIBILITY, *UPSTREAM_WARNINGS,
                 *(f"-I{CSRC / folder}" for folder in ("override", "backend", "upstream")),
                 f"-I{tree / 'include'}", f"-I{tree / 'src'}",
                 *(arg for header in FORCED_HEADERS for arg in ("-include", str(CSRC / header)))]
        return flags + self.blas_flags() + self.openmp_flags() + self.cuda_flags() + self.sanitize_flags()

    def link_flags(self):
        flags = self.openmp_flags() + self.sanitize_flags()
        if self.openblas:
            # installed: the library of the scipy-openblas32 package beside pydarknet
            # (pydarknet imports that package first, which also covers a source checkout)
            flags += [f"-L{self.openblas.get_lib_dir()}", "-lscipy_openblas",
                      "-Wl,-rpath,$ORIGIN/../scipy_openblas32/lib"]
        if self.onednn:
            # installed: the wheel's lib/ is {prefix}/lib, three levels above site-packages/pydarknet
            # (pydarknet loads it by its path first when that fails, e.g. in a source checkout)
            flags += [str(self.onednn.library), "-Wl,-rpath,$ORIGIN/../../.."]
        if self.cuda:
            # by their versioned names (no driver library: the extension imports without a GPU);
            # found again through the run path, as the wheels install them beside pydarknet
            flags += [str(library) for library in self.cuda.libraries()]
            flags += [f"-Wl,-rpath,{path}" for path in self.cuda.run_paths()]
        return flags

    def features(self):
        return {"gpu": self.gpu, "openmp": self.openmp, "blas": self.blas, "backend": self.backend,
                "cuda": self.cuda.versions() if self.cuda else None,
                "onednn": self.onednn.version if self.onednn else None,
                "cuda_arch": self.cuda_arch if self.gpu else None,
                "sanitize": ("asan+ubsan+fuzzer-coverage" if self.fuzzer_coverage else "asan+ubsan")
                if self.sanitize else False}


class BuildDarknet(build_ext):
    """build_ext that first prepares the patched upstream tree and compiles it
    (in build_extensions, where the configured compiler exists)."""

    def build_extensions(self):
        config = BuildConfig()
        temp = Path(self.build_temp).resolve()
        config.resolve_openmp(self.compiler, temp)
        config.resolve_sanitize(self.compiler, temp)
        tree = temp / "darknet"
        stamp = patches.prepare_tree(tree, ROOT / "darknet_patches", work=temp / "upstream-download")
        objects = self.compile_upstream(config, tree, temp / "obj")
        ext = self.extensions[0]
        self.write_build_info(config, stamp, temp)
        binding_source = ffi_builder.write_source(CSRC / "pydarknet.h", temp / "_darknet_cffi.c")
        ext.sources = [str(binding_source), *(str(CSRC / name) for name in GLUE_SOURCES)]
        ext.include_dirs = [str(CSRC), str(CSRC / "upstream"), str(temp), str(tree / "include"), str(tree / "src")]
        ext.extra_objects = [str(o) for o in objects]
        # Relink whenever upstream objects or the build info change (cffi leaves its
        # generated source untouched when identical, so sources alone would not tell).
        ext.depends = ext.extra_objects + [str(temp / "pydarknet_build_info.h"), str(CSRC / "pydarknet.h"),
                                           str(CSRC / "glue.h")]
        ext.extra_compile_args = ["-std=gnu11", *OPTIMIZE, *VISIBILITY, "-Werror=incompatible-pointer-types",
                                  "-Werror=implicit-function-declaration", *config.glue_flags()]
        ext.extra_link_args = config.link_flags()
        # nvcc's host code needs the C++ runtime (as upstream's Makefile links -lstdc++)
        ext.libraries = ["m", "pthread"] + (["stdc++"] if config.cuda else [])
        super().build_extensions()
        built = Path(self.get_ext_fullpath("pydarknet._darknet"))
        trees = self.package_trees(tree)
        files = {"formats/caffe.desc": self.compile_caffe_schema(temp)}
        self.write_package_files(built.parent, trees, files)
        source_package = ROOT / "pydarknet"
        if built.parent.resolve() != source_package.resolve():
            # Python run from a checkout imports ./pydarknet before the installed copy, so
            # the same build goes there too, as --inplace would (all of it git-ignored).
            try:
                self.write_package_files(source_package, trees, files, extension=built)
            except OSError as exc:  # a read-only checkout still installs fine
                print(f"note: could not copy the build into {source_package}: {exc}", file=sys.stderr)

    def compile_upstream(self, config, tree, obj_dir):
        sources = sorted(p for p in (tree / "src").glob("*.c") if p.name not in UPSTREAM_EXCLUDED)
        sources += config.upstream_side_sources()
        flags = config.upstream_flags(tree) + config.backend_flags()

        def compile_one(source):
            extra = SANITIZE_PER_FILE.get(source.name, []) if config.sanitize else []
            return self.compiler.compile([str(source)], output_dir=str(obj_dir / source.stem),
                                         extra_postargs=flags + extra,
                                         depends=[str(CSRC / h) for h in FORCED_HEADERS])[0]

        kernels = sorted((tree / "src").glob("*.cu")) if config.cuda else []
        nvcc = config.nvcc_command(tree) if config.cuda else None
        headers = [*(tree / "include").glob("*.h"), *(tree / "src").glob("*.h")]

        def compile_kernels(source):
            target = obj_dir / source.stem / (source.name + ".o")
            newest_input = max(p.stat().st_mtime for p in [source, *headers])
            if not self.force and target.exists() and target.stat().st_mtime >= newest_input:
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run([*nvcc, "-c", str(source), "-o", str(target)], capture_output=True, text=True)
            if done.returncode != 0:
                raise CompileError(f"nvcc failed on {source.name}:\n{done.stderr or done.stdout}")
            return target

        obj_dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return list(pool.map(compile_one, sources)) + list(pool.map(compile_kernels, kernels))

    @staticmethod
    def compile_caffe_schema(temp):
        """pydarknet/formats/caffe.proto compiled by protoc (from grpcio-tools, a build
        requirement) into a FileDescriptorSet, which caffe_files.py loads with any
        protobuf runtime (generated _pb2 modules are tied to one protobuf version)."""
        try:
            import grpc_tools
            from grpc_tools import protoc
        except ImportError:
            raise SystemExit("building pydarknet needs grpcio-tools (protoc for pydarknet/formats/caffe.proto): "
                             "pip install grpcio-tools, or build with pip, which installs it") from None
        out = temp / "caffe.desc"
        args = ["protoc", f"-I{ROOT / 'pydarknet' / 'formats'}", f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
                f"--descriptor_set_out={out}", str(ROOT / "pydarknet" / "formats" / "caffe.proto")]
        if protoc.main(args) != 0:
            raise SystemExit("protoc could not compile pydarknet/formats/caffe.proto (see the messages above)")
        return out.read_bytes()

    def write_build_info(self, config, stamp, temp):
        cc = self.compiler.compiler_so[0] if getattr(self.compiler, "compiler_so", None) else "cc"
        try:
            cc_version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            cc_version = "unknown"
        info = {
            "version": self.distribution.get_version(),
            "upstream": {
                "commit": stamp["upstream_commit"],
                "channel": stamp["upstream_channel"],
                "manifest_sha256": stamp["upstream_manifest_sha256"],
                "verified": True,
            },
            "patches": [{"name": name, "sha256": digest} for name, digest in stamp["patches"]],
            "compiler": {
                "command": cc,
                "version": cc_version,
                "upstream_flags": [f for f in config.upstream_flags(Path("TREE")) if not f.startswith("-I")],
                "python_cflags": sysconfig.get_config_var("CFLAGS"),
            },
            "features": config.features(),
            "sources_sha256": inputs.digest(ROOT),  # checked as a checkout imports it (binding.py)
        }
        text = json.dumps(info, sort_keys=True)
        header = temp / "pydarknet_build_info.h"
        header.write_text(f"#define PDN_BUILD_INFO_JSON {json.dumps(text)}\n")

    @staticmethod
    def package_trees(tree):
        """Files installed beside the extension: upstream cfgs, samples and licence from
        the verified tree, and our patch series (for ``python -m pydarknet patches``)."""
        series = ROOT / "darknet_patches"
        return {
            "darknet_data": {p: d for p, d in upstream.read_directory(tree).items() if p.startswith(INSTALLED_DATA)},
            "darknet_patches": {p.name: p.read_bytes() for p in series.iterdir() if p.is_file()},
        }

    @staticmethod
    def write_package_files(package_dir, trees, files, extension=None):
        for name, contents in trees.items():
            upstream.write_tree(contents, package_dir / name)
        for name, data in files.items():
            staging = package_dir / (name + ".tmp")
            staging.write_bytes(data)
            os.replace(staging, package_dir / name)
        if extension is not None:
            staging = package_dir / (extension.name + ".tmp")
            shutil.copy2(extension, staging)
            os.replace(staging, package_dir / extension.name)


# Run-time dependencies of every build; a GPU build adds NVIDIA's wheels it linked.
DEPENDENCIES = ["cffi>=1.15", "numpy>=1.21", "protobuf>=4.21", "scipy-openblas32>=0.3.26", "tqdm>=4.60",
                "onednn-cpu-gomp==2023.2.0; sys_platform == 'linux' and platform_machine == 'x86_64'"]


def dependencies():
    return DEPENDENCIES + (cuda_build.run_requirements(cuda_build.cuda_home()) if flag("PYDARKNET_GPU") else [])


if __name__ == "__main__":
    setup(
        install_requires=dependencies(),
        ext_modules=[Extension("pydarknet._darknet", sources=[])],
        cmdclass={"build_ext": BuildDarknet},
    )
