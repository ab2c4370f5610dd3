"""A Caffe network as a graph (who reads which version of each blob) and what its
files state (input shape, BatchNorm statistics as Caffe applies them), for the
transforms that fold and convert it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import CaffeError
from .caffe import in_phase, messages


@dataclass
class Graph:
    """Who reads what: blob versions are (producer position, name); position -1 is a
    network input."""

    layers: list  # the TEST-phase layers, in order
    indices: List[int]  # their positions in net.layer
    reads: List[List[Tuple[int, str]]]  # per layer, the versions of its bottoms
    readers: Dict[Tuple[int, str], List[int]]  # version -> positions of its readers

    @classmethod
    def build(cls, net) -> "Graph":
        TEST = messages().NetState().phase
        indices = [i for i, layer in enumerate(net.layer) if in_phase(layer, TEST)]
        layers = [net.layer[i] for i in indices]
        latest: Dict[str, int] = {}
        reads, readers = [], {}
        for position, layer in enumerate(layers):
            versions = [(latest.get(name, -1), name) for name in layer.bottom]
            reads.append(versions)
            for version in versions:
                readers.setdefault(version, []).append(position)
            for name in layer.top:
                latest[name] = position
        return cls(layers, indices, reads, readers)

    def only_reader(self, position: int) -> Optional[int]:
        """The one layer reading the single top of the layer at ``position``, if so."""
        layer = self.layers[position]
        if len(layer.top) != 1:
            return None
        found = self.readers.get((position, layer.top[0]), [])
        return found[0] if len(found) == 1 else None


def describe(layer) -> str:
    return f"{layer.type} '{layer.name}'"


def input_shape(net) -> Tuple[int, ...]:
    """The first input's shape: from input_shape, input_dim or an Input layer."""
    if net.input_shape:
        return tuple(net.input_shape[0].dim)
    if net.input_dim:
        return tuple(net.input_dim[:4])
    for layer in net.layer:
        if layer.type == "Input" and layer.input_param.shape:
            return tuple(layer.input_param.shape[0].dim)
    raise CaffeError("the prototxt declares no input shape (input_shape, input_dim or an Input layer)")


def bn_statistics(bn, arrays) -> Tuple[np.ndarray, np.ndarray]:
    """mean and variance as Caffe's BatchNorm ``bn`` uses them at test time, from its
    three blobs (accumulated mean and variance, and the moving-average factor)."""
    mean, variance, factor = (np.asarray(a, dtype=np.float64).ravel() for a in arrays[:3])
    if mean.size != variance.size or factor.size != 1:
        raise CaffeError(f"{describe(bn)} has blobs of {mean.size}, {variance.size} and {factor.size} values "
                         "(expected C, C and 1)")
    scale = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    return mean * scale, variance * scale


def with_blobs(structure, blobs, skip=()):
    """A copy of ``structure`` with each layer's blobs attached (layers at net.layer
    positions in ``skip`` left out)."""
    out = messages().NetParameter()
    out.CopyFrom(structure)
    del out.layer[:]
    for index, layer in enumerate(structure.layer):
        if index in skip:
            continue
        copy = out.layer.add()
        copy.CopyFrom(layer)
        del copy.blobs[:]
        copy.blobs.extend(blobs.get(layer.name, []))
    return out
