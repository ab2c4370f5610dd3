"""How a model wants its images: the ``preprocessing`` entry of the .json a converter
writes next to the .cfg, which the runtime finds and applies.

An image (RGB, values in [0, 1] as Darknet decodes it) is sized to the network input
(``resize``: "letterbox", Darknet's own; "stretch" to the input's width and height, as
Caffe deployments resize; "crop": scaled so that its shorter side is ``crop_from``
pixels, or just covers the input when that is 0, then its centre cut out, as
torchvision's Resize + CenterCrop), then each input channel k reads image
channel k (``channel_order`` "RGB") or 2 - k ("BGR") and becomes
(value * pixel_range - mean[k]) * scale[k]. Darknet's own models: RGB, pixel_range 1,
mean 0, scale 1, letterbox. csrc/detection.c's prepare_input computes exactly this.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from ..errors import FileError

PathLike = Union[str, "os.PathLike[str]"]
Triple = Tuple[float, float, float]
RESIZES = ("letterbox", "stretch", "crop")
CHANNEL_ORDERS = ("RGB", "BGR")


#: The largest float32: the C side computes in float32, where a larger value is inf.
FLOAT32_MAX = 3.4028234663852886e38
#: The smallest normal float32: below it a scale loses precision, and at about 1e-45
#: it is 0, every input the same.
FLOAT32_TINY = 1.1754943508222875e-38


def number(value, what: str) -> float:
    """``value`` as a float that float32 holds (finite, not so small that it becomes 0
    or loses precision; bools and huge integers refused)."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        result = float(value)
    except (TypeError, OverflowError):
        result = float("nan")
    if not abs(result) <= FLOAT32_MAX:  # also NaN
        raise ValueError(f"{what} values must be finite float32 numbers (at most {FLOAT32_MAX:.4g} in size), "
                         f"not {repr(value)[:40]}")
    if result and abs(result) < FLOAT32_TINY:
        raise ValueError(f"{what} value {result:g} is below float32's normal range ({FLOAT32_TINY:.4g})")
    return result


def triple(values: Union[float, Sequence[float]], what: str) -> Triple:
    """One value for every channel, or three (in the model's channel order)."""
    values = [values] if isinstance(values, (int, float)) else list(values)
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{what} must be one finite number or three, not {values!r}")
    return tuple(number(v, what) for v in values)


@dataclass(frozen=True)
class Preprocessing:
    """What to do to an image before the network sees it (see the module docstring)."""

    channel_order: str = "RGB"
    pixel_range: float = 1.0
    mean: Triple = (0.0, 0.0, 0.0)
    scale: Triple = (1.0, 1.0, 1.0)
    resize: str = "letterbox"
    crop_from: int = 0  # "crop": the shorter side before the centre crop (0: the crop fits)
    stated_by: str = "Darknet's convention"  # where these values come from, for messages

    def __post_init__(self):
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, not {self.channel_order!r}")
        if self.resize not in RESIZES:
            raise ValueError(f"resize must be one of {RESIZES}, not {self.resize!r}")
        if isinstance(self.crop_from, bool) or not isinstance(self.crop_from, int) \
                or not 0 <= self.crop_from <= 1 << 20:
            raise ValueError(f"crop_from must be a whole number of pixels (0 to 1048576), not {self.crop_from!r}")
        if number(self.pixel_range, "pixel_range") <= 0:
            raise ValueError(f"pixel_range must be a positive number (1 or 255), not {self.pixel_range!r}")
        object.__setattr__(self, "pixel_range", float(self.pixel_range))
        object.__setattr__(self, "mean", triple(self.mean, "mean"))
        object.__setattr__(self, "scale", triple(self.scale, "scale"))
        # the largest input value, (pixel * pixel_range - mean) * scale, must be finite in float32
        extreme = max(max(abs(self.pixel_range - m), abs(m)) * abs(k) for m, k in zip(self.mean, self.scale))
        if not extreme <= FLOAT32_MAX:
            raise ValueError(f"pixel_range {self.pixel_range:g}, mean {self.mean} and scale {self.scale} make "
                             f"inputs up to {extreme:.3g}, beyond float32 ({FLOAT32_MAX:.4g})")

    @property
    def is_darknets(self) -> bool:
        """Whether this is what upstream Darknet does by itself."""
        return self.values() == DARKNET.values()

    def values(self) -> dict:
        """The fields that change the input (not ``stated_by``)."""
        found = asdict(self)
        del found["stated_by"]
        return found

    def override(self, **changes) -> "Preprocessing":
        """A copy with the given fields replaced (None: kept)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes, stated_by="given by the caller") if changes else self

    def to_json(self) -> dict:
        return {**self.values(), "mean": list(self.mean), "scale": list(self.scale), "stated_by": self.stated_by}

    @classmethod
    def from_json(cls, entry: dict, file: Optional[PathLike] = None) -> "Preprocessing":
        """The entry as written by to_json(); an unknown key is refused by name (a
        misspelt or foreign key would leave the model running with a default)."""
        known = list(cls.__dataclass_fields__)
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"expected an object, found {type(entry).__name__}")
            unknown = [k for k in entry if k not in known]
            if unknown:
                hints = "".join(f" ({k!r}: {HINTS[k]})" for k in unknown if k in HINTS)
                raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}{hints}; the keys are "
                                 f"{', '.join(known)}")
            return cls(**entry)
        except (TypeError, ValueError) as e:
            raise FileError(f"its 'preprocessing' entry is not usable: {e}; fix or delete the entry "
                            "(the model then gets Darknet's RGB 0-1 letterbox)",
                            file=None if file is None else os.fspath(file)) from None

    def __str__(self) -> str:
        mean = ", ".join(f"{v:g}" for v in self.mean)
        scale = ", ".join(f"{v:g}" for v in self.scale)
        resize = f"crop from {self.crop_from}" if self.resize == "crop" and self.crop_from else self.resize
        return (f"{self.channel_order}, 0-{self.pixel_range:g}, mean ({mean}), scale ({scale}), "
                f"{resize} ({self.stated_by})")


DARKNET = Preprocessing()
#: What the keys people write instead of ours mean here.
HINTS = {"std": "give scale, 1/std per channel (the CLI's --std does that)",
         "channel-order": "channel_order", "order": "channel_order", "Scale": "scale", "Mean": "mean",
         "size": "resize", "range": "pixel_range"}


def sidecar(cfg: PathLike) -> Path:
    """The .json a converter writes next to ``cfg``."""
    return Path(os.fspath(cfg)).with_suffix(".json")


def read_sidecar(cfg: PathLike) -> Optional[dict]:
    """The .json next to ``cfg`` as a dict, or None if there is none."""
    path = sidecar(cfg)
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    # ValueError: numbers beyond Python's digit limit; RecursionError: nesting too deep
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FileError(f"cannot read the model description next to the cfg: {e}; fix or remove it",
                        file=os.fspath(path)) from None
    return entry if isinstance(entry, dict) else None


def stated(cfg: PathLike) -> Optional[Preprocessing]:
    """The preprocessing the .json next to ``cfg`` states, if there is one that does."""
    entry = read_sidecar(cfg)
    if entry is None or "preprocessing" not in entry:
        return None
    return Preprocessing.from_json(entry["preprocessing"], sidecar(cfg))
