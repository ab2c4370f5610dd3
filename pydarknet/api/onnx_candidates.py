"""A detector exported with ``to-onnx --boxes``, run by onnxruntime, as the candidates an
evaluation scores: the images prepared by the runtime, the file's decoded boxes and
scores, then what upstream does after its forward pass (get_network_boxes()'s threshold
and letterbox correction, and the NMS the cfg asks for: do_nms_sort() or DIoU), as
``Network.detection_steps()`` says the runtime does them."""

from __future__ import annotations

import os
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from ..errors import OnnxError, optional
from ..runtime.network import Network
from .darknet_map import Candidates, box_iou
from .inference import Input
from .stream import decoded


def _overlap(box: np.ndarray, others: np.ndarray, beta: float) -> np.ndarray:
    """IoU, or DIoU-NMS's IoU - (centre distance^2 / enclosing diagonal^2)^beta."""
    iou = box_iou(box, others)
    if beta < 0:
        return iou
    left = np.minimum(box[0] - box[2] / 2, others[:, 0] - others[:, 2] / 2)
    right = np.maximum(box[0] + box[2] / 2, others[:, 0] + others[:, 2] / 2)
    top = np.minimum(box[1] - box[3] / 2, others[:, 1] - others[:, 3] / 2)
    bottom = np.maximum(box[1] + box[3] / 2, others[:, 1] + others[:, 3] / 2)
    diagonal = (right - left) ** 2 + (bottom - top) ** 2
    distance = (box[0] - others[:, 0]) ** 2 + (box[1] - others[:, 1]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diagonal == 0, iou, iou - (distance / diagonal) ** np.float32(beta)).astype(np.float32)


def nms(boxes: np.ndarray, probs: np.ndarray, thresh: float, beta: float = -1.0) -> np.ndarray:
    """do_nms_sort(): per class, by confidence, a box zeroes that class in every later box
    it overlaps more than ``thresh``. Returns the new probs."""
    probs = probs.copy()
    for c in range(probs.shape[1]):
        order = np.argsort(-probs[:, c], kind="stable")
        order = order[:np.count_nonzero(probs[:, c])]  # zero ones suppress nothing
        for rank, i in enumerate(order):
            if probs[i, c] == 0:  # suppressed by an earlier one
                continue
            later = order[rank + 1:]
            probs[later[_overlap(boxes[i], boxes[later], beta) > thresh], c] = 0
    return probs


def _image_relative(corners: np.ndarray, net_w: int, net_h: int, w: int, h: int, letterbox: bool) -> np.ndarray:
    """x1, y1, x2, y2 in input pixels as x, y, w, h relative to the image
    (correct_yolo_boxes())."""
    x = (corners[:, 0] + corners[:, 2]) / 2 / net_w
    y = (corners[:, 1] + corners[:, 3]) / 2 / net_h
    bw = (corners[:, 2] - corners[:, 0]) / net_w
    bh = (corners[:, 3] - corners[:, 1]) / net_h
    if letterbox:
        if net_w / w < net_h / h:
            new_w, new_h = net_w, (h * net_w) // w
        else:
            new_w, new_h = (w * net_h) // h, net_h
        x = (x - (net_w - new_w) / 2 / net_w) / (new_w / net_w)
        y = (y - (net_h - new_h) / 2 / net_h) / (new_h / net_h)
        bw, bh = bw * net_w / new_w, bh * net_h / new_h
    return np.stack([x, y, bw, bh], axis=1).astype(np.float32)


def onnx_candidates(net: Network, model: os.PathLike, paths: Sequence[str], thresh: float, nms_thresh: float,
                    progress=None) -> Iterator[Tuple[Input, Optional[Candidates]]]:
    """Per path, in order: the decoded image (an Input) and its candidates from ``model``
    (None where it cannot be decoded)."""
    onnxruntime = optional("onnxruntime", "--onnx (the model on onnxruntime)", '"pydarknet[onnx]"')
    session = onnxruntime.InferenceSession(os.fspath(model), providers=["CPUExecutionProvider"])
    if not {"boxes", "scores"} <= {output.name for output in session.get_outputs()}:
        raise OnnxError("no boxes and scores outputs: export it with pydarknet to-onnx --boxes", file=os.fspath(model))
    letterbox, beta = net.detection_steps()
    _, net_h, net_w = net.input_shape
    for item in decoded(paths):
        if item.error is not None:
            yield item, None
        else:
            corners, scores = session.run(["boxes", "scores"], {"input": net.preprocess(item.image)[None]})
            scores = np.where(scores[0] > thresh, scores[0], np.float32(0))
            keep = scores.max(axis=1) > 0
            boxes = _image_relative(corners[0][keep], net_w, net_h, item.image.width, item.image.height, letterbox)
            probs = nms(boxes, scores[keep], nms_thresh, beta)
            box, cls = np.nonzero(probs)
            yield item, Candidates(cls.astype(np.int64), probs[box, cls], boxes[box])
        if progress:
            progress(1)
