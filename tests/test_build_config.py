"""Build knobs: what setup.py accepts, refuses, and how config-settings map to them."""

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO))
setup = pytest.importorskip("setup", reason="setup.py needs setuptools")
import build_backend  # noqa: E402
import cuda_build  # noqa: E402

FIND_ONEDNN = setup.find_onednn


@pytest.fixture
def clean_env(monkeypatch, onednn_wheels):
    for name in ("PYDARKNET_GPU", "PYDARKNET_BACKEND", "PYDARKNET_OPENMP", "PYDARKNET_CUDA_ARCH",
                 "PYDARKNET_SANITIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def onednn_wheels(monkeypatch, tmp_path):
    """oneDNN as the headers wheel would report it: that wheel is a build requirement,
    installed in pip's isolated build environment, not in the one the tests run in."""
    import types

    found = types.SimpleNamespace(include=tmp_path / "include", library=tmp_path / "lib" / "libdnnl.so.3",
                                  version="2023.2.0")
    monkeypatch.setattr(setup, "find_onednn", lambda: found)
    return found


def test_default_is_a_cpu_build_on_onednn_and_openblas_without_fast_math(clean_env, onednn_wheels, tmp_path):
    import scipy_openblas32  # a dependency of pydarknet, so installed here

    if not setup.ONEDNN_PLATFORM:
        pytest.skip("oneDNN's wheels are for Linux x86-64; elsewhere the default is openblas")
    config = setup.BuildConfig()  # OpenMP is decided with the compiler (tests below)
    assert config.features() == {"gpu": False, "openmp": False, "cuda": None, "cuda_arch": None, "sanitize": False,
                                 "backend": "onednn", "onednn": "2023.2.0",
                                 "blas": f"scipy-openblas32 {scipy_openblas32.__version__}"}
    flags = config.upstream_flags(tmp_path)
    assert "-O3" in flags and "-fno-wrapv" in flags and "-fvisibility=hidden" in flags
    assert not any("fast" in f for f in flags)
    assert "-DDARKNET_CBLAS" in flags and "-Dcblas_sgemm=scipy_cblas_sgemm" in flags
    assert [p.name for p in config.upstream_side_sources()][:4] == ["darknet_error.c", "parallel.c", "cpu.c",
                                                                  "winograd.c"]
    assert config.upstream_side_sources()[-1].name == "onednn.c"
    # every file of csrc/upstream/ (the code the patches call) is compiled
    assert {p.name for p in (setup.CSRC / "upstream").glob("*.c")} <= {p.name for p in config.upstream_side_sources()}
    assert {"-DPDN_ONEDNN", f"-I{onednn_wheels.include}"} <= set(config.glue_flags())
    link = config.link_flags()
    assert "-lscipy_openblas" in link and str(onednn_wheels.library) in link and "-Wl,-rpath,$ORIGIN/../../.." in link


def test_onednn_without_its_wheels_is_a_build_error(clean_env, monkeypatch):
    monkeypatch.setattr(setup, "find_onednn", FIND_ONEDNN)
    monkeypatch.setattr(setup, "ONEDNN_DISTRIBUTIONS", ("no-such-onednn-lib", "no-such-onednn-devel"))
    clean_env.setenv("PYDARKNET_BACKEND", "onednn")
    with pytest.raises(SystemExit, match="PYDARKNET_BACKEND=onednn needs oneDNN.*PYDARKNET_BACKEND=openblas"):
        setup.BuildConfig()


def test_backend_openblas_is_openblas_without_onednn(clean_env, tmp_path):
    clean_env.setenv("PYDARKNET_BACKEND", "openblas")
    config = setup.BuildConfig()
    assert config.features()["backend"] == "openblas" and config.features()["onednn"] is None
    assert "onednn.c" not in [p.name for p in config.upstream_side_sources()] and "-DPDN_ONEDNN" not in config.glue_flags()
    assert "-DDARKNET_CBLAS" in config.upstream_flags(tmp_path) and "-lscipy_openblas" in config.link_flags()


def test_sanitize_knob_instruments_upstream_glue_and_link(clean_env, tmp_path):
    clean_env.setenv("PYDARKNET_SANITIZE", "1")
    config = setup.BuildConfig()
    for flags in (config.upstream_flags(tmp_path), config.glue_flags(), config.link_flags()):
        assert "-fsanitize=address,undefined" in flags
    assert config.features()["sanitize"] == "asan+ubsan"
    environ = {}
    assert build_backend._apply({"sanitize": "1"}, environ) is None and environ == {"PYDARKNET_SANITIZE": "1"}


def test_backend_none_is_upstreams_gemm(clean_env, tmp_path):
    clean_env.setenv("PYDARKNET_BACKEND", "none")
    config = setup.BuildConfig()
    assert config.blas == "none" and "-DDARKNET_CBLAS" not in config.upstream_flags(tmp_path)
    assert config.link_flags() == [] and config.glue_flags() == []


def compiler():
    """The C compiler setuptools would build with."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)
    return cc


class NoOpenMPCompiler:
    """A compiler whose -fopenmp test program fails, as with a missing OpenMP runtime."""

    def compile(self, *args, **kwargs):
        raise setup.CompileError("omp.h: No such file or directory")


def test_openmp_is_on_by_default_where_the_compiler_has_it(clean_env, tmp_path):
    config = setup.BuildConfig()
    config.resolve_openmp(compiler(), tmp_path)
    assert config.features()["openmp"] is True
    assert "-fopenmp" in config.upstream_flags(tmp_path) and "-fopenmp" in config.link_flags()


def test_openmp_off_by_knob(clean_env, tmp_path):
    clean_env.setenv("PYDARKNET_OPENMP", "0")
    config = setup.BuildConfig()
    config.resolve_openmp(compiler(), tmp_path)
    assert config.features()["openmp"] is False and "-fopenmp" not in config.upstream_flags(tmp_path)


def test_openmp_missing_is_a_note_in_auto_and_an_error_when_asked(clean_env, tmp_path, capsys):
    config = setup.BuildConfig()
    config.resolve_openmp(NoOpenMPCompiler(), tmp_path)
    assert config.openmp is False and "no OpenMP" in capsys.readouterr().err
    clean_env.setenv("PYDARKNET_OPENMP", "1")
    with pytest.raises(SystemExit, match="PYDARKNET_OPENMP=1: the compiler cannot build with -fopenmp"):
        setup.BuildConfig().resolve_openmp(NoOpenMPCompiler(), tmp_path)


def no_wheels(monkeypatch):
    """NVIDIA's wheels as if not installed (the GPU build's own environment has them)."""
    import types

    parts = {name: types.SimpleNamespace(**{**vars(part), "wheel": f"no-such-{part.wheel}"})
             for name, part in cuda_build.PARTS.items()}
    monkeypatch.setattr(cuda_build, "PARTS", parts)


def fake_toolkit(root, parts):
    """A CUDA_HOME holding the marker files and libraries of ``parts``."""
    for name in parts:
        part = cuda_build.PARTS[name]
        for relative in part.files:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text("")
        if getattr(part, "library", None):
            (root / "lib64").mkdir(parents=True, exist_ok=True)
            (root / "lib64" / part.library).write_bytes(b"")
    return root


def test_gpu_without_cuda_is_a_build_error_naming_the_wheels(clean_env, tmp_path):
    no_wheels(clean_env)
    clean_env.setenv("PYDARKNET_GPU", "1")
    clean_env.setenv("CUDA_HOME", str(tmp_path / "no-cuda"))
    with pytest.raises(SystemExit, match="nvcc, cccl, cudart, cublas, curand, cudnn not found in CUDA_HOME=.*"
                                         "pip install no-such-nvidia-cuda-nvcc>=13,<14"):
        setup.BuildConfig()
    # the package's metadata is asked for before the build requirements are installed
    assert cuda_build.run_requirements() == ["no-such-nvidia-cuda-runtime>=13,<14", "no-such-nvidia-cublas>=13,<14",
                                             "no-such-nvidia-curand>=10,<11", "no-such-nvidia-cudnn-cu13>=9,<10"]


def test_gpu_build_requirements_are_the_wheels_cuda_home_lacks(clean_env, tmp_path):
    clean_env.setenv("PYDARKNET_GPU", "1")
    clean_env.delenv("CUDA_HOME", raising=False)
    wheels = build_backend._gpu_requirements({})
    assert wheels == ["nvidia-cuda-nvcc>=13,<14", "nvidia-cuda-cccl>=13,<14", "nvidia-cuda-runtime>=13,<14",
                      "nvidia-cublas>=13,<14", "nvidia-curand>=10,<11", "nvidia-cudnn-cu13>=9,<10"]
    clean_env.setenv("CUDA_HOME", str(fake_toolkit(tmp_path / "cuda", ["nvcc", "cccl", "cudart"])))
    assert build_backend._gpu_requirements({}) == wheels[3:]
    assert build_backend._gpu_requirements({"gpu": "0"}) == []


def test_gpu_build_from_a_toolkit_compiles_and_links_against_it(clean_env, tmp_path):
    no_wheels(clean_env)
    home = fake_toolkit(tmp_path / "cuda", cuda_build.PARTS)
    clean_env.setenv("PYDARKNET_GPU", "1")
    clean_env.setenv("CUDA_HOME", str(home))
    clean_env.setenv("PYDARKNET_CUDA_ARCH", "90;80")
    config = setup.BuildConfig()
    assert config.cuda_arch == [80, 90]
    assert {"-DGPU", "-DCUDNN", f"-I{home / 'include'}"} <= set(config.upstream_flags(tmp_path))
    assert "-DGPU" in config.glue_flags()
    link = config.link_flags()
    assert str(home / "lib64" / "libcudart.so.13") in link and str(home / "lib64" / "libcudnn.so.9") in link
    assert f"-Wl,-rpath,{home / 'lib64'}" in link and not any("libcuda.so" in f for f in link)  # no driver
    nvcc = config.nvcc_command(tmp_path)
    assert nvcc[0] == str(home / "bin" / "nvcc")
    assert nvcc[nvcc.index("-gencode") + 1] == "arch=compute_80,code=sm_80"
    assert "arch=compute_90,code=compute_90" in nvcc  # PTX of the newest for later GPUs
    assert cuda_build.run_requirements(home) == []  # the toolkit's libraries, not wheels
    (home / "include" / "cuda_runtime_api.h").write_text("#define CUDART_VERSION 13020\n")
    features = config.features()
    assert features["cuda_arch"] == [80, 90] and features["cuda"]["cuda_runtime"] == "13.2"
    assert features["cuda"]["source"]["cudnn"] == f"CUDA_HOME ({home})"


def test_cuda_architectures_must_be_compute_capabilities(clean_env):
    clean_env.setenv("PYDARKNET_GPU", "1")
    clean_env.setenv("PYDARKNET_CUDA_ARCH", "sm_90")
    with pytest.raises(SystemExit, match="PYDARKNET_CUDA_ARCH='sm_90': give compute capabilities"):
        setup.BuildConfig()


def test_unknown_backend_is_refused(clean_env):
    clean_env.setenv("PYDARKNET_BACKEND", "mkl")
    with pytest.raises(SystemExit, match="PYDARKNET_BACKEND=mkl: choose one of onednn, openblas, none"):
        setup.BuildConfig()


def test_config_settings_become_environment_knobs():
    environ = {}
    rest = build_backend._apply({"darknet-src": "/src.tar.gz", "openmp": "1", "backend": "openblas",
                                 "--build-option": "x"}, environ)
    assert rest == {"--build-option": "x"}
    assert environ == {"PYDARKNET_DARKNET_SRC": "/src.tar.gz", "PYDARKNET_OPENMP": "1", "PYDARKNET_BACKEND": "openblas"}
