"""The cfgs of AlexeyAB's fork (yolov4, scaled-YOLOv4, yolov7): route groups, scale_x_y,
new_coords, mish and swish (the fork's patches, route-groups to mish-swish-activations), checked against OpenCV DNN 4.x, which runs
them all. yolov4-tiny with its official weights; the others (copies in tests/cfgs/, see
ORIGIN.md) with random, well-scaled weights at a small input size."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from conftest import write_random_weights
from pydarknet.api import zoo
from pydarknet.runtime import samples

cv2 = pytest.importorskip("cv2")

CFGS = Path(__file__).resolve().parent / "cfgs"
# OpenCV DNN's name for layer k's output: its activation (named k + 1), else its BN, else the conv
ACTIVATIONS = ("logistic", "leaky", "mish", "swish", "relu", "tanh")


def opencv_output(net, names, k: int) -> np.ndarray:
    for name in [f"{a}_{k + 1}" for a in ACTIVATIONS] + [f"bn_{k}", f"conv_{k}"]:
        if name in names:
            return net.forward(name)
    raise KeyError(f"no OpenCV layer for darknet layer {k}")


def head_differences(cfg: Path, weights: Path, x: np.ndarray, backend=None):
    """Per [yolo] head: the largest difference between pydarknet's and OpenCV's input to
    it, as a fraction of OpenCV's range."""
    net = pydarknet.Network(cfg, weights, batch=len(x), backend=backend)
    assert net.warnings == [] or all("nms_kind" in w for w in net.warnings), net.warnings
    ours = net.layer_outputs(x)
    reference = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    reference.setInput(x)
    names = set(reference.getLayerNames())
    found = {}
    for layer in net.layers:
        if layer.type == "yolo":
            expected = opencv_output(reference, names, layer.index - 1)
            got = ours[layer.index - 1]
            found[layer.index] = float(np.abs(got - expected).max() / (expected.max() - expected.min()))
    net.close()
    return found


def image_blob(name: str, size: int) -> np.ndarray:
    """A sample image as OpenCV's users feed it: resized, RGB, 0..1, NCHW."""
    return cv2.dnn.blobFromImage(cv2.imread(str(samples.path(name))), 1 / 255, (size, size), swapRB=True)


@pytest.fixture(scope="module")
def yolov4_tiny():
    model = zoo.get("yolov4-tiny")
    return model.cfg_path(), zoo.weights_path("yolov4-tiny")


@pytest.mark.parametrize("backend", ["upstream", None])
def test_yolov4_tiny_official_weights_match_opencv(yolov4_tiny, backend):
    for image in ("dog.jpg", "person.jpg", "horses.jpg"):
        for head, difference in head_differences(*yolov4_tiny, image_blob(image, 416), backend).items():
            # float32 sums in another order than OpenCV's: up to 7e-6 of the range measured
            assert difference <= 1e-4, f"{image}, [yolo] layer {head}: {difference:.2e} of the range"


def opencv_detections(cfg, weights, image, thresh, size=(416, 416)):
    """OpenCV's decoded yolo rows above thresh: (class, confidence, box in pixels of an
    image of ``size``)."""
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255, (416, 416), swapRB=True))
    scale = np.array([size[0], size[1], size[0], size[1]], dtype=np.float64)
    found = []
    for row in np.concatenate(net.forward(net.getUnconnectedOutLayersNames())):
        cls = int(np.argmax(row[5:]))
        if row[5 + cls] > thresh:
            x, y, w, h = (float(v) for v in row[:4])
            found.append((cls, float(row[5 + cls]), tuple(scale * (x - w / 2, y - h / 2, x + w / 2, y + h / 2))))
    return found


def test_yolov4_tiny_detections_are_opencvs(yolov4_tiny):
    """On a 416x416 image (no letterboxing on either side) every detection of
    pydarknet.detect() is one of OpenCV's rows: class, confidence and box."""
    net = pydarknet.Network(*yolov4_tiny, names=pydarknet.upstream_path("data/coco.names"))
    for name in ("dog.jpg", "person.jpg", "horses.jpg", "eagle.jpg"):
        image = cv2.resize(cv2.imread(str(samples.path(name))), (416, 416), interpolation=cv2.INTER_AREA)
        ours = pydarknet.detect(net, image[:, :, ::-1].copy())
        theirs = opencv_detections(*yolov4_tiny, image, 0.5)
        assert ours, name
        for d in ours:
            match = [t for t in theirs if t[0] == d.class_id and abs(t[1] - d.confidence) < 1e-4
                     and np.allclose(t[2], d.box, atol=0.05)]
            assert match, f"{name}: {d} is not among OpenCV's rows"


