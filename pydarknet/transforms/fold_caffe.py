"""Fold BatchNorm (+ Scale) in Caffe files: prototxt + caffemodel in, both out.

Folding is decided from the graph of the network Caffe builds for inference (phase
TEST), not from adjacency in the file: a BatchNorm folds into the Convolution,
Deconvolution or InnerProduct that produces its bottom when nothing else reads that
output (in-place layers are followed blob version by blob version); a Scale folds
too when it alone reads the BatchNorm's output. Anything else stays, with a reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np

from ..errors import CaffeError
from ..formats.caffe import (blob_array, blobs_by_layer, messages, read_caffemodel, read_prototxt, set_blob,
                             write_model)
from ..formats.caffe_graph import Graph, bn_statistics, describe, input_shape, with_blobs
from . import folding
from .opencv_reference import opencv_errors, opencv_net

PathLike = Union[str, "os.PathLike[str]"]
PRODUCERS = ("Convolution", "Deconvolution", "InnerProduct")


def _scale_outputs(producer, weights: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``producer``'s weight blob with each output channel's weights times k."""
    if producer.type == "InnerProduct":  # (N, K), or (K, N) with transpose; maybe legacy 4-D
        transposed = producer.inner_product_param.transpose
        flat = weights.reshape(-1, k.size) if transposed else weights.reshape(k.size, -1)
        return folding.scale_outputs(flat, k, "dense_transposed" if transposed else "dense").reshape(weights.shape)
    if producer.type == "Convolution":
        return folding.scale_outputs(weights, k, "conv")
    return folding.scale_outputs(weights, k, "deconv", producer.convolution_param.group)


def _output_channels(producer, weights: np.ndarray) -> int:
    """How many output channels ``producer``'s weight blob has."""
    if producer.type == "InnerProduct":  # (N, K) or, transposed, (K, N); maybe legacy 4-D
        return weights.shape[-1] if producer.inner_product_param.transpose else weights.shape[-2]
    if producer.type == "Convolution":
        return weights.shape[0]
    return weights.shape[1] * producer.convolution_param.group


def _check_sizes(producer, weights: np.ndarray, bias: Optional[np.ndarray], bn, channels: int) -> None:
    """The blobs must agree with each other before any arithmetic on them."""
    params = producer.inner_product_param if producer.type == "InnerProduct" else producer.convolution_param
    found = _output_channels(producer, weights) if weights.ndim >= 2 else None
    if found != channels or params.num_output != channels or (bias is not None and bias.size != channels):
        raise CaffeError(f"{describe(bn)} has {channels} channels but {describe(producer)} has num_output "
                         f"{params.num_output}, weights {weights.shape} and "
                         f"{'no bias' if bias is None else f'{bias.size} biases'}; "
                         "the caffemodel does not belong to this prototxt")


def _why_not(graph: Graph, bn_position: int, blobs) -> Tuple[Optional[str], Optional[int]]:
    """(reason it cannot fold, None) or (None, producer position)."""
    bn = graph.layers[bn_position]
    if len(bn.bottom) != 1 or len(bn.top) != 1:
        return "it has more than one bottom or top", None
    if bn.batch_norm_param.HasField("use_global_stats") and not bn.batch_norm_param.use_global_stats:
        return "use_global_stats is false, so it normalizes with batch statistics at test time", None
    if bn.name not in blobs or len(blobs[bn.name]) < 3:
        return "the caffemodel has no mean/variance/factor blobs for it", None
    producer, _ = graph.reads[bn_position][0]
    if producer < 0:
        return f"its bottom '{bn.bottom[0]}' is a network input", None
    layer = graph.layers[producer]
    if layer.type not in PRODUCERS:
        return f"its bottom '{bn.bottom[0]}' comes from {describe(layer)}, not a {'/'.join(PRODUCERS)}", None
    if len(layer.top) != 1:
        return f"{describe(layer)} has more than one top", None
    if graph.only_reader(producer) != bn_position:
        others = [repr(graph.layers[p].name) for p in graph.readers[(producer, layer.top[0])] if p != bn_position]
        return f"the output of {describe(layer)} is also read by {', '.join(others)}", None
    if layer.name not in blobs:
        return f"the caffemodel has no weights for {describe(layer)}", None
    axis = layer.inner_product_param.axis if layer.type == "InnerProduct" else layer.convolution_param.axis
    if axis != 1:
        return f"{describe(layer)} has axis {axis}; only axis 1 (channels) folds", None
    return None, producer


