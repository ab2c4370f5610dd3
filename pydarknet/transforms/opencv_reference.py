"""OpenCV DNN, the Caffe runtime the Caffe transforms check their results against
(``--check``, ``--verify``): independent of this code."""

from __future__ import annotations

import contextlib
import os
from typing import Union

import numpy as np

from ..errors import CaffeError, optional

PathLike = Union[str, "os.PathLike[str]"]


def _cv2():
    return optional("cv2", "running Caffe models (--check, --verify) on OpenCV DNN", "'opencv-python-headless<5'")


def opencv_net(prototxt: PathLike, caffemodel: PathLike, x: np.ndarray):
    """The model loaded in OpenCV DNN (the reference Caffe runtime here) with input x,
    run layer by layer as written: OpenCV's own BatchNorm fusion is off (it computes
    grouped Deconvolution + BatchNorm wrongly). Returns (cv2, net)."""
    cv2 = _cv2()
    net = cv2.dnn.readNetFromCaffe(os.fspath(prototxt), os.fspath(caffemodel))
    net.enableFusion(False)
    net.setInput(x)
    return cv2, net


@contextlib.contextmanager
def opencv_errors(prototxt: PathLike):
    """OpenCV's own errors (it builds the layers on the first forward) as CaffeError."""
    cv2 = _cv2()
    try:
        yield
    except cv2.error as exc:
        reason = (str(exc).strip().splitlines() or ["no reason given"])[-1]
        raise CaffeError(f"OpenCV DNN, the reference runtime for --check/--verify, cannot run this model: "
                         f"{reason}", file=os.fspath(prototxt)) from None