def test_letter_box_0_resizes_as_opencvs_users_do(yolov4_tiny, tmp_path):
    """[net] letter_box=0 (patch letter-box): the image is resized, not letterboxed, and the
    boxes map back to it; OpenCV's blobFromImage resizes the same way (with its own
    resampling: confidences agree to 0.05, boxes to 4 pixels). Letterboxed, the
    boxes of this 768x576 image land elsewhere."""
    cfg = tmp_path / "resize.cfg"
    cfg.write_text(yolov4_tiny[0].read_text().replace("[net]\n", "[net]\nletter_box=0\n", 1))
    image = cv2.imread(str(samples.path("dog.jpg")))
    height, width = image.shape[:2]
    theirs = opencv_detections(cfg, yolov4_tiny[1], image, 0.3, size=(width, height))
    ours = pydarknet.detect((cfg, yolov4_tiny[1]), image[:, :, ::-1].copy())
    assert ours
    for d in ours:
        assert [t for t in theirs if t[0] == d.class_id and abs(t[1] - d.confidence) < 0.05
                and np.allclose(t[2], d.box, atol=4)], f"{d} is not among OpenCV's rows"
    letterboxed = pydarknet.detect((yolov4_tiny[0], yolov4_tiny[1]), image[:, :, ::-1].copy())
    assert max(abs(a - b) for a, b in zip(letterboxed[0].box, ours[0].box)) > 4


def test_nms_kind_is_read(yolov4_tiny, tmp_path):
    """nms_kind (patch diou-nms): greedynms and diounms load, anything else is a cfg error."""
    text = yolov4_tiny[0].read_text()
    for kind in ("diounms", "cornersnms"):
        (tmp_path / f"{kind}.cfg").write_text(text.replace("nms_kind=greedynms", f"nms_kind={kind}"))
        assert pydarknet.Network(tmp_path / f"{kind}.cfg").warnings == []
    (tmp_path / "bad.cfg").write_text(text.replace("nms_kind=greedynms", "nms_kind=softnms"))
    with pytest.raises(pydarknet.CfgError, match="nms_kind=softnms: choose greedynms, diounms or cornersnms"):
        pydarknet.Network(tmp_path / "bad.cfg")


# yolov4-tiny's training keys are known: nothing unread remains
def test_yolov4_tiny_loads_without_warnings(yolov4_tiny):
    assert pydarknet.Network(yolov4_tiny[0]).warnings == []


def test_a_weights_error_names_the_keys_nothing_read(tmp_path, yolov4_tiny):
    """What a user of a fork's cfg meets first: the weights do not fit because a key
    changed the layers; the error says which keys went unread."""
    cfg = tmp_path / "fork.cfg"
    cfg.write_text(yolov4_tiny[0].read_text().replace("group_id=1", "group_id=1\nsplit_mode=2"))
    with pytest.raises(pydarknet.FileError) as raised:
        pydarknet.Network(cfg, tmp_path / "none.weights")
    assert "split_mode" not in str(raised.value)  # a missing file is not a fit problem
    truncated = tmp_path / "short.weights"
    truncated.write_bytes(yolov4_tiny[1].read_bytes()[:1000])
    with pytest.raises(pydarknet.WeightsError, match="unused key 'split_mode'"):
        pydarknet.Network(cfg, truncated)


def small(cfg: Path, size: int, tmp_path: Path) -> Path:
    """The cfg with its input set to size x size (the layers are the same)."""
    text = re.sub(r"(?m)^(width|height)\s*=\s*\d+", lambda m: f"{m.group(1)}={size}", cfg.read_text())
    out = tmp_path / cfg.name
    out.write_text(text)
    return out


@pytest.mark.parametrize("name", ["yolov4", "yolov4-csp", "yolov4x-mish", "yolov4-csp-swish", "yolov7-tiny",
                                  "yolov7", "yolov4-tiny-3l"])
def test_fork_cfgs_match_opencv_with_random_weights(tmp_path, name):
    cfg = small(CFGS / f"{name}.cfg", 160, tmp_path)
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / f"{name}.weights", seed=7, gain=0.7)  # O(1) activations
    x = np.random.default_rng(8).random((1, 3, 160, 160), dtype=np.float32)
    differences = head_differences(cfg, weights, x)
    assert len(differences) == 3 and max(differences.values()) <= 1e-3, differences