def _foldable_scale(graph: Graph, bn_position: int, blobs, channels: int) -> Tuple[Optional[int], Optional[str]]:
    """(position of a Scale that folds too, None) or (None, why a following Scale stays)."""
    reader = graph.only_reader(bn_position)
    if reader is None or graph.layers[reader].type != "Scale":
        return None, None
    scale = graph.layers[reader]
    if len(scale.bottom) != 1:
        return None, f"{describe(scale)} multiplies by a second bottom, not a learned parameter"
    if scale.scale_param.axis != 1 or scale.scale_param.num_axes != 1:
        return None, f"{describe(scale)} has axis/num_axes other than 1/1"
    expected = 2 if scale.scale_param.bias_term else 1
    if scale.name not in blobs or len(blobs[scale.name]) < expected:
        return None, f"the caffemodel has no parameters for {describe(scale)}"
    if any(blob_array(b).size != channels for b in blobs[scale.name][:expected]):
        return None, f"{describe(scale)} parameters do not have one value per channel"
    return reader, None


def _renames_safely(graph: Graph, producer: int, last: int) -> Optional[str]:
    """A reason the producer cannot take the name of the last folded layer's top."""
    old, new = graph.layers[producer].top[0], graph.layers[last].top[0]
    if old == new:
        return None
    for position in range(producer + 1, last):
        layer = graph.layers[position]
        if new in layer.bottom or new in layer.top:
            return f"the folded output would be renamed '{new}', which {describe(layer)} in between uses"
    return None


@dataclass
class FoldPlan:
    """One BatchNorm (and maybe the Scale after it) that folds into ``producer``
    (positions in the Graph), with the statistics Caffe uses, in float64."""

    producer: int
    bn: int
    scale: Optional[int]
    weight: np.ndarray  # the producer's blobs, as read
    bias: Optional[np.ndarray]
    mean: np.ndarray
    variance: np.ndarray
    eps: float
    gamma: np.ndarray
    beta: np.ndarray

    @property
    def last(self) -> int:
        return self.bn if self.scale is None else self.scale


def plan_folds(graph: Graph, blobs) -> Tuple[List[FoldPlan], List[str]]:
    """What folds (checked for consistent blob sizes) and why the rest stays."""
    plans, kept = [], []
    for position, bn in enumerate(graph.layers):
        if bn.type != "BatchNorm":
            continue
        reason, producer = _why_not(graph, position, blobs)
        if reason is None:
            mean, variance = bn_statistics(bn, [blob_array(b) for b in blobs[bn.name]])
            scale_at, scale_reason = _foldable_scale(graph, position, blobs, mean.size)
            reason = _renames_safely(graph, producer, position if scale_at is None else scale_at)
        if reason is not None:
            kept.append(f"{describe(bn)} stays: {reason}")
            continue
        layer = graph.layers[producer]
        layer_blobs = blobs[layer.name]
        weight = blob_array(layer_blobs[0])
        bias = blob_array(layer_blobs[1]).ravel() if len(layer_blobs) > 1 else None
        _check_sizes(layer, weight, bias, bn, mean.size)
        gamma, beta = np.ones(mean.size), np.zeros(mean.size)
        if scale_at is not None:
            scale = graph.layers[scale_at]
            gamma = blob_array(blobs[scale.name][0]).ravel().astype(np.float64)
            if scale.scale_param.bias_term:
                beta = blob_array(blobs[scale.name][1]).ravel().astype(np.float64)
        elif scale_reason:
            kept.append(f"{scale_reason}; it stays after {describe(layer)}")
        plans.append(FoldPlan(producer, position, scale_at, weight, bias, mean, variance, bn.batch_norm_param.eps,
                              gamma, beta))
    return plans, kept


