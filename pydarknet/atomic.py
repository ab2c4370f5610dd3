"""Writing files all or nothing: each output goes to a temporary file beside it and
is renamed into place only once every output of the call is complete."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator, List, Sequence, Union

from .errors import FileError

PathLike = Union[str, "os.PathLike[str]"]


def _temporary_beside(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _same_file_key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


@contextlib.contextmanager
def replacing(*targets: PathLike, inputs: Sequence[PathLike] = ()) -> Iterator[List[Path]]:
    """Yields one temporary path per target; on success each is renamed over its
    target, on failure every temporary file is removed and no target is touched.
    Targets that name the same file, or one of ``inputs`` (files the call reads), are
    refused with ValueError before anything is written."""
    finals = [Path(os.fspath(t)) for t in targets]
    keys = [_same_file_key(f) for f in finals]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two outputs of one call name the same file: {', '.join(map(str, finals))}")
    read = {_same_file_key(Path(os.fspath(i))): i for i in inputs}
    for final, key in zip(finals, keys):
        if key in read:
            raise ValueError(f"the output {final} would overwrite the input {os.fspath(read[key])}; "
                             f"write to another path")
    temps = [_temporary_beside(t) for t in finals]
    try:
        yield temps
        for temp, final in zip(temps, finals):
            try:
                os.replace(temp, final)
            except OSError as exc:
                raise FileError(f"cannot write {final}: {exc.strerror or exc}", file=str(final)) from exc
    except BaseException:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        raise
