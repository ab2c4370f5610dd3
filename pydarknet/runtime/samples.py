"""Files of the verified upstream tree installed with pydarknet: cfgs, label glyphs and
the sample images (data/*.jpg).

    >>> pydarknet.upstream_path("cfg/yolov3-tiny.cfg")
    >>> pydarknet.samples.path("dog.jpg")
"""

from pathlib import Path
from typing import List

# written by the build beside the package's modules (setup.py, package_trees)
_DATA = Path(__file__).resolve().parent.parent / "darknet_data"


def upstream_path(relative: str) -> Path:
    """A file from the verified upstream tree installed with pydarknet,
    e.g. ``upstream_path("cfg/yolov3-tiny.cfg")`` or ``upstream_path("data/dog.jpg")``."""
    path = _DATA / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{relative!r} is not among the upstream files installed with pydarknet "
            f"(cfg/*, data/*.jpg, data/*.names, data/*.list) in {_DATA}"
        )
    return path


def _folder() -> Path:
    return upstream_path("data/dog.jpg").parent


def names() -> List[str]:
    return sorted(p.name for p in _folder().glob("*.jpg"))


def path(name: str) -> Path:
    """The path of a sample image, e.g. ``path("dog.jpg")``."""
    candidate = _folder() / name
    if candidate.suffix != ".jpg" or not candidate.is_file():
        raise FileNotFoundError(f"no sample image {name!r}; samples: {', '.join(names())}")
    return candidate
