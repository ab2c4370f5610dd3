"""``pydarknet.evaluate``: a detector's accuracy on labelled images, in Darknet's
convention (a ``.data`` file, as AlexeyAB's ``detector map``) or COCO's (ground-truth
``instances.json`` and its images, through pycocotools), returned as an Evaluation."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import limits
from ..errors import DatasetError, printable
from ..formats.dataset import DataFile, Labels, label_path
from ..runtime.network import Network
from . import coco, darknet_map
from .inference import ModelSpec, detected, resolve_model
from .stream import chunks, decoded, prefetched

# What both conventions score: every (box, class) above this after the model's NMS
# (validate_detector_map's thresh and nms; detect --thresh 0.005 --nms 0.45).
CANDIDATE_THRESH = 0.005
CANDIDATE_NMS = 0.45
POINTS = (0, 11, 101)

Progress = Optional[Callable[[int], None]]


@dataclass
class Evaluation:
    """A detector's accuracy. Darknet's convention fills ``map``, ``classes`` (per class:
    AP, and TP/FP at ``thresh``, with the PR curve) and the figures at ``thresh``; COCO's
    fills ``coco`` (pycocotools' 12 bbox statistics). ``problems`` lists what was wrong
    with the data (per file), ``images`` how many were scored."""

    convention: str
    images: int
    problems: List[str] = field(default_factory=list)
    map: Optional[float] = None
    classes: List[darknet_map.ClassResult] = field(default_factory=list)
    precision: Optional[float] = None
    recall: Optional[float] = None
    f1: Optional[float] = None
    average_iou: Optional[float] = None
    tp: Optional[int] = None
    fp: Optional[int] = None
    fn: Optional[int] = None
    points: Optional[int] = None
    iou_thresh: Optional[float] = None
    thresh: Optional[float] = None
    coco: Optional[Dict[str, Optional[float]]] = None

    def to_json(self) -> dict:
        """What ``pydarknet map --json`` prints (NaN, for a figure with nothing to
        measure, as null)."""
        if self.convention == "coco":
            return {"coco": dict(self.coco)}

        def number(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        return {"map": self.map,
                "classes": [{"id": c.id, "name": c.name, "ap": c.ap, "tp": c.tp, "fp": c.fp} for c in self.classes],
                **{key: number(getattr(self, key)) for key in ("precision", "recall", "f1", "average_iou")},
                "tp": self.tp, "fp": self.fp, "fn": self.fn}

    def __str__(self) -> str:
        if self.convention == "coco":
            return "\n".join(f"{name:>6} {'-' if value is None else f'{value:.4f}'}" for name, value in self.coco.items())
        rows = [f"{c.id:>4} {printable(c.name):<20} ap {c.ap:7.2%}  (TP {c.tp}, FP {c.fp}, {c.truths} labelled)"
                for c in self.classes]
        where = f"{self.points} recall points" if self.points else "area under the PR curve"
        rows += [f"at thresh {self.thresh:g}: precision {self.precision:.2f}, recall {self.recall:.2f}, "
                 f"F1 {self.f1:.2f}, TP {self.tp}, FP {self.fp}, FN {self.fn}, average IoU {self.average_iou:.2%}",
                 f"mAP@{self.iou_thresh:g} ({where}, {self.images} images): {self.map:.6f}"]
        return "\n".join(rows)


def _candidates(net: Network, paths: Sequence[str], progress: Progress):
    """Per path, in order: the decoded image (an Input) and its candidates (None where it
    cannot be decoded)."""
    for chunk in chunks(prefetched(decoded(paths), 2 * net.batch), net.batch):
        good = [item for item in chunk if item.error is None]
        raw = iter(net.detect_raw([item.image for item in good], CANDIDATE_THRESH, 0.0, CANDIDATE_NMS))
        for item in chunk:
            if item.error is not None:
                yield item, None
                continue
            found = next(raw)
            yield item, darknet_map.Candidates(
                np.array([d.class_id for d in found], np.int64), np.array([d.prob for d in found], np.float32),
                np.array([(d.x, d.y, d.w, d.h) for d in found], np.float32).reshape(-1, 4))
        if progress:
            progress(len(chunk))


def darknet_evaluation(net: Network, data: os.PathLike, *, points: int = 0, iou_thresh: float = 0.5,
                       thresh: float = 0.25, onnx: Optional[os.PathLike] = None,
                       progress: Progress = None) -> Evaluation:
    """Darknet's convention on the ``valid`` images of a .data file (module darknet_map);
    with ``onnx``, the candidates come from that export of ``net`` (``to-onnx --boxes``)
    on onnxruntime instead of from the runtime."""
    if points not in POINTS:
        raise ValueError(f"points={points}: choose 0 (area under the curve), 11 (VOC2007) or 101 (COCO)")
    iou_thresh, thresh = limits.probability(iou_thresh, "iou_thresh"), limits.probability(thresh, "thresh")
    dataset = DataFile.read(data)
    classes = dataset.classes
    if classes != net.classes:
        raise DatasetError(f"classes={classes}, but the model has {net.classes} classes", file=str(dataset.path))
    paths = dataset.images()
    problems: List[str] = []
    found, labels = [], []
    if onnx is not None:
        from .onnx_candidates import onnx_candidates

        made = onnx_candidates(net, onnx, paths, CANDIDATE_THRESH, CANDIDATE_NMS, progress)
    else:
        made = _candidates(net, paths, progress)
    for item, candidates in made:
        if candidates is None:
            problems.append(f"{printable(item.source)}: {item.error}; left out, with its labels")
            continue
        truth = Labels.read(label_path(item.source), classes)
        problems += truth.problems
        found.append(candidates)
        labels.append(truth)
    if not found:
        raise DatasetError(f"none of its {len(paths)} images could be read ({problems[-1]})", file=str(dataset.path))
    figures = darknet_map.figures(found, labels, net.labels, iou_thresh=iou_thresh, thresh=thresh, points=points)
    return Evaluation("darknet", len(found), problems, figures.map, figures.classes, figures.precision,
                      figures.recall, figures.f1, figures.average_iou, figures.tp, figures.fp, figures.fn,
                      points, iou_thresh, thresh)


def coco_evaluation(net: Network, ground_truth: os.PathLike, images: os.PathLike, *,
                    progress: Progress = None) -> Evaluation:
    """COCO's convention: the images of ``ground_truth`` (found in ``images`` by their
    file_name), detected as ``detect --thresh 0.005 --nms 0.45 --coco`` detects them,
    scored by pycocotools."""
    truth = coco.GroundTruth(ground_truth)
    category, left_out = truth.categories(net.labels)
    problems = [left_out] if left_out else []
    folder = Path(images)
    if not folder.is_dir():
        raise DatasetError(f"--images {printable(str(folder))}: not a folder", file=str(truth.path))
    paths = [str(folder / image["file_name"]) for image in truth.images]
    found, scored = [], []
    images_left = iter(truth.images)
    for chunk in chunks(prefetched(decoded(paths), 2 * net.batch), net.batch):
        for result, image in zip(detected(net, chunk, CANDIDATE_THRESH, 0.5, CANDIDATE_NMS), images_left):
            if result.error is not None:
                problems.append(f"{printable(result.source)}: {result.error}; left out")
                continue
            scored.append(image["id"])
            found += coco.records(result, image["id"], category.get)
        if progress:
            progress(len(chunk))
    if not scored:
        raise DatasetError(f"none of its {len(paths)} images could be read from {printable(str(folder))} "
                           f"({problems[-1] if problems else 'it lists none'})", file=str(truth.path))
    return Evaluation("coco", len(scored), problems, coco=truth.stats(found, scored))


def evaluate(model: ModelSpec, *, data: Optional[os.PathLike] = None, coco_gt: Optional[os.PathLike] = None,
             images: Optional[os.PathLike] = None, points: int = 0, iou_thresh: float = 0.5, thresh: float = 0.25,
             onnx: Optional[os.PathLike] = None, batch: int = 1, device: Optional[str] = None,
             progress: Progress = None) -> Evaluation:
    """A detector's accuracy: on a ``.data`` file in Darknet's convention (``points``,
    ``iou_thresh``, and the figures at ``thresh``), or on COCO ground truth
    (``coco_gt`` with its ``images`` folder) in COCO's. ``onnx``: score that export of the
    model (``to-onnx --boxes``) on onnxruntime (Darknet's convention). ``progress(n)`` is
    called as each n images are done."""
    if (data is None) == (coco_gt is None):
        raise ValueError("give data= (a .data file) or coco_gt= (instances.json, with images=)")
    if coco_gt is not None and images is None:
        raise ValueError("coco_gt= needs images=, the folder of its images")
    if coco_gt is not None and onnx is not None:
        raise ValueError("onnx= scores an export in Darknet's convention: give data=")
    net = resolve_model(model, device, batch=limits.positive_int(batch, "batch"))
    if data is not None:
        return darknet_evaluation(net, data, points=points, iou_thresh=iou_thresh, thresh=thresh, onnx=onnx,
                                  progress=progress)
    return coco_evaluation(net, coco_gt, images, progress=progress)
