"""Models over many inputs: image files, folders, globs, videos, cameras and stream
URLs, decoded in a background thread while the network runs, in batches; one
``Result`` per image or frame.

    >>> for result in pydarknet.predict("yolov3-tiny", ["photos/", "clip.mp4"], batch=8):
    ...     print(result.source, result.frame, len(result.detections), f"{result.ms:.0f} ms")

Videos, cameras and streams are decoded by OpenCV (``pip install "pydarknet[video]"``);
their frames are BGR, images go through Darknet's own decoder, as ``detect`` does.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Union

from .. import limits
from ..errors import DarknetError, DependencyError, FileError, optional
from ..runtime.images import load_image
from ..runtime.results import Result
from .inference import Input, ModelSpec, classified, detected, resolve_model
from .sources import Source, expand, is_stream, is_video_name

# what a bad input raises: reported for that input, and the run goes on
INPUT_ERRORS = (DarknetError, OSError, ValueError, TypeError)


FrameResult = Result  # its name before predict() gave every source one Result type


def _video(name: str) -> Iterator[Input]:
    try:
        cv2 = optional("cv2", f"{name}: decoding videos, cameras and streams", "\"pydarknet[video]\"")
    except DependencyError as e:
        yield Input(name, None, error=e)
        return
    if not (is_stream(name) or os.path.isfile(name)):
        yield Input(name, None, error=FileError("cannot open video: no such file", file=name))
        return
    capture = cv2.VideoCapture(int(name) if name.isdigit() else name)
    try:
        if not capture.isOpened():
            yield Input(name, None, error=FileError("OpenCV cannot open this video, camera or stream", file=name))
            return
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            try:
                yield Input(name, index, load_image(frame, "BGR"))
            except INPUT_ERRORS as e:
                yield Input(name, index, error=e)
            index += 1
    finally:
        capture.release()


def decoded(sources: Iterable[Source], recursive: bool = False, channel_order: str = "RGB") -> Iterator[Input]:
    """Every image and frame of ``sources`` decoded (or the error it raised)."""
    for position, source in enumerate(expand(sources, recursive)):
        if isinstance(source, int) and not isinstance(source, bool):
            source = str(source)  # a camera index
        if isinstance(source, str) and is_video_name(source):
            yield from _video(source)
            continue
        name = source if isinstance(source, str) else f"<image {position}>"
        try:
            yield Input(name, None, load_image(source, channel_order))
        except INPUT_ERRORS as e:
            yield Input(name, None, error=e)


def prefetched(items: Iterator, depth: int) -> Iterator:
    """``items`` produced by a background thread up to ``depth`` ahead (decoding then
    overlaps the forward passes, which release the GIL)."""
    done = object()
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        """Put ``item`` unless the consumer has gone (then: False)."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as e:  # re-raised in the consumer
            offer(e)

    worker = threading.Thread(target=produce, name="pydarknet-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def chunks(items: Iterator[Input], size: int) -> Iterator[List[Input]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    chunk: List[Input] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(net, sources, batch: int, errors: str, recursive: bool, channel_order: str,
             detections: dict, top: int) -> Iterator[Result]:
    if errors not in ("raise", "yield"):
        raise ValueError(f"errors must be 'raise' or 'yield', not {errors!r}")
    if not isinstance(sources, (list, tuple, Iterator)):  # one source (an array or a PIL image included)
        sources = [sources]
    for chunk in chunks(prefetched(decoded(sources, recursive, channel_order), 2 * batch), batch):
        results = detected(net, chunk, **detections) if net.detector else classified(net, chunk, top)
        for item, result in zip(chunk, results):
            if item.error is not None and errors == "raise":
                raise item.error
            yield result


def predict(model: ModelSpec, source: Union[Source, Sequence[Source]], *, batch: int = 1, thresh: float = 0.5,
            hier_thresh: float = 0.5, nms: float = 0.45, top: int = 5, recursive: bool = False,
            channel_order: str = "RGB", errors: str = "yield", device: Optional[str] = None) -> Iterator[Result]:
    """One Result per image or video frame of ``source`` (a path, folder, glob, video,
    camera index, stream URL or image object, or a list of them), in order: a
    detector's detections (``thresh``, ``hier_thresh``, ``nms`` as ``detect``) or a
    classifier's ``top`` classes (as ``classify``), with the milliseconds each took.
    Images run ``batch`` per forward pass while the next ones are decoded. ``errors``:
    "yield" (the default) gives a bad input as a Result with ``error`` set and goes
    on; "raise" raises its error. ``channel_order`` is that of uint8 arrays among the
    sources (video frames are always BGR)."""
    batch = limits.positive_int(batch, "batch")
    top = limits.positive_int(top, "top")
    net = resolve_model(model, device, batch=batch)
    return _results(net, source, batch, errors, recursive, channel_order,
                    {"thresh": thresh, "hier_thresh": hier_thresh, "nms": nms}, top)


def detect_stream(model: ModelSpec, sources: Union[Source, Sequence[Source]], *, batch: int = 1,
                  thresh: float = 0.5, hier_thresh: float = 0.5, nms: float = 0.45, recursive: bool = False,
                  channel_order: str = "RGB", errors: str = "raise", annotate: Optional[Any] = None,
                  device: Optional[str] = None) -> Iterator[Result]:
    """``predict`` for detectors, raising a bad input's error unless ``errors="yield"``.
    ``annotate(result) -> path without extension or None`` saves each image drawn by
    upstream (``path + ".jpg"``)."""
    batch = limits.positive_int(batch, "batch")
    net = resolve_model(model, device, batch=batch)
    if not net.detector:
        raise ValueError(f"{net.cfg_path.name} is a classifier (it has no detection layer): use predict or classify")
    for result in _results(net, sources, batch, errors, recursive, channel_order,
                           {"thresh": thresh, "hier_thresh": hier_thresh, "nms": nms}, 1):
        target = annotate(result) if annotate is not None and result.error is None else None
        if target is not None:
            result.save(os.fsdecode(target) + ".jpg")
        yield result
