"""Int8 quantization parameters: the ``quantization`` entry of the .json next to a
.cfg (where ``preprocessing`` travels too), written by ``pydarknet quantize`` and read
by ``Network(..., precision="int8")``.

Each int8 convolution computes with its input as int8 steps: x ~ scale * q, q an
integer in [-127, 127] (``signed``) or [0, 255] (an input that calibration never saw
negative, e.g. after a ReLU or of an image); the steps come from the calibration
images' activations (``method``). Its weights are quantized at load, symmetrically
per output channel (scale = largest |w| of the filter / 127, after batch
normalization is folded), so the weights file stays the float32 one and the same
files also run in float32. Layers listed under ``float32`` keep float32, each with
the reason.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import FileError
from .preprocessing import PathLike, read_sidecar, sidecar

#: How calibration chooses each input's steps (api/quantize.py).
METHODS = ("max", "percentile")
DEFAULT_PERCENTILE = 99.99
#: The keys of the entry, as to_json() writes them.
KEYS = ("method", "calibration_images", "layers", "float32")
LAYER_KEYS = ("layer", "input_scale", "signed")


@dataclass(frozen=True)
class Quantization:
    """Per int8 layer index: (input_scale, signed). ``float32``: layer index -> why."""

    method: str
    calibration_images: int
    inputs: Dict[int, Tuple[float, bool]]
    float32: Dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"method": self.method, "calibration_images": self.calibration_images,
                "layers": [{"layer": i, "input_scale": s, "signed": signed}
                           for i, (s, signed) in sorted(self.inputs.items())],
                "float32": [{"layer": i, "reason": why} for i, why in sorted(self.float32.items())]}

    @classmethod
    def from_json(cls, entry, file: Optional[PathLike] = None) -> "Quantization":
        """The entry as to_json() writes it; anything else is a FileError naming the key."""
        def bad(what: str) -> FileError:
            return FileError(f"its 'quantization' entry is not usable: {what}; run pydarknet quantize again to "
                             "write it", file=None if file is None else os.fspath(file))

        if not isinstance(entry, dict):
            raise bad(f"expected an object, found {type(entry).__name__}")
        unknown = [k for k in entry if k not in KEYS]
        if unknown or any(k not in entry for k in KEYS):
            raise bad(f"the keys are {', '.join(KEYS)}; found {', '.join(map(repr, entry))}")
        if not isinstance(entry["method"], str) or not _count(entry["calibration_images"]):
            raise bad("'method' must be a string and 'calibration_images' a positive integer")
        inputs: Dict[int, Tuple[float, bool]] = {}
        for n, row in enumerate(_rows(entry["layers"], LAYER_KEYS, "layers", bad)):
            index, scale, signed = (row[k] for k in LAYER_KEYS)
            if not _index(index) or index in inputs or not isinstance(signed, bool) or not _scale(scale):
                raise bad(f"layers[{n}]: 'layer' must be a new layer index, 'input_scale' a positive finite "
                          f"number and 'signed' true or false, found {row}")
            inputs[index] = (float(scale), signed)
        float32: Dict[int, str] = {}
        for n, row in enumerate(_rows(entry["float32"], ("layer", "reason"), "float32", bad)):
            if not _index(row["layer"]) or row["layer"] in inputs or not isinstance(row["reason"], str):
                raise bad(f"float32[{n}]: 'layer' must be an index not among 'layers' and 'reason' a string")
            float32[row["layer"]] = row["reason"]
        return cls(entry["method"], entry["calibration_images"], inputs, float32)

    def per_layer(self, layer_types: List[str], file: Optional[PathLike] = None) -> List[Tuple[float, bool]]:
        """(scale, signed) for each layer of a network with these layer types, (0, False)
        for float32 ones; FileError if an int8 layer is not a convolutional one there."""
        for i in sorted(self.inputs):
            if i >= len(layer_types) or layer_types[i] != "convolutional":
                found = f"is a {layer_types[i]} layer" if i < len(layer_types) else "is not there"
                raise FileError(f"its 'quantization' entry makes layer {i} int8, but in this network that layer "
                                f"{found}: it was written for another cfg; run pydarknet quantize again",
                                file=None if file is None else os.fspath(file))
        return [self.inputs.get(i, (0.0, False)) for i in range(len(layer_types))]


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _scale(value) -> bool:
    # float32's normal range: the C side computes in float32
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 1.1754943508222875e-38 <= value <= 3.4028234663852886e38)


def _rows(value, keys, name: str, bad) -> list:
    if not isinstance(value, list) or not all(isinstance(r, dict) and sorted(r) == sorted(keys) for r in value):
        raise bad(f"'{name}' must be a list of objects with the keys {', '.join(keys)}")
    return value


def stated(cfg: PathLike) -> Optional[Quantization]:
    """The quantization the .json next to ``cfg`` states, if it states one."""
    entry = read_sidecar(cfg)
    if entry is None or "quantization" not in entry:
        return None
    return Quantization.from_json(entry["quantization"], sidecar(cfg))

