"""The arithmetic of folding batch normalization into the layer before it, shared by
the Darknet and Caffe folders, and the report both give.

BN (with its affine part) computes y = gamma * (x - mean) / D + beta per channel,
and x = W.z + b. So y = (k W).z + (b - mean) k + beta with k = gamma / D. D is the
runtime's own denominator, computed here in float64 and stored as float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..limits import fold_target

# float32 1e-6: upstream's CPU code adds the float constant .000001f.
CPU_EPSILON = float(np.float32(1e-6))
def darknet_denominator(variance: np.ndarray, target: str) -> np.ndarray:
    """D of upstream Darknet: sqrt(var) + 1e-6 on the CPU (normalize_cpu),
    sqrt(var + 1e-5) on the GPU (normalize_kernel)."""
    var = np.asarray(variance, dtype=np.float64)
    if fold_target(target) == "gpu":
        return np.sqrt(var + 0.00001)
    return np.sqrt(var) + CPU_EPSILON


def caffe_denominator(variance: np.ndarray, eps: float) -> np.ndarray:
    """D of Caffe's BatchNorm: sqrt(var + eps) (var already times the scale factor)."""
    return np.sqrt(np.asarray(variance, dtype=np.float64) + float(eps))


def fold_factors(mean, denominator, gamma, beta, bias=None) -> Tuple[np.ndarray, np.ndarray]:
    """(k, new bias) in float64: k = gamma / D, new bias = (bias - mean) k + beta,
    with no bias meaning 0."""
    mean = np.asarray(mean, dtype=np.float64)
    k = np.asarray(gamma, dtype=np.float64) / denominator
    shift = -mean if bias is None else np.asarray(bias, dtype=np.float64) - mean
    return k, shift * k + np.asarray(beta, dtype=np.float64)


def scale_weights(weights: np.ndarray, k: np.ndarray, k_shape) -> np.ndarray:
    """weights * k (k reshaped to ``k_shape`` to broadcast over the output channel),
    in float64, rounded once to float32."""
    return (np.asarray(weights, dtype=np.float64) * k.reshape(k_shape)).astype(np.float32)


def scale_outputs(weights: np.ndarray, k: np.ndarray, layout: str, group: int = 1) -> np.ndarray:
    """``weights`` with each output channel's weights times k, for the layouts of NCHW
    frameworks: "conv" (O, I/group, kh, kw), "dense" (N, K), "dense_transposed"
    (K, N), "deconv" (I, O/group, kh, kw), where output channel g * (O/group) + j
    has the weights [g * I/group : (g+1) * I/group, j]."""
    if layout == "deconv":
        grouped = weights.reshape(group, weights.shape[0] // group, k.size // group, -1)
        return scale_weights(grouped, k, (group, 1, -1, 1)).reshape(weights.shape)
    shapes = {"conv": (-1, 1, 1, 1), "dense": (-1, 1), "dense_transposed": (1, -1)}
    return scale_weights(weights, k, shapes[layout])


@dataclass
class FoldReport:
    """What a fold did: ``folded`` and ``kept`` hold one line per BN layer."""

    outputs: List[str] = field(default_factory=list)
    folded: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    check: Optional["CheckResult"] = None

    def __str__(self) -> str:
        lines = [f"folded {len(self.folded)} batch normalization layer(s)"]
        lines += [f"  folded: {line}" for line in self.folded]
        lines += [f"  kept:   {line}" for line in self.kept]
        lines += [f"  note:   {line}" for line in self.notes]
        lines += [f"wrote {path}" for path in self.outputs]
        if self.check is not None:
            lines.append(str(self.check))
        return "\n".join(lines)


@dataclass
class CheckResult:
    """Original vs folded outputs on the same random inputs; ``worst`` names the
    compared output with the largest difference relative to its own largest value."""

    runtime: str
    inputs: int
    compared: int  # how many outputs (layers or network outputs) were compared
    worst: str
    max_abs: float
    max_magnitude: float
    tolerance: float = 1e-4
    output: Optional["CheckResult"] = None  # the network output alone, when more was compared

    @property
    def relative(self) -> float:
        return self.max_abs / self.max_magnitude if self.max_magnitude else self.max_abs

    @property
    def ok(self) -> bool:
        return self.relative <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.ok else f"ABOVE the tolerance {self.tolerance:g}"
        text = (f"check ({self.runtime}, {self.inputs} random inputs, {self.compared} outputs compared): "
                f"largest difference in {self.worst}: {self.max_abs:.3g} absolute, "
                f"{self.relative:.3g} of its largest value: {verdict}")
        if self.output is not None:
            text += (f"\n  {self.output.worst}: {self.output.max_abs:.3g} absolute, "
                     f"{self.output.relative:.3g} of its largest value")
        return text


def _worse(relative: float, than: float) -> bool:
    """NaN is the worst difference: no later output may replace it."""
    return not math.isnan(than) and (math.isnan(relative) or relative > than)


def compare(pairs: Sequence[Tuple[str, np.ndarray, np.ndarray]], runtime: str, inputs: int) -> CheckResult:
    """Compare (name, reference, folded) outputs; the result is the worst of them."""
    worst = None
    for name, reference, folded in pairs:
        reference = np.asarray(reference, dtype=np.float64)
        diff = float(np.abs(reference - np.asarray(folded, dtype=np.float64)).max(initial=0.0))
        magnitude = float(np.abs(reference).max(initial=0.0))
        result = CheckResult(runtime, inputs, len(pairs), name, diff, magnitude)
        if worst is None or _worse(result.relative, worst.relative):
            worst = result
    if worst is None:
        raise ValueError("no outputs to compare")
    return worst


def output_paths(output: Sequence[str], suffixes: Tuple[str, str]) -> List[Path]:
    """``-o OUT`` -> [OUT + suffixes[0], OUT + suffixes[1]] (a suffix given in OUT is
    dropped first); or an explicit pair, in either order."""
    if len(output) == 1:
        base = Path(output[0])
        if base.suffix in suffixes:
            base = base.with_suffix("")
        return [base.with_name(base.name + suffix) for suffix in suffixes]
    paths = [Path(p) for p in output]
    if paths[0].suffix == suffixes[1] and paths[1].suffix != suffixes[1]:
        paths.reverse()
    return paths
