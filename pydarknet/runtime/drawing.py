"""Detections drawn as upstream draws them (``draw_detections``: a box per object in
its class colour, the labels in upstream's glyphs), for ``Result.draw``/``save``,
``detect_batch(annotate=...)``, the CLI's ``--out`` and ``pydarknet.draw``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import atomic, binding
from ..limits import label_style
from ..binding import ffi, lib
from .images import Image, ImageSource, load_image, owned_image

PathLike = Union[str, "os.PathLike[str]"]

# Upstream draws a box's labels into a fixed 4 KiB buffer: each one is kept short.
LABEL_BYTES = 40


def c_labels(labels: Sequence[str]) -> Tuple[List, object]:
    """(the buffers to keep alive, a char *[] of ``labels``) for the C drawing code."""
    kept = [ffi.new("char[]", label.encode()[:LABEL_BYTES]) for label in labels]
    return kept, ffi.new("char *[]", kept)


def glyphs_dir() -> bytes:
    """The folder of upstream's label glyphs, as installed with pydarknet."""
    from .samples import upstream_path

    return str(upstream_path("data/labels/32_0.png").parent).encode()


def label_text(detection, labels: str) -> str:
    """The text drawn beside ``detection``'s box (see limits.LABEL_STYLES)."""
    return detection.label if labels == "name" else f"{detection.label} {detection.confidence:.2f}"


def drawn(image: Image, detections: Sequence, classes: Optional[int] = None, labels: str = "name") -> Image:
    """``image`` with ``detections`` (in its pixels) drawn by upstream's draw_detections:
    a box per object in its class colour, labelled as ``labels`` says (limits.LABEL_STYLES).
    Colours depend on the class and the model's number of ``classes`` (taken from the
    detections, else the largest class id + 1). Detections of one box share it, their
    labels joined, as upstream draws them."""
    label_style(labels)
    classes = classes or max([d.classes for d in detections] + [d.class_id + 1 for d in detections] + [1])
    for d in detections:
        if not 0 <= d.class_id < classes:
            raise ValueError(f"class_id {d.class_id} of {d.label!r} is not one of {classes} classes")
    found = ffi.new("pdn_detection[]", [
        {"class_id": d.class_id, "prob": d.confidence, "objectness": d.objectness, "x": d.x / image.width,
         "y": d.y / image.height, "w": d.w / image.width, "h": d.h / image.height} for d in detections] or 1)
    kept, texts = c_labels([label_text(d, labels) for d in detections]) if labels != "none" else ([], ffi.NULL)
    raw = ffi.new("pdn_image *")
    err = ffi.new("pdn_error *")
    if lib.pdn_draw(image._struct, found, len(detections), texts, classes, glyphs_dir(), raw, err):
        raise binding.error(err)
    return owned_image(raw)


def draw(image: ImageSource, detections: Sequence, channel_order: str = "RGB",
         classes: Optional[int] = None, labels: str = "name") -> np.ndarray:
    """``image`` with ``detections`` (from ``detect``, in its pixels) drawn by upstream's
    ``draw_detections`` (see ``drawn``; ``labels``: "name", "conf" or "none"): a height x
    width x 3 uint8 array in ``channel_order`` (that of a uint8 array you pass: "BGR"
    for OpenCV, whose ``cv2.imshow`` then shows it as is)."""
    return pixels(drawn(load_image(image, channel_order), detections, classes, labels), channel_order)


def pixels(image: Image, channel_order: str) -> np.ndarray:
    """``image`` as a height x width x 3 uint8 array in ``channel_order``."""
    array = image.to_uint8()
    return np.ascontiguousarray(array[:, :, ::-1]) if channel_order == "BGR" else array


def save_jpeg(image: Image, path: PathLike) -> Path:
    """``image`` as a JPEG file (quality 90, as upstream writes them), all or nothing."""
    path = Path(os.fspath(path))
    err = ffi.new("pdn_error *")
    with atomic.replacing(path) as (temp,):
        if lib.pdn_save_jpeg(image._struct, os.fsencode(temp), err):
            raise binding.error(err)
    return path


def annotation_targets(annotate, count: int) -> List[Optional[Path]]:
    """``annotate`` checked: one path without extension (or None) per image, as the
    JPEG files they name; two images may not write the same file. [] when None."""
    if annotate is None:
        return []
    if isinstance(annotate, (str, bytes, os.PathLike)):
        raise TypeError("annotate takes one path per image (a list), not a single path")
    annotate = list(annotate)
    if len(annotate) != count:
        raise ValueError(f"annotate has {len(annotate)} paths for {count} images: give one per image (None to skip)")
    if any(p is not None and not isinstance(p, (str, bytes, os.PathLike)) for p in annotate):
        raise TypeError("annotate[i] must be a path (str or os.PathLike) or None")
    targets = [None if p is None else Path(os.fsdecode(p) + ".jpg") for p in annotate]
    atomic.check_outputs([t for t in targets if t])  # across chunks, before any work
    return targets
