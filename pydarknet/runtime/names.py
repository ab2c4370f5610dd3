"""Class names: a list, a .names file (one per line) or a darknet .data file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..errors import FileError

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
    """The file named by `names=` (or `labels=`) in a .data file; relative paths are
    tried against the current directory (as upstream does), then the .data file's."""
    keys = {}
    for number, line in enumerate(_read_lines(path), 1):
        if line and not line.startswith(("#", ";")):
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path}:{number}: expected key=value, got {line!r}")
            keys[key.strip()] = value.strip()
    named = keys.get("names") or keys.get("labels")
    if not named:
        raise ValueError(f"{path}: no names= line saying where the class names are")
    candidates = [Path(named)] if Path(named).is_absolute() else [Path(named), path.parent / named]
    for candidate in candidates:
        if candidate.is_file():
            return _read_lines(candidate)
    raise FileError(f"names={named} not found (looked at {', '.join(map(str, candidates))})", file=str(path))


def load_names(source: NamesSource) -> List[str]:
    """Class names from a list, a .names file or a .data file."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _names_from_data_file(path) if path.suffix == ".data" else _read_lines(path)
    if isinstance(source, Sequence) and all(isinstance(n, str) for n in source):
        return list(source)
    raise TypeError(f"names must be a list of str or a path, not {type(source).__name__}")
