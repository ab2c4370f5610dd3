"""Class names: a list, a .names file (one per line) or a darknet .data file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..errors import FileError
from ..formats.dataset import DataFile

NamesSource = Optional[Union[str, "os.PathLike[str]", Sequence[str]]]


def _read_lines(path: Path) -> List[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError(f"cannot read names file: {exc.strerror}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file of class names") from exc
    lines = [line.strip() for line in text.splitlines()]  # splitlines: CRLF too
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _names_from_data_file(path: Path) -> List[str]:
    """The file named by `names=` (or `labels=`) in a .data file."""
    data = DataFile.read(path)
    return _read_lines(data.file("names" if "names" in data.keys or "labels" not in data.keys else "labels"))


def load_names(source: NamesSource) -> List[str]:
    """Class names from a list, a .names file or a .data file."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _names_from_data_file(path) if path.suffix == ".data" else _read_lines(path)
    if isinstance(source, Sequence) and all(isinstance(n, str) for n in source):
        return list(source)
    raise TypeError(f"names must be a list of str or a path, not {type(source).__name__}")
