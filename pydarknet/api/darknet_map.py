"""Mean average precision in Darknet's convention: what AlexeyAB's ``detector map``
(``validate_detector_map``) computes, quirks included, from candidate detections and
labels. Pure arithmetic: ``evaluation.py`` runs the model that makes the candidates.

The quirks, all kept so that the figures agree with Darknet's:

- A candidate is every (box, class) left after the model's NMS above 0.005. It is matched
  to the label of its class it overlaps most, if that IoU is above ``iou_thresh``; by
  confidence over the whole set, the first candidate matched to a label is a true
  positive, later ones are false positives.
- The mean runs over every class of the model, those without labels too (their AP is 0).
- ``points=0`` is the area under the PR curve, the precision at each recall the best at
  or right of it; 11 and 101 average the best precision at or right of each point.
- At ``thresh``: a candidate above it is a true positive when it matched a label no
  earlier candidate of the same image (in the model's order, any confidence) matched;
  average IoU divides the true positives' IoU by true plus false positives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np

from ..formats.dataset import Labels


@dataclass
class Candidates:
    """One image's candidates in the model's order: ``classes`` (n,), ``probs`` (n,) and
    ``boxes`` (n, 4: x, y, w, h relative to the image)."""

    classes: np.ndarray
    probs: np.ndarray
    boxes: np.ndarray


@dataclass
class ClassResult:
    id: int
    name: str
    ap: float
    truths: int
    tp: int  # at the threshold
    fp: int
    precision: np.ndarray = field(repr=False)  # the PR curve, one point per candidate of any class
    recall: np.ndarray = field(repr=False)


@dataclass
class DarknetFigures:
    map: float
    classes: List[ClassResult]
    precision: float  # at the threshold (NaN when nothing is above it)
    recall: float
    f1: float
    average_iou: float
    tp: int
    fp: int
    fn: int


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Darknet's box_iou() of one box against many, in float32 as Darknet computes it."""
    box, others = np.float32(box), others.astype(np.float32)
    half = np.float32(2)

    def overlap(x1, w1, x2, w2):
        left = np.maximum(x1 - w1 / half, x2 - w2 / half)
        right = np.minimum(x1 + w1 / half, x2 + w2 / half)
        return right - left

    w = overlap(box[0], box[2], others[:, 0], others[:, 2])
    h = overlap(box[1], box[3], others[:, 1], others[:, 3])
    intersection = np.where((w < 0) | (h < 0), np.float32(0), w * h)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return (intersection / union).astype(np.float32)


def average_precision(precision: np.ndarray, recall: np.ndarray, points: int) -> float:
    if not len(precision):
        return 0.0
    if points == 0:
        best_after = np.maximum.accumulate(precision[::-1])[::-1]  # max of precision[r:]
        # each step of recall times the best precision from there on, the first step
        # (from recall 0) last, in Darknet's order of summing
        steps = (recall[1:] - recall[:-1]) * best_after[:-1]
        return float(np.sum(steps[::-1]) + recall[0] * best_after[0])
    total = 0.0
    for point in range(points):
        reached = precision[recall >= point * 1.0 / (points - 1)]
        total += float(reached.max()) if len(reached) else 0.0
    return total / points


def figures(candidates: Sequence[Candidates], labels: Sequence[Labels], names: Sequence[str], *,
            iou_thresh: float = 0.5, thresh: float = 0.25, points: int = 0) -> DarknetFigures:
    classes = len(names)
    iou_thresh, thresh = np.float32(iou_thresh), np.float32(thresh)
    truth_counts = np.zeros(classes, np.int64)
    tp_at, fp_at = np.zeros(classes, np.int64), np.zeros(classes, np.int64)
    iou_sum = np.float32(0)
    probs, cls, truth_of = [], [], []  # every candidate: confidence, class, matched label (-1: none)
    first_label = 0
    for found, truth in zip(candidates, labels):
        np.add.at(truth_counts, truth.classes, 1)
        matched: List[int] = []
        for c, p, b in zip(found.classes, found.probs.astype(np.float32), found.boxes):
            ious = box_iou(b, truth.boxes)
            ious = np.where((truth.classes == c) & (ious > iou_thresh), ious, np.float32(0))
            best = int(np.argmax(ious)) if len(ious) and ious.max() > 0 else -1
            index = first_label + best if best >= 0 else -1
            if p > thresh:
                if index >= 0 and index not in matched:
                    iou_sum += ious[best]
                    tp_at[c] += 1
                else:
                    fp_at[c] += 1
            matched.append(index)
            probs.append(p)
            cls.append(int(c))
            truth_of.append(index)
        first_label += len(truth.classes)

    order = np.argsort(-np.array(probs, np.float32), kind="stable")
    cls_sorted = np.array(cls, np.int64)[order]
    truth_sorted = np.array(truth_of, np.int64)[order]
    is_tp = np.zeros(len(order), bool)
    seen = set()
    for rank, index in enumerate(truth_sorted):
        if index >= 0 and index not in seen:
            seen.add(index)
            is_tp[rank] = True

    results = []
    for c in range(classes):
        mine = cls_sorted == c
        tp = np.cumsum(mine & is_tp)
        fp = np.cumsum(mine & ~is_tp)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
            recall = np.where(truth_counts[c] > 0, tp / max(truth_counts[c], 1), 0.0)
        results.append(ClassResult(c, names[c], average_precision(precision, recall, points), int(truth_counts[c]),
                                   int(tp_at[c]), int(fp_at[c]), precision, recall))

    tp, fp = int(tp_at.sum()), int(fp_at.sum())
    fn = int(truth_counts.sum()) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = float(np.float32(tp) / np.float32(tp + fp))
        recall = float(np.float32(tp) / np.float32(tp + fn))
        f1 = float(np.float32(2) * np.float32(precision) * np.float32(recall)
                   / (np.float32(precision) + np.float32(recall)))
    average_iou = float(iou_sum / np.float32(tp + fp)) if tp + fp else 0.0
    return DarknetFigures(float(np.mean([r.ap for r in results])), results, precision, recall, f1, average_iou,
                          tp, fp, fn)
