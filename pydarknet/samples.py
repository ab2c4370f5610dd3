"""Upstream's sample images (data/*.jpg), installed with pydarknet.

    >>> pydarknet.samples.path("dog.jpg")
"""

from pathlib import Path
from typing import List


def _folder() -> Path:
    from . import upstream_path

    return upstream_path("data/dog.jpg").parent


def names() -> List[str]:
    return sorted(p.name for p in _folder().glob("*.jpg"))


def path(name: str) -> Path:
    """The path of a sample image, e.g. ``path("dog.jpg")``."""
    candidate = _folder() / name
    if candidate.suffix != ".jpg" or not candidate.is_file():
        raise FileNotFoundError(f"no sample image {name!r}; samples: {', '.join(names())}")
    return candidate
