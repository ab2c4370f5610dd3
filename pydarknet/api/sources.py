"""What the sources of ``predict`` and ``pydarknet detect`` name, before anything is
decoded: a folder as its image and video files, a glob as its matches, a video, camera
or stream by its name. Nothing here needs the compiled extension (the CLI checks its
outputs with it before any work)."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Tuple, Union

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".psd", ".hdr", ".pic", ".pnm", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                  ".3gp"}
Source = Union[str, "os.PathLike[str]", int, Any]


def is_stream(name: str) -> bool:
    """A camera index or a stream URL."""
    return name.isdigit() or "://" in name


def is_video_name(name: str) -> bool:
    """A video file's name, a camera index or a stream URL."""
    return is_stream(name) or Path(name).suffix.lower() in VIDEO_SUFFIXES


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
