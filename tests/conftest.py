"""Shared fixtures. Tests run against the *installed* pydarknet (run pytest from the
repository root with the ``pytest`` command, as the README says)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from pydarknet.source import upstream

REPO = Path(__file__).resolve().parent.parent
SERIES = REPO / "darknet_patches"
sys.path.insert(0, str(REPO / "tools"))
from random_weights import write_random_weights  # noqa: E402  (re-exported for the tests)

try:
    pydarknet.build_info()
except ImportError as exc:  # e.g. `python -m pytest` puts the uncompiled sources first
    pytest.exit(f"{exc}\nRun the tests with the `pytest` command (see README).", returncode=2)

TINY_CFG = """\
[net]
batch=1
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=4
size=1
stride=1
pad=1
activation=linear

[connected]
output=5
batch_normalize=1
activation=linear

[softmax]
"""


@pytest.fixture
def tiny_cfg(tmp_path) -> Path:
    path = tmp_path / "tiny.cfg"
    path.write_text(TINY_CFG)
    return path


@pytest.fixture
def tiny_weights(tiny_cfg, tmp_path) -> Path:
    with pydarknet.Network(tiny_cfg) as net:
        return write_random_weights(net, tmp_path / "tiny.weights", seed=1)


@pytest.fixture(scope="session")
def official():
    """yolov3-tiny with its official weights (cached by the zoo)."""
    from pydarknet.runtime import zoo

    return pydarknet.upstream_path("cfg/yolov3-tiny.cfg"), zoo.weights_path("yolov3-tiny")


def write_model(tmp_path, text, seed=0, name="model"):
    """cfg ``text`` written to tmp_path and random weights for it."""
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(text)
    with pydarknet.Network(cfg) as net:
        return cfg, write_random_weights(net, tmp_path / f"{name}.weights", seed=seed)


@pytest.fixture(scope="session")
def yolo_cfg() -> Path:
    return pydarknet.upstream_path("cfg/yolov3-tiny.cfg")


@pytest.fixture(scope="session")
def yolo_weights(yolo_cfg, tmp_path_factory) -> Path:
    with pydarknet.Network(yolo_cfg) as net:
        return write_random_weights(net, tmp_path_factory.mktemp("yolo") / "yolov3-tiny.weights", seed=2)


@pytest.fixture(scope="session")
def pristine() -> dict:
    """The verified pristine upstream files (from the per-user cache the build filled)."""
    with tempfile.TemporaryDirectory() as work:
        files, _ = upstream.resolve(Path(work), lambda message: None)
    return files


def random_input(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)
