"""High-level inference: ``detect``, ``detect_batch`` and ``classify``, and the
``Result`` of each decoded input that ``predict`` (stream.py) yields.

All numbers come from upstream's own C path through ``Network.detect_raw`` and
``Network.classify_raw``; this module turns them into typed results in the caller's
image coordinates.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import limits
from . import zoo
from ..runtime.devices import device_index, device_name, present
from ..runtime.drawing import annotation_targets
from ..runtime.images import Image, ImageSource, load_image
from ..runtime.network import Network
from ..runtime.results import Classification, Detection, Result

ModelSpec = Union[Network, str, Tuple]


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
    device = device_name(present(device_index("cpu" if device is None else device)))  # before any download
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


@dataclass
class Input:
    """One decoded image or video frame, or the error its decoding raised."""

    source: str
    frame: Optional[int]
    image: Optional[Image] = None
    error: Optional[BaseException] = None


def _failed(item: Input, detector: bool) -> Result:
    return Result(item.source, item.frame, 0, 0, detections=[] if detector else None,
                  classes=None if detector else [], error=str(item.error))


def detected(net: Network, items: Sequence[Input], thresh: float, hier_thresh: float, nms: float) -> List[Result]:
    """A Result per input: the detections of the decoded ones, found in one call (``batch``
    per forward pass), each image's ms its share of that call's time."""
    good = [item for item in items if item.error is None]
    start = time.perf_counter()
    found = iter(net.detect_raw([item.image for item in good], thresh, hier_thresh, nms))
    ms = (time.perf_counter() - start) * 1000 / max(len(good), 1)
    return [Result(item.source, item.frame, item.image.width, item.image.height,
                   detections=detections_of(net, item.image, next(found)), ms=ms, image=item.image)
            if item.error is None else _failed(item, True) for item in items]


def classified(net: Network, items: Sequence[Input], top: int) -> List[Result]:
    """A Result per input: the ``top`` classes of the decoded ones."""
    how = normalization(net)
    labels = net.labels
    results = []
    for item in items:
        if item.error is not None:
            results.append(_failed(item, False))
            continue
        start = time.perf_counter()
        scores = net.classify_raw(item.image)
        ms = (time.perf_counter() - start) * 1000
        probs = probabilities(scores, how)
        order = sorted(range(len(probs)), key=lambda i: -probs[i])[:top]
        results.append(Result(item.source, item.frame, item.image.width, item.image.height,
                              classes=[Classification(labels[i], float(probs[i]), float(scores[i]), how)
                                       for i in order], ms=ms, image=item.image))
    return results


def detect_batch(model: ModelSpec, images: Sequence[ImageSource], *, thresh: float = 0.5,
                 hier_thresh: float = 0.5, nms: float = 0.45, channel_order: str = "RGB",
                 annotate: Optional[Sequence[Optional[str]]] = None,
                 device: Optional[str] = None) -> List[List[Detection]]:
    """Detections for each of several images (sizes may differ), run ``batch`` at a time.

    ``annotate[i]``, a path without extension, receives image i with upstream's boxes
    and labels drawn, as JPEG (``path + ".jpg"``). ``device`` loads a zoo name or files
    on "cuda"/"cuda:N" (GPU builds; default "cpu")."""
    targets = annotation_targets(annotate, len(images))
    decoded = [load_image(image, channel_order) for image in images]  # a bad input fails before any download
    net = resolve_model(model, device)
    results = detected(net, [Input(f"<image {i}>", None, image) for i, image in enumerate(decoded)],
                       thresh, hier_thresh, nms)
    for result, target in zip(results, targets):
        if target is not None:
            result.save(target)
    return [result.detections for result in results]


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
    return classified(net, [Input("<image 0>", None, decoded)], top)[0].classes
