"""Darknet's detection datasets as ``detector map`` reads them: the ``.data`` file, its list
of images, and each image's label file, found and read by AlexeyAB's darknet's rules.

A label file has one object per line, ``class x y w h``: the box centre and size relative
to the image. Problems (a missing file, a line that is not five numbers, a class the
model does not have, a box outside the image) are collected per file, never raised: an
evaluation reports them beside its figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from ..errors import DatasetError, FileError

PathLike = Union[str, "os.PathLike[str]"]

# replace_image_to_label(): these folders of COCO's and VOC's layouts hold images whose
# labels are in the sibling labels/ folder; any other image's label file is beside it.
LABEL_FOLDERS = (
    ("/images/train2017/", "/labels/train2017/"), ("/images/val2017/", "/labels/val2017/"),
    ("/JPEGImages/", "/labels/"),
    ("\\images\\train2017\\", "\\labels\\train2017\\"), ("\\images\\val2017\\", "\\labels\\val2017\\"),
    ("\\images\\train2014\\", "\\labels\\train2014\\"), ("\\images\\val2014\\", "\\labels\\val2014\\"),
    ("/images/train2014/", "/labels/train2014/"), ("/images/val2014/", "/labels/val2014/"),
    ("\\JPEGImages\\", "\\labels\\"),
)
# ... and these endings become .txt (as written: .Jpg is not one of them)
IMAGE_SUFFIXES = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM",
                  ".tiff", ".TIFF")


def _lines(path: Path) -> List[str]:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise FileError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc


@dataclass
class DataFile:
    """A ``.data`` file: ``key = value`` lines (``#`` and ``;`` start comments)."""

    path: Path
    keys: Dict[str, str]

    @classmethod
    def read(cls, path: PathLike) -> "DataFile":
        path = Path(path)
        keys = {}
        for number, line in enumerate(_lines(path), 1):
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise DatasetError(f"expected key = value, got {line[:60]!r}", file=str(path), line=number)
            keys[key.strip()] = value.strip()
        return cls(path, keys)

    def file(self, key: str) -> Path:
        """The file ``key`` names: relative to the current folder, as Darknet reads it, or
        else to the .data file's folder."""
        if key not in self.keys:
            raise DatasetError(f"no {key}= line", file=str(self.path))
        named = Path(self.keys[key])
        for candidate in [named] if named.is_absolute() else [named, self.path.parent / named]:
            if candidate.is_file():
                return candidate
        raise FileError(f"{key}={self.keys[key]} not found (relative paths are tried from the current folder, "
                        f"then from {self.path.parent})", file=str(self.path))

    @property
    def classes(self) -> int:
        text = self.keys.get("classes", "")
        if not text.isdigit() or int(text) < 1:
            raise DatasetError(f"classes={text or '(missing)'}: give the number of classes", file=str(self.path))
        return int(text)

    def images(self, key: str = "valid") -> List[str]:
        """The image paths of the list file ``key`` names (``valid``: what ``map`` scores),
        one per line, as written (relative ones from the current folder)."""
        listed = self.file(key)
        images = [line.strip() for line in _lines(listed) if line.strip()]
        if not images:
            raise DatasetError(f"{key}={self.keys[key]} lists no images", file=str(listed))
        return images


def label_path(image: str) -> str:
    """The label file of an image, by AlexeyAB's replace_image_to_label()."""
    path = image
    for folder, labels in LABEL_FOLDERS:
        path = path.replace(folder, labels, 1)
    path = path.strip(" \t")
    for suffix in IMAGE_SUFFIXES:
        if path.endswith(suffix):
            return path[:-len(suffix)] + ".txt"
    return path


@dataclass
class Labels:
    """An image's objects: ``classes`` (n,) and ``boxes`` (n, 4: x, y, w, h relative to the
    image), and what was wrong with its file."""

    classes: np.ndarray
    boxes: np.ndarray
    problems: List[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: PathLike, classes: int) -> "Labels":
        """Objects read as Darknet reads them: up to the first line that is not five
        numbers. An object of a class outside 0..classes-1 is left out (Darknet would
        index past its arrays); a box outside the image is kept, as Darknet keeps it, and
        reported."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return cls.empty([f"{path}: no label file ({exc.strerror or exc}): counted as an image without objects"])
        kept, problems = [], []
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                class_id, *box = int(fields[0]), *map(float, fields[1:5])
            except ValueError:
                fields = []
            if len(fields) < 5 or not np.all(np.isfinite(box)):
                problems.append(f"{path}:{number}: not 'class x y w h'; Darknet stops reading here")
                break
            if not 0 <= class_id < classes:
                problems.append(f"{path}:{number}: class {class_id} is not one of 0..{classes - 1}; left out")
                continue
            if not all(0 < v <= 1 for v in box):
                problems.append(f"{path}:{number}: box {' '.join(fields[1:5])} is not inside the image (each value "
                                "in (0, 1]); kept, as Darknet keeps it")
            kept.append((class_id, *box))
        rows = np.array(kept, dtype=np.float64).reshape(-1, 5)
        return cls(rows[:, 0].astype(np.int64), rows[:, 1:].astype(np.float32), problems)

    @classmethod
    def empty(cls, problems: Sequence[str] = ()) -> "Labels":
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), list(problems))
