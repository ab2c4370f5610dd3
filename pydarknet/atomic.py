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


def same_file(path: PathLike) -> str:
    """A key equal for two paths that name the same file (links resolved)."""
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def check_outputs(targets: Sequence[PathLike], inputs: Sequence[PathLike] = ()) -> None:
    """ValueError if two targets name the same file, or a target names one of ``inputs``."""
    written = {}
    for target in targets:
        key = same_file(target)
        if key in written:
            raise ValueError(f"{os.fspath(written[key])} and {os.fspath(target)} would both write the same file")
        written[key] = target
    read = {same_file(i): i for i in inputs}
    for key, target in written.items():
        if key in read:
            raise ValueError(f"the output {os.fspath(target)} would overwrite the input {os.fspath(read[key])}; "
                             f"write to another path")


@contextlib.contextmanager
def replacing(*targets: PathLike, inputs: Sequence[PathLike] = ()) -> Iterator[List[Path]]:
    """Yields one temporary path per target; on success each is renamed over its
    target, on failure every temporary file is removed and no target is touched.
    Targets that name the same file, or one of ``inputs`` (files the call reads), are
    refused with ValueError before anything is written."""
    finals = [Path(os.fspath(t)) for t in targets]
    check_outputs(finals, inputs)
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
