"""Models over many inputs: image files, folders, globs, videos, cameras and stream
URLs, decoded in a background thread while the network runs, in batches; one
``Result`` per image or frame.

    >>> for result in pydarknet.predict("yolov3-tiny", ["photos/", "clip.mp4"], batch=8):
    ...     print(result.source, result.frame, len(result.detections), f"{result.ms:.0f} ms")

Videos, cameras and streams are decoded by OpenCV (``pip install "pydarknet[video]"``);
their frames are BGR, images go through Darknet's own decoder, as ``detect`` does.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from .. import limits
from ..errors import DarknetError, FileError
from ..runtime.images import load_image
from .inference import Input, ModelSpec, classified, detected, resolve_model
from ..runtime.results import Result

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".psd", ".hdr", ".pic", ".pnm", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                  ".3gp"}
# what a bad input raises: reported for that input, and the run goes on
INPUT_ERRORS = (DarknetError, OSError, ValueError, TypeError)
Source = Union[str, "os.PathLike[str]", int, Any]


FrameResult = Result  # its name before predict() gave every source one Result type


def _is_stream(name: str) -> bool:
    """A camera index or a stream URL."""
    return name.isdigit() or "://" in name


def is_video_name(name: str) -> bool:
    """A video file's name, a camera index or a stream URL."""
    return _is_stream(name) or Path(name).suffix.lower() in VIDEO_SUFFIXES


def expand(sources: Iterable[Source], recursive: bool = False) -> Iterator[Source]:
    """Each source as the inputs it stands for: a folder as its image and video files
    (sorted; ``recursive``: with its subfolders'), a glob pattern as its matches (a
    matched folder as its files), and everything else as itself (a missing file then
    fails when it is read). Symbolic links to folders are followed, each real folder
    once (a link back up the tree is a loop, not more images). Expanding the result
    again changes nothing."""
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):
            yield source
            continue
        name = os.fspath(source)
        if os.path.isdir(name):
            yield from sorted(p for p in _folder_files(name, recursive) if _is_input_name(p))
        elif not os.path.exists(name) and any(c in name for c in "*?["):
            matches = sorted(_glob(name, recursive))
            yield from (expand(matches, recursive) if matches else [name])  # a matched folder: its files
        else:
            yield name


def _is_input_name(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and os.path.isfile(path)


def _real_folders(root: str, recursive: bool = True) -> Iterator[Tuple[str, List[str]]]:
    """(folder, its file names) for ``root`` and, ``recursive``, the folders below it,
    symbolic links followed but each real folder visited once."""
    seen = set()
    for here, folders, files in os.walk(root, followlinks=True):
        try:
            info = os.stat(here)
        except OSError:
            info = None
        if info is None or (info.st_dev, info.st_ino) in seen:
            folders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        folders.sort()
        if not recursive:
            folders[:] = []
        yield here, files


def _folder_files(folder: str, recursive: bool) -> Iterator[str]:
    for here, files in _real_folders(folder, recursive):
        yield from (os.path.join(here, f) for f in files)


def _glob(pattern: str, recursive: bool) -> List[str]:
    """glob.glob, but a '**' (with ``recursive``) walks each real folder once: glob's own
    follows every link to a folder, into loops."""
    if not (recursive and "**" in pattern):
        return glob.glob(pattern)
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = os.path.join(*parts[:fixed]) if fixed else os.curdir
    matcher = re.compile("".join(_glob_part(part) for part in parts[fixed:]).rstrip("/") + r"\Z", re.S)
    hidden = any(part.startswith(".") for part in parts[fixed:])  # as glob: '*' skips .names unless asked
    found = []
    for path in _walked(root):
        relative = os.path.relpath(path, root)
        if not hidden and any(part.startswith(".") for part in Path(relative).parts):
            continue
        if matcher.match(relative.replace(os.sep, "/")):
            found.append(os.path.join(*parts[:fixed], relative) if fixed else relative)
    return found


def _glob_part(part: str) -> str:
    """A regular expression for one component of a glob pattern ('**': any folders)."""
    if part == "**":
        return "(?:[^/]*/)*"
    body = fnmatch.translate(part)[4:-3]  # "(?s:BODY)\\Z": '*' as '.*', '?' as '.'
    body = re.sub(r"(?<!\\)\.", "[^/]", body)  # neither crosses a folder
    return body + "/"


def _walked(root: str) -> Iterator[str]:
    """Every folder and file below ``root``, each real folder visited once."""
    for here, files in _real_folders(root):
        if here != root:
            yield here
        yield from (os.path.join(here, f) for f in files)


def _video(name: str) -> Iterator[Input]:
    try:
        import cv2
    except ImportError:
        yield Input(name, None, error=ImportError(f"{name}: videos, cameras and streams are decoded by OpenCV: "
                                                   "pip install \"pydarknet[video]\""))
        return
    if not (_is_stream(name) or os.path.isfile(name)):
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


def _chunks(items: Iterator[Input], size: int) -> Iterator[List[Input]]:
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
    for chunk in _chunks(prefetched(decoded(sources, recursive, channel_order), 2 * batch), batch):
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
