"""``pydarknet.quantize``: int8 parameters for a model from calibration images.

The calibration images go through the model's own preprocessing and a float32
forward pass; each convolution's input (the previous layer's output, or the network
input for layer 0) is collected, and its int8 step is chosen by ``method``:

- "max" (the default): the largest magnitude seen is the largest step, nothing seen
  saturates;
- "percentile" (at ``percentile``, 99.99 by default): the given percentile of the
  input's magnitudes over every calibration image is, so that a few outliers do not
  coarsen the steps of every other value (values above it saturate).

"max" kept yolov3-tiny's and yolov4-tiny's boxes closest to float32's (docs/cpu.md,
"int8"): their largest activations, the confident detections, are what a percentile cuts.

An input never negative in calibration is quantized unsigned (u8, 255 steps: images
and ReLU outputs), else signed (s8, 127 steps each way). The result is written as
OUT.cfg, OUT.weights (the model's own files, copied) and OUT.json: the .json next to
the cfg with its ``quantization`` entry set (formats/quantization.py), which
``Network(OUT.cfg, OUT.weights, precision="int8")`` reads.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .. import atomic
from ..errors import DatasetError, printable
from ..formats.preprocessing import PathLike, read_sidecar, sidecar
from ..formats.quantization import DEFAULT_PERCENTILE, METHODS, Quantization
from ..runtime.network import Network
from .sources import Source
from .stream import decoded



class _Magnitudes:
    """One tensor's calibration statistics: its smallest value and, per image, the
    largest magnitudes, as many as the percentile can reach into (so the percentile
    over every image is exact without keeping every value)."""

    def __init__(self, percentile: float):
        self.tail = 1 - percentile / 100
        self.minimum = math.inf
        self.count = 0
        self.largest: List[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        values = values.ravel()
        self.minimum = min(self.minimum, float(values.min()))
        keep = min(values.size, math.ceil(self.tail * values.size) + 1)
        magnitudes = np.abs(values)
        self.largest.append(np.partition(magnitudes, values.size - keep)[values.size - keep:])
        self.count += values.size

    def limit(self) -> float:
        """The magnitude at the percentile over everything added (the largest for 100)."""
        pooled = np.concatenate(self.largest)
        rank = min(pooled.size - 1, math.ceil(self.tail * self.count))  # how many values lie above it
        return float(np.partition(pooled, pooled.size - 1 - rank)[pooled.size - 1 - rank])


@dataclass
class Calibration:
    """What ``calibrate`` found: the parameters, the inputs it could not read, and the
    files ``quantize`` wrote (cfg, weights, json)."""

    quantization: Quantization  # its calibration_images: how many images were read
    problems: List[str] = field(default_factory=list)
    written: List[Path] = field(default_factory=list)


def calibrate(net: Network, sources: Iterable[Source], *, method: str = "max",
              percentile: float = DEFAULT_PERCENTILE, float32_layers: Sequence[int] = (),
              progress: Optional[Callable[[int], None]] = None) -> Calibration:
    """Int8 input steps for every convolution of ``net`` (a float32 network) but
    ``float32_layers``, from the images of ``sources``."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    if method == "max":
        percentile = 100.0
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile must be above 50 and at most 100, got {percentile}")
    if net.precision != "float32":
        raise ValueError("calibrate a float32 network (load it without precision='int8')")
    convolutions = [layer.index for layer in net.layers if layer.type == "convolutional"]
    kept = {int(i): "asked for (float32_layers)" for i in float32_layers}
    wrong = [i for i in kept if i not in convolutions]
    if wrong:
        raise ValueError(f"float32_layers: layer {wrong[0]} is not a convolutional layer of {net.cfg_path.name}")
    stats = {i: _Magnitudes(percentile) for i in convolutions if i not in kept}
    problems, images = [], 0
    for item in decoded(sources):
        if item.error is not None:
            problems.append(f"{printable(item.source)}: {item.error}")
            continue
        x = net.preprocess(item.image)
        outputs = net.layer_outputs(x[None])
        for index, magnitudes in stats.items():
            magnitudes.add(x if index == 0 else outputs[index - 1])
        images += 1
        if progress:
            progress(1)
    if not images:
        raise DatasetError("no calibration image could be read" + (f" ({problems[0]})" if problems else ""))
    inputs: Dict[int, Tuple[float, bool]] = {}
    for index, magnitudes in stats.items():
        limit = magnitudes.limit()
        signed = magnitudes.minimum < 0
        if limit > 0:
            inputs[index] = (limit / (127 if signed else 255), signed)
        else:
            kept[index] = "its input was 0 on every calibration image"
    label = "max" if method == "max" else f"percentile {percentile:g}"
    return Calibration(Quantization(label, images, inputs, kept), problems)


def write(cfg: PathLike, weights: PathLike, quantization: Quantization, out: PathLike) -> List[Path]:
    """OUT.cfg and OUT.weights (copies of the model's) and OUT.json (the model's .json,
    if any, with the ``quantization`` entry), all three or none."""
    paths = [Path(f"{os.fspath(out)}{suffix}") for suffix in (".cfg", ".weights", ".json")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    description = dict(read_sidecar(cfg) or {})
    description["quantization"] = quantization.to_json()
    with atomic.replacing(*paths, inputs=[cfg, weights, sidecar(cfg)]) as (cfg_temp, weights_temp, json_temp):
        shutil.copyfile(cfg, cfg_temp)
        shutil.copyfile(weights, weights_temp)
        json_temp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return paths


def quantize(cfg: PathLike, weights: PathLike, calibration_images: Iterable[Source], out: PathLike, *,
             method: str = "max", percentile: float = DEFAULT_PERCENTILE,
             float32_layers: Sequence[int] = (), progress: Optional[Callable[[int], None]] = None
             ) -> Calibration:
    """Calibrate the model (cfg, weights) on ``calibration_images`` and write OUT.cfg,
    OUT.weights and OUT.json for ``Network(OUT.cfg, OUT.weights, precision="int8")``."""
    with Network(cfg, weights) as net:
        found = calibrate(net, calibration_images, method=method, percentile=percentile,
                          float32_layers=float32_layers, progress=progress)
    found.written = write(cfg, weights, found.quantization, out)
    return found
