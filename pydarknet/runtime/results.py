"""What a model finds, as typed objects: a ``Detection`` (one labelled box), a
``Classification`` (one class of an image) and the ``Result`` of one image or video
frame that ``pydarknet.predict`` yields for every source (ultralytics' ``Results``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..errors import printable
from .images import Image


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


@dataclass(frozen=True)
class Result:
    """What a model found in one image or video frame: ``source`` (its file, URL,
    camera or ``<image N>``), ``frame`` (the index in a video, None for images),
    ``width`` x ``height`` pixels, ``detections`` (a detector's, by confidence) or
    ``classes`` (a classifier's top classes; the other one is None), ``ms`` (the
    milliseconds the network took for it: preparing the image, the forward pass and,
    for detectors, boxes and NMS; a batch's time is shared by its images) and ``error``
    (why an input failed: then nothing was found and width, height and ms are 0).
    ``image`` is the decoded image, kept for ``draw`` and ``save``."""

    source: str
    frame: Optional[int]
    width: int
    height: int
    detections: Optional[List[Detection]] = None
    classes: Optional[List[Classification]] = None
    ms: float = 0.0
    error: Optional[str] = None
    image: Optional[Image] = field(default=None, repr=False, compare=False)

    def _drawn(self, labels: str) -> Image:
        from .drawing import drawn

        if self.error is not None:
            raise ValueError(f"{printable(self.source)} failed ({self.error}): there is nothing to draw")
        if self.detections is None:
            raise ValueError("a classifier's result has no boxes to draw")
        if self.image is None:
            raise ValueError("this Result keeps no image: draw its detections with pydarknet.draw(image, ...)")
        return drawn(self.image, self.detections, labels=labels)

    def draw(self, labels: str = "name", channel_order: str = "RGB") -> np.ndarray:
        """The image with the detections drawn as upstream draws them, labelled by class
        name ("name"), name and confidence ("conf") or not at all ("none"): a height x
        width x 3 uint8 array in ``channel_order``."""
        from .drawing import pixels

        return pixels(self._drawn(labels), channel_order)

    def save(self, path: Union[str, "os.PathLike[str]"], labels: str = "name") -> Path:
        """The drawn image (see ``draw``) as a JPEG file at ``path``, written all or nothing."""
        from .drawing import save_jpeg

        return save_jpeg(self._drawn(labels), path)

    def to_json(self) -> dict:
        """The JSON Lines record of ``pydarknet detect --json`` and ``classify --json``:
        source, frame, width, height, ms and the detections or classes; for a failed
        input ``{"source": ..., "error": ...}`` (with its frame for a video frame)."""
        if self.error is not None:
            failed = {"source": printable(self.source), "error": printable(self.error)}
            return failed if self.frame is None else {**failed, "frame": self.frame}
        record = {"source": printable(self.source), "frame": self.frame, "width": self.width,
                  "height": self.height, "ms": round(self.ms, 3)}
        if self.detections is not None:
            record["detections"] = [d.to_json() for d in self.detections]
        if self.classes is not None:
            record["normalization"] = self.classes[0].normalization if self.classes else None
            record["classes"] = [c.to_json() for c in self.classes]
        return record
