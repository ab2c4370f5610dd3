"""Which BatchNorms fold into the layer before them, decided on a model graph: the one
planner of the converters (Caffe and ONNX to Darknet) and of the Caffe folder.

A batchnorm node folds into the convolution, deconvolution or fully connected node
that produces its input when nothing else reads that output; an affine node (Caffe's
Scale) folds too when it alone reads the batchnorm's output. Anything else stays, with
a reason. Folding follows the graph (tensor versions), not the order in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..formats.model_graph import ModelGraph, Node

PRODUCERS = ("conv", "deconv", "dense")


@dataclass
class FoldPlan:
    """A batchnorm node (and maybe the affine node after it) that goes into the
    ``producer`` node: positions in the graph; the statistics and the combined affine
    part (gamma, beta) in float64."""

    producer: int
    bn: int
    affine: Optional[int]
    mean: np.ndarray
    variance: np.ndarray
    eps: float
    gamma: np.ndarray
    beta: np.ndarray

    @property
    def last(self) -> int:
        """The last node folded away (its output is the producer's from now on)."""
        return self.bn if self.affine is None else self.affine


def _why_not(graph: ModelGraph, position: int) -> Tuple[Optional[str], int]:
    """(the reason the batchnorm at ``position`` stays, -1) or (None, its producer)."""
    bn = graph.nodes[position]
    if "unusable" in bn.attrs:
        return bn.attrs["unusable"], -1
    if bn.attrs.get("batch_statistics"):
        return "it normalizes with the batch's own statistics at test time", -1
    producer = graph.producer(bn.inputs[0])
    if producer < 0:
        return f"its input '{bn.inputs[0]}' is the network input", -1
    node = graph.nodes[producer]
    if node.op not in PRODUCERS:
        return f"its input comes from {node.label}, not a convolution or fully connected layer", -1
    if "unusable" in node.attrs:
        return f"{node.label}: {node.attrs['unusable']}", -1
    if len(node.outputs) != 1:
        return f"{node.label} has more than one output", -1
    if graph.only_reader(node.outputs[0]) != position:
        others = [f"'{graph.nodes[p].name}'" for p in graph.readers(node.outputs[0]) if p != position]
        return f"the output of {node.label} is also read by {', '.join(others) or 'the network output'}", -1
    return None, producer


def _following_affine(graph: ModelGraph, bn: Node, channels: int, producer: Node,
                      kept: List[str]) -> Optional[int]:
    """The affine node that folds with ``bn``, or None (saying why a reader stays)."""
    reader = graph.only_reader(bn.outputs[0])
    if reader is None or graph.nodes[reader].op != "affine":
        return None
    affine = graph.nodes[reader]
    if "unusable" in affine.attrs:
        kept.append(f"{affine.label}: {affine.attrs['unusable']}; it stays after {producer.label}")
        return None
    if any(np.asarray(affine.params[k]).size != channels for k in ("scale", "bias")):
        kept.append(f"{affine.label} parameters do not have one value per channel; it stays after {producer.label}")
        return None
    return reader


def plan_folds(graph: ModelGraph) -> Tuple[List[FoldPlan], List[str]]:
    """What folds into the layer before it, and one line per BatchNorm (or Scale) that
    stays, saying why."""
    plans, kept = [], []
    for position, bn in enumerate(graph.nodes):
        if bn.op != "batchnorm":
            continue
        reason, producer = _why_not(graph, position)
        if reason is not None:
            kept.append(f"{bn.label} stays: {reason}")
            continue
        p = {k: np.asarray(v, np.float64).ravel() for k, v in bn.params.items()}
        if len({v.size for v in p.values()}) != 1:
            raise graph.error(f"{bn.label}: mean, variance, scale and bias have different lengths")
        gamma, beta = p["gamma"], p["beta"]
        affine = _following_affine(graph, bn, gamma.size, graph.nodes[producer], kept)
        if affine is not None:
            s, t = (np.asarray(graph.nodes[affine].params[k], np.float64).ravel() for k in ("scale", "bias"))
            gamma, beta = gamma * s, beta * s + t
        plans.append(FoldPlan(producer, position, affine, p["mean"], p["variance"], float(bn.attrs["eps"]),
                              gamma, beta))
    return plans, kept
