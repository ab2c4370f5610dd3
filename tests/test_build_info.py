"""What the installed build says about itself matches this checkout."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from pydarknet.source import inputs, patches, upstream

from conftest import REPO, SERIES, random_input


def test_upstream_is_the_verified_pin():
    info = pydarknet.build_info()["upstream"]
    assert info["commit"] == "61c9d02ec461e30d55762ec7669d6a1d3c356fb2"
    assert info["verified"] is True
    assert info["manifest_sha256"] == upstream.manifest_hash()
    assert info["channel"].split(":")[0] in ("user", "cache", "github", "apt")


def test_applied_patches_are_this_checkouts_series():
    built = [(p["name"], p["sha256"]) for p in pydarknet.build_info()["patches"]]
    expected = [(name, hashlib.sha256((SERIES / name).read_bytes()).hexdigest())
                for name in patches.series_names(SERIES)]
    assert built == expected


def test_no_fast_math_and_features_reported():
    info = pydarknet.build_info()
    flags = info["compiler"]["upstream_flags"]
    assert not any(f in ("-Ofast", "-ffast-math", "-funsafe-math-optimizations") for f in flags)
    features = info["features"]
    if features["gpu"]:  # a PYDARKNET_GPU=1 build: what it was compiled for
        assert features["cuda"]["cuda_runtime"] and features["cuda"]["cudnn"] and features["cuda_arch"]
    else:
        assert features["cuda"] is None and features["cuda_arch"] is None
    assert info["features"]["blas"].startswith("scipy-openblas32 ")  # the default build
    assert isinstance(info["features"]["openmp"], bool)


def test_thread_count(monkeypatch):
    import subprocess
    import sys

    before = pydarknet.get_num_threads()
    assert before >= 1
    try:
        pydarknet.set_num_threads(1)
        assert pydarknet.get_num_threads() == 1
    finally:
        pydarknet.set_num_threads(before)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            pydarknet.set_num_threads(bad)
    code = "import pydarknet; print(pydarknet.get_num_threads())"
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYDARKNET_NUM_THREADS": "1"},
                         capture_output=True, text=True, cwd="/")
    assert run.stdout.strip() == "1", run.stderr
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYDARKNET_NUM_THREADS": "many"},
                         capture_output=True, text=True, cwd="/")
    assert run.returncode != 0 and "PYDARKNET_NUM_THREADS='many'" in run.stderr


def test_loading_and_running_leaves_denormals_alone(tiny_cfg):
    # crtfastmath (linked by -Ofast) would set flush-to-zero for the whole process.
    with pydarknet.Network(tiny_cfg) as net:
        net.predict(random_input(net.input_shape))
    tiny = np.float32(1e-38) / np.float32(100)
    assert tiny > 0 and tiny < np.finfo(np.float32).tiny


def test_a_checkout_whose_c_moved_on_is_told_to_rebuild(tmp_path):
    """The extension records the digest of csrc/ and darknet_patches/ it was built from;
    a checkout that changed them since imports with a clear error, not yesterday's C."""
    assert pydarknet.build_info()["sources_sha256"] == inputs.digest(REPO)
    checkout = tmp_path / "checkout"
    shutil.copytree(Path(pydarknet.__file__).resolve().parent, checkout / "pydarknet",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in inputs.FOLDERS:
        shutil.copytree(REPO / folder, checkout / folder)
    (checkout / "setup.py").write_text("")
    load = [sys.executable, "-c", "import pydarknet; pydarknet.get_num_threads(); print('loaded')"]
    fresh = subprocess.run(load, cwd=checkout, capture_output=True, text=True)
    assert fresh.returncode == 0 and fresh.stdout.strip() == "loaded", fresh.stderr
    with open(checkout / "csrc" / "glue.c", "a") as glue:
        glue.write("/* edited after the build */\n")
    stale = subprocess.run(load, cwd=checkout, capture_output=True, text=True)
    assert stale.returncode == 1
    assert "was built from other sources than this checkout's csrc/ and darknet_patches/: rebuild it with " \
           "'pip install .'" in stale.stderr
