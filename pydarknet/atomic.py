"""Writing files all or nothing: each output goes to a temporary file beside it and
is renamed into place only once every output of the call is complete."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator, List, Union

PathLike = Union[str, "os.PathLike[str]"]


def _temporary_beside(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def replacing(*targets: PathLike) -> Iterator[List[Path]]:
    """Yields one temporary path per target; on success each is renamed over its
    target, on failure every temporary file is removed and no target is touched."""
    finals = [Path(os.fspath(t)) for t in targets]
    temps = [_temporary_beside(t) for t in finals]
    try:
        yield temps
        for temp, final in zip(temps, finals):
            os.replace(temp, final)
    except BaseException:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        raise
