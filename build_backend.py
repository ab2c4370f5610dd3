"""PEP 517 backend: setuptools.build_meta plus our --config-settings keys.

``pip install . --config-settings darknet-src=/path`` (and the other keys below)
become the PYDARKNET_* environment variables that setup.py reads, so one set of
knobs serves pip, build front ends and plain environment variables alike.
"""

import os

import cuda_build
from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the hooks we do not wrap)

KNOBS = {
    "darknet-src": "PYDARKNET_DARKNET_SRC",
    "openmp": "PYDARKNET_OPENMP",
    "backend": "PYDARKNET_BACKEND",
    "gpu": "PYDARKNET_GPU",
    "cuda-arch": "PYDARKNET_CUDA_ARCH",
    "offline": "PYDARKNET_OFFLINE",
    "sanitize": "PYDARKNET_SANITIZE",
}


def _apply(config_settings, environ=os.environ):
    """Move our keys from config_settings into environ; return what setuptools gets."""
    rest = dict(config_settings or {})
    for key, variable in KNOBS.items():
        if key in rest:
            environ[variable] = str(rest.pop(key))
    return rest or None


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _setuptools.build_wheel(wheel_directory, _apply(config_settings), metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _setuptools.build_editable(wheel_directory, _apply(config_settings), metadata_directory)


def _gpu_requirements(config_settings):
    """A GPU build also needs NVIDIA's wheels for what CUDA_HOME (if set) lacks."""
    _apply(config_settings)
    gpu = os.environ.get("PYDARKNET_GPU", "0").strip().lower() not in ("", "0", "no", "false", "off")
    return cuda_build.requirements(cuda_build.cuda_home()) if gpu else []


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(_apply(config_settings)) + _gpu_requirements(config_settings)


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(_apply(config_settings)) + _gpu_requirements(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, _apply(config_settings))


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _setuptools.prepare_metadata_for_build_editable(metadata_directory, _apply(config_settings))
