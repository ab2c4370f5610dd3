"""High-level inference: ``detect``, ``detect_batch`` and ``classify``.

All numbers come from upstream's own C path through ``Network.detect_raw`` and
``Network.classify_raw``; this module turns them into typed results in the caller's
image coordinates.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import limits
from . import zoo
from .devices import device_index, device_name
from .images import Image, ImageSource, load_image
from .network import Network

ModelSpec = Union[Network, str, Tuple]


@dataclass(frozen=True)
class Detection:
    """One labelled box, in pixels of the image you passed (not the network input).
    Boxes are not clipped to the image, exactly as upstream computes them.
    ``confidence`` (objectness times the class probability) and ``objectness`` are in
    [0, 1]: [yolo] and [region] layers make them so, and a [detection] layer (YOLOv1),
    whose objectness is a regression that can leave that range, has them clipped."""

    label: str
    class_id: int
    confidence: float
    x: float  # centre
    y: float
    w: float
    h: float
    objectness: float
    classes: int = field(default=0, compare=False, repr=False)  # of the model that found it (for colours)

    @property
    def x1(self) -> float:
        return self.x - self.w / 2

    @property
    def y1(self) -> float:
        return self.y - self.h / 2

    @property
    def x2(self) -> float:
        return self.x + self.w / 2

    @property
    def y2(self) -> float:
        return self.y + self.h / 2

    @property
    def box(self) -> Tuple[float, float, float, float]:
        """(x1, y1, x2, y2)"""
        return self.x1, self.y1, self.x2, self.y2

    def __str__(self) -> str:
        return (f"{self.label} {self.confidence:.1%} at ({self.x1:.0f}, {self.y1:.0f})-"
                f"({self.x2:.0f}, {self.y2:.0f})")

    def to_json(self) -> dict:
        """The record ``pydarknet detect --json`` and ``pydarknet.ray`` give: pixels, x/y
        the centre, confidence rounded to 6 digits."""
        return {"label": self.label, "class_id": self.class_id, "confidence": round(self.confidence, 6),
                "x": self.x, "y": self.y, "w": self.w, "h": self.h,
                "x1": self.x1, "y1": self.y1, "x2": self.x2, "y2": self.y2}


@dataclass(frozen=True)
class Classification:
    """One class of an image. ``probability`` is in [0, 1]: the network's own output
    where its last layer makes probabilities (softmax, logistic), else the softmax of
    its outputs, which pydarknet applies (``normalization`` says which: "network" or
    "softmax"). ``score`` is the network's own output for the class either way.
    Unpacks as ``label, probability``."""

    label: str
    probability: float
    score: float
    normalization: str

    def __iter__(self):
        return iter((self.label, self.probability))

    def to_json(self) -> dict:
        return {"label": self.label, "probability": self.probability, "score": self.score}


#: Last layers whose outputs are probabilities already: a softmax, or values through
#: the logistic function (a [logistic] layer, or any layer with activation=logistic).
PROBABILITY_LAYERS = ("softmax", "logistic")


def normalization(net: Network) -> str:
    """How ``classify`` turns ``net``'s outputs into probabilities: "network" where its
    last layer (before any [cost]) makes them, else "softmax"."""
    last = next((layer for layer in reversed(net.layers) if layer.type != "cost"), None)
    if last is not None and (last.type in PROBABILITY_LAYERS or last.activation == "logistic"):
        return "network"
    return "softmax"


def probabilities(scores: np.ndarray, how: str) -> np.ndarray:
    """Scores as probabilities by ``how`` (see ``normalization``), in float64."""
    scores = scores.astype(np.float64)
    if how == "network":
        return scores
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


_zoo_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _zoo_network(name: str, device: str, batch: int) -> Network:
    return zoo.load(name, device=device, batch=batch)


def resolve_model(model: ModelSpec, device: Optional[str] = None, batch: int = 1) -> Network:
    """A Network from a Network, a zoo name, or a (cfg, weights[, names]) tuple; the
    last two are loaded on ``device`` (default "cpu") for ``batch`` images per forward
    pass, a Network must be on it (and runs at its own batch)."""
    if isinstance(model, Network):
        if device is not None and device_name(device_index(device)) != model.device:
            raise ValueError(f"device={device!r}, but this Network runs on {model.device}: load it there "
                             "(Network(..., device=...)) or leave device out")
        return model
    device = device_name(device_index("cpu" if device is None else device))
    if isinstance(model, str):
        with _zoo_lock:
            return _zoo_network(model, device, batch)
    if isinstance(model, (tuple, list)) and 2 <= len(model) <= 3:
        cfg, weights, *names = model
        return Network(cfg, weights, names=names[0] if names else None, device=device, batch=batch)
    raise TypeError("model must be a Network, a zoo name (e.g. 'yolov3-tiny') "
                    "or a (cfg, weights, names) tuple")


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def detections_of(net: Network, image: Image, raw) -> List[Detection]:
    """``net``'s raw detections in ``image`` as Detections in its pixels, by confidence."""
    labels = net.labels
    found = [
        Detection(label=labels[d.class_id], class_id=d.class_id, confidence=_unit(d.prob),
                  x=d.x * image.width, y=d.y * image.height, w=d.w * image.width, h=d.h * image.height,
                  objectness=_unit(d.objectness), classes=net.classes)
        for d in raw
    ]
    return sorted(found, key=lambda d: -d.confidence)


