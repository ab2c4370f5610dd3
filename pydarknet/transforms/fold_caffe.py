"""Fold BatchNorm (+ Scale) in Caffe files: prototxt + caffemodel in, both out.

Folding is decided on the graph of the network Caffe builds for inference (phase
TEST; formats/caffe_model.py), not from adjacency in the file, by the planner the
converters use (bn_folds.py): a BatchNorm folds into the Convolution, Deconvolution or
InnerProduct that produces its bottom when nothing else reads that output (in-place
layers are followed blob version by blob version); a Scale folds too when it alone
reads the BatchNorm's output. Anything else stays, with a reason.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np

from ..errors import CaffeError
from ..formats.caffe import (blob_array, blobs_by_layer, messages, read_caffemodel, read_prototxt, set_blob,
                             write_model)
from ..formats.caffe_graph import Graph, describe, input_shape, with_blobs
from ..formats.caffe_model import model_graph
from . import folding
from .bn_folds import plan_folds
from .opencv_reference import opencv_errors, opencv_net

PathLike = Union[str, "os.PathLike[str]"]


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


def fold_net(structure, weights) -> Tuple[object, folding.FoldReport]:
    """The folded network (structure with blobs attached, ready to write as both
    prototxt and caffemodel) and the report. What folds is decided on the network's
    model graph by the planner the converters use (bn_folds.py)."""
    blobs = {name: list(found) for name, found in blobs_by_layer(weights).items()}  # edited in place
    graph = Graph.build(structure)
    model = model_graph(structure, blobs)
    plans, kept = plan_folds(model)
    report = folding.FoldReport(kept=kept)
    removed = set()  # net.layer positions of the BN/Scale layers folded away
    for plan in plans:
        producer, bn, *scale = (model.nodes[p].origin for p in (plan.producer, plan.bn, plan.affine) if p is not None)
        folded = [bn, *scale]
        layer = graph.layers[producer]
        absorbed = " + ".join(describe(graph.layers[p]) for p in folded)
        reason = _renames_safely(graph, producer, folded[-1])
        if reason is not None:
            report.kept.append(f"{absorbed} stays: {reason}")
            continue
        layer_blobs = blobs[layer.name]
        weight = blob_array(layer_blobs[0])
        bias = blob_array(layer_blobs[1]).ravel() if len(layer_blobs) > 1 else None
        _check_sizes(layer, weight, bias, graph.layers[bn], plan.mean.size)
        k, new_bias = folding.fold_factors(plan.mean, folding.caffe_denominator(plan.variance, plan.eps),
                                           plan.gamma, plan.beta, bias)
        set_blob(layer_blobs[0], _scale_outputs(layer, weight, k))
        if bias is None:
            layer_blobs.append(messages().BlobProto())
            params = layer.inner_product_param if layer.type == "InnerProduct" else layer.convolution_param
            params.bias_term = True
        set_blob(layer_blobs[1], new_bias.astype(np.float32))
        layer.top[0] = graph.layers[folded[-1]].top[0]
        removed.update(graph.indices[p] for p in folded)
        report.folded.append(f"{absorbed} into {describe(layer)} ({plan.mean.size} channels)")
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