def absorbed(graph: Graph, plan: FoldPlan) -> str:
    """"BatchNorm 'x' + Scale 'y'" for reports."""
    names = describe(graph.layers[plan.bn])
    return names + (f" + {describe(graph.layers[plan.scale])}" if plan.scale is not None else "")


def fold_net(structure, weights) -> Tuple[object, folding.FoldReport]:
    """The folded network (structure with blobs attached, ready to write as both
    prototxt and caffemodel) and the report."""
    blobs = {name: list(found) for name, found in blobs_by_layer(weights).items()}  # edited in place
    graph = Graph.build(structure)
    plans, kept = plan_folds(graph, blobs)
    report = folding.FoldReport(kept=kept)
    removed = set()  # net.layer positions of the BN/Scale layers folded away
    for plan in plans:
        layer = graph.layers[plan.producer]
        layer_blobs = blobs[layer.name]
        k, new_bias = folding.fold_factors(plan.mean, folding.caffe_denominator(plan.variance, plan.eps),
                                           plan.gamma, plan.beta, plan.bias)
        set_blob(layer_blobs[0], _scale_outputs(layer, plan.weight, k))
        if plan.bias is None:
            layer_blobs.append(messages().BlobProto())
            params = layer.inner_product_param if layer.type == "InnerProduct" else layer.convolution_param
            params.bias_term = True
        set_blob(layer_blobs[1], new_bias.astype(np.float32))
        layer.top[0] = graph.layers[plan.last].top[0]
        removed.update(graph.indices[p] for p in (plan.bn, plan.scale) if p is not None)
        report.folded.append(f"{absorbed(graph, plan)} into {describe(layer)} ({plan.mean.size} channels)")
    return with_blobs(structure, blobs, removed), report


def fold(prototxt: PathLike, caffemodel: PathLike, out_prototxt: PathLike,
         out_caffemodel: PathLike) -> folding.FoldReport:
    """Write the folded ``out_prototxt`` (text, blobs left out) and ``out_caffemodel``."""
    structure = read_prototxt(prototxt)
    weights = read_caffemodel(caffemodel)
    try:
        folded, report = fold_net(structure, weights)
    except CaffeError as e:
        raise CaffeError(e.message, file=e.file or os.fspath(caffemodel)) from None
    write_model(folded, out_prototxt, out_caffemodel, inputs=(prototxt, caffemodel))
    report.outputs = [os.fspath(out_prototxt), os.fspath(out_caffemodel)]
    return report


def check(prototxt_a: PathLike, caffemodel_a: PathLike, prototxt_b: PathLike, caffemodel_b: PathLike,
          inputs: int = 2, seed: int = 0) -> folding.CheckResult:
    """Run both models on the same random inputs with OpenCV DNN (a Caffe runtime
    independent of this code) and compare their outputs."""
    shape = input_shape(read_prototxt(prototxt_a))
    x = np.random.default_rng(seed).random((inputs, *shape[1:]), dtype=np.float32)
    outputs = []
    for prototxt, caffemodel in ((prototxt_a, caffemodel_a), (prototxt_b, caffemodel_b)):
        with opencv_errors(prototxt):
            cv2, net = opencv_net(prototxt, caffemodel, x)
            names = net.getUnconnectedOutLayersNames()
            outputs.append((names, net.forward(names)))
    (names, reference), (_, folded) = outputs
    pairs = [(f"output '{name}'", ref, out) for name, ref, out in zip(names, reference, folded)]
    return folding.compare(pairs, f"OpenCV DNN {cv2.__version__}", inputs)