def detect_batch(model: ModelSpec, images: Sequence[ImageSource], *, thresh: float = 0.5,
                 hier_thresh: float = 0.5, nms: float = 0.45, channel_order: str = "RGB",
                 annotate: Optional[Sequence[Optional[str]]] = None,
                 device: Optional[str] = None) -> List[List[Detection]]:
    """Detections for each of several images (sizes may differ), run ``batch`` at a time.

    ``annotate[i]``, a path without extension, receives image i with upstream's boxes
    and labels drawn, as JPEG (``path + ".jpg"``). ``device`` loads a zoo name or files
    on "cuda"/"cuda:N" (GPU builds; default "cpu")."""
    decoded = [load_image(image, channel_order) for image in images]  # a bad input fails before any download
    net = resolve_model(model, device)
    raw = net.detect_raw(decoded, thresh, hier_thresh, nms, annotate)
    return [detections_of(net, image, found) for image, found in zip(decoded, raw)]


def detect(model: ModelSpec, image: ImageSource, *, thresh: float = 0.5, hier_thresh: float = 0.5,
           nms: float = 0.45, channel_order: str = "RGB", device: Optional[str] = None) -> List[Detection]:
    """Objects in one image, as upstream's ``darknet detect`` finds them (letterbox,
    NMS-sort), sorted by confidence, boxes in the image's own pixels. A network whose
    .json states a preprocessing gets its images prepared that way."""
    return detect_batch(model, [image], thresh=thresh, hier_thresh=hier_thresh, nms=nms,
                        channel_order=channel_order, device=device)[0]


def classify(model: ModelSpec, image: ImageSource, *, top: int = 5,
             channel_order: str = "RGB", device: Optional[str] = None) -> List[Classification]:
    """The ``top`` classes of a classifier cfg, as upstream's ``darknet classifier predict``,
    with the image prepared as the network's ``preprocessing`` says (a converted model's
    .json: its channel order, mean and scale; else upstream's letterbox). A network that
    ends in raw scores (logits: most converted PyTorch models) has its outputs turned
    into probabilities by a softmax, as ``Classification.normalization`` says."""
    top = limits.positive_int(top, "top")
    decoded = load_image(image, channel_order)  # a bad input fails before any download
    net = resolve_model(model, device)
    scores = net.classify_raw(decoded)
    how = normalization(net)
    probs = probabilities(scores, how)
    labels = net.labels
    order = sorted(range(len(probs)), key=lambda i: -probs[i])[:top]
    return [Classification(labels[i], float(probs[i]), float(scores[i]), how) for i in order]
