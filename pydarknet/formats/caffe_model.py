"""A Caffe network (prototxt structure + caffemodel blobs) as a ModelGraph: the Caffe
front end of the converter. One node per layer of the network Caffe builds for
inference (phase TEST); each version of an in-place blob gets its own tensor name (the
last version keeps the blob's name, as Caffe and OpenCV report it)."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from ..errors import CaffeError
from .caffe import blob_array
from .caffe_graph import Graph, bn_statistics, input_shape
from .model_graph import ModelGraph, Node

TRAINING_ONLY = "a data, loss or accuracy layer of a training network; convert the deploy prototxt"


class _Unsupported(Exception):
    pass


def _pair(params, name: str, default: int) -> Tuple[int, int]:
    """(h, w) of a Convolution/Pooling size field ``name`` (kernel, pad, stride): the
    name_h/name_w pair, else the one value (repeated in ConvolutionParameter: one
    value, or one per axis), else ``default``."""
    if params.HasField(f"{name}_h") or params.HasField(f"{name}_w"):
        return getattr(params, f"{name}_h"), getattr(params, f"{name}_w")
    single = "kernel_size" if name == "kernel" else name
    value = getattr(params, single)
    if isinstance(value, int):  # PoolingParameter: one optional field
        return (value, value) if params.HasField(single) else (default, default)
    values = list(value) or [default]
    if len(values) > 2:
        raise _Unsupported(f"{name} has {len(values)} values: only 2-D layers convert")
    return values[0], values[-1]


def _blobs(blobs, layer, count: int) -> List[np.ndarray]:
    found = blobs.get(layer.name, [])
    if len(found) < count:
        raise _Unsupported(f"the caffemodel has {len(found)} blobs for it, {count} needed")
    return [blob_array(b) for b in found]


def _convolution(layer, blobs) -> Tuple[str, dict, dict]:
    p = layer.convolution_param
    if p.axis != 1:
        raise _Unsupported(f"axis {p.axis}: only axis 1 (channels)")
    dilation = list(p.dilation) or [1]
    pad = _pair(p, "pad", 0)
    attrs = {"kernel": _pair(p, "kernel", 1), "stride": _pair(p, "stride", 1), "pads": pad + pad,
             "dilation": (dilation[0], dilation[-1]), "group": p.group, "output_padding": (0, 0)}
    arrays = _blobs(blobs, layer, 2 if p.bias_term else 1)
    deconv = layer.type == "Deconvolution"
    kernel, out = attrs["kernel"], p.num_output
    try:  # deconvolution weights are (C_in, C_out / group, kh, kw)
        weight = arrays[0].reshape((-1, out // max(p.group, 1), *kernel) if deconv else (out, -1, *kernel))
    except ValueError:
        raise CaffeError(f"{layer.type} '{layer.name}': weights have shape {arrays[0].shape}, which does not fit "
                         f"num_output {out} and kernel {kernel[0]}x{kernel[1]}; the caffemodel does not belong "
                         "to this prototxt") from None
    return ("deconv" if deconv else "conv"), attrs, {"weight": weight,
                                                     "bias": arrays[1].ravel() if p.bias_term else None}


def _innerproduct(layer, blobs):
    p = layer.inner_product_param
    if p.axis != 1:
        raise _Unsupported(f"axis {p.axis}: only axis 1")
    arrays = _blobs(blobs, layer, 2 if p.bias_term else 1)
    weight = arrays[0]
    if weight.size % max(p.num_output, 1):
        raise CaffeError(f"InnerProduct '{layer.name}': weights have {weight.size} values, not a multiple of "
                         f"num_output {p.num_output}")
    weight = weight.reshape(-1, p.num_output).T if p.transpose else weight.reshape(p.num_output, -1)
    return "dense", {}, {"weight": weight, "bias": arrays[1].ravel() if p.bias_term else None}


def _batchnorm(layer, blobs):
    p = layer.batch_norm_param
    if len(blobs.get(layer.name, [])) < 3:
        raise _Unsupported("the caffemodel has no mean/variance/factor blobs for it")
    mean, variance = bn_statistics(layer, _blobs(blobs, layer, 3))
    attrs = {"eps": p.eps, "batch_statistics": p.HasField("use_global_stats") and not p.use_global_stats}
    return "batchnorm", attrs, {"mean": mean, "variance": variance, "gamma": np.ones(mean.size),
                                "beta": np.zeros(mean.size)}


def _scale(layer, blobs):
    p = layer.scale_param
    if len(layer.bottom) != 1:
        raise _Unsupported("multiplies by a second bottom, not a learned parameter")
    if p.axis != 1 or p.num_axes != 1:
        raise _Unsupported("has axis/num_axes other than 1/1: only a per-channel Scale maps")
    arrays = _blobs(blobs, layer, 2 if p.bias_term else 1)
    gamma = arrays[0].astype(np.float64).ravel()
    beta = arrays[1].astype(np.float64).ravel() if p.bias_term else np.zeros(gamma.size)
    if beta.size != gamma.size:
        raise CaffeError(f"Scale '{layer.name}': {gamma.size} scales but {beta.size} biases")
    return "affine", {}, {"scale": gamma, "bias": beta}


def _relu(layer, blobs):
    slope = layer.relu_param.negative_slope
    return ("relu", {}, {}) if slope == 0 else ("leaky", {"slope": slope}, {})


def _prelu(layer, blobs):
    (slope,) = _blobs(blobs, layer, 1)[:1]
    return "prelu", {}, {"slope": slope.astype(np.float64).ravel()}


def _pooling(layer, blobs):
    p = layer.pooling_param
    op = {0: "maxpool", 1: "avgpool"}.get(p.pool)
    if op is None:
        raise _Unsupported("STOCHASTIC pooling has no Darknet equivalent")
    if p.global_pooling:
        return f"global_{op}", {}, {}
    pad = _pair(p, "pad", 0)
    return op, {"kernel": _pair(p, "kernel", 0), "stride": _pair(p, "stride", 1), "pads": pad + pad,
                "ceil": p.round_mode == 0, "clip_padded_only": True, "count_include_pad": True}, {}


def _eltwise(layer, blobs):
    p = layer.eltwise_param
    if p.operation != 1:
        raise _Unsupported(f"{('PROD', 'SUM', 'MAX')[p.operation]}: only SUM maps to Darknet ([shortcut])")
    coeffs = list(p.coeff) or [1.0] * len(layer.bottom)
    if len(coeffs) != len(layer.bottom):
        raise CaffeError(f"Eltwise '{layer.name}': {len(coeffs)} coeffs for {len(layer.bottom)} bottoms")
    return "add", {"coeffs": coeffs}, {}


def _concat(layer, blobs):
    p = layer.concat_param
    return "concat", {"axis": p.concat_dim if p.HasField("concat_dim") and not p.HasField("axis") else p.axis}, {}


# the op a layer type becomes whatever its fields (so that a layer that cannot be used
# stays recognizable: see "unusable" in model_graph.py)
KNOWN_OPS = {"Convolution": "conv", "Deconvolution": "deconv", "InnerProduct": "dense", "BatchNorm": "batchnorm",
             "Scale": "affine"}
# Caffe layer type -> how it becomes a node: an op name, or a function returning (op, attrs, params)
LAYERS = {
    "Input": "identity", "Dropout": "identity", "Split": "identity", "Sigmoid": "sigmoid", "TanH": "tanh",
    "Convolution": _convolution, "Deconvolution": _convolution, "InnerProduct": _innerproduct,
    "BatchNorm": _batchnorm, "Scale": _scale, "ReLU": _relu, "PReLU": _prelu, "Pooling": _pooling,
    "Eltwise": _eltwise,
    "Concat": _concat,
    "Flatten": lambda layer, blobs: ("flatten", {"axis": layer.flatten_param.axis,
                                                 "end_axis": layer.flatten_param.end_axis}, {}),
    "Softmax": lambda layer, blobs: ("softmax", {"axis": layer.softmax_param.axis, "whole": False}, {}),
}


def _preprocessing(net) -> Tuple[dict, List[str]]:
    """What the prototxt says about input preprocessing (a data layer's transform_param,
    any phase), else Caffe's conventions; and notes on what cannot be applied."""
    found = {"channel_order": "BGR", "pixel_range": 255.0, "resize": "stretch",
             "stated_by": "Caffe's conventions (BGR, 0-255): the prototxt states no mean or scale; pass "
                          "--mean/--scale/--rgb if the model was trained with them"}
    notes = []
    for layer in net.layer:
        if layer.HasField("transform_param"):
            t = layer.transform_param
            found.update({"mean": list(t.mean_value) or [0.0], "scale": [t.scale],
                          "stated_by": f"the transform_param of layer '{layer.name}' in the prototxt"})
            if t.mean_file:
                notes.append(f"the prototxt subtracts a per-pixel mean image ({t.mean_file}), which is not "
                             "applied: pass its per-channel average as --mean")
            if t.crop_size:
                notes.append(f"the model was trained on {t.crop_size}x{t.crop_size} crops; images are stretched "
                             "to the input size")
            break
    return found, notes


def model_graph(net, blobs: Dict[str, list]) -> ModelGraph:
    """The graph of ``net`` (a NetParameter) with the arrays in ``blobs`` (layer name ->
    BlobProtos). Layers that cannot be expressed become ``unsupported`` nodes."""
    graph = Graph.build(net)
    inputs = list(net.input) + [layer.top[0] for layer in graph.layers if layer.type == "Input" and layer.top]
    last = {name: position for position, layer in enumerate(graph.layers) for name in layer.top}
    for name in net.input:
        last.setdefault(name, -1)
    input_layer = {layer.top[0]: p for p, layer in enumerate(graph.layers) if layer.type == "Input" and layer.top}

    def tensor(version: Tuple[int, str]) -> str:
        position, name = version
        return name if last.get(name) == position else f"{name}@{'input' if position < 0 else position}"

    nodes = []
    for position, layer in enumerate(graph.layers):
        outputs = [tensor((position, name)) for name in layer.top]
        if layer.type == "Input":
            continue
        reads = [tensor(version) for version in graph.reads[position]]
        make = LAYERS.get(layer.type)
        try:
            if make is None:
                raise _Unsupported(TRAINING_ONLY if layer.type.endswith(("Data", "Loss")) or layer.type == "Accuracy"
                                   else "no Darknet equivalent is implemented")
            op, attrs, params = (make, {}, {}) if isinstance(make, str) else make(layer, blobs)
        except _Unsupported as e:
            known = KNOWN_OPS.get(layer.type)
            op, attrs, params = (known, {"unusable": str(e)}, {}) if known else ("unsupported", {"reason": str(e)}, {})
        nodes.append(Node(op, layer.name, layer.type, reads, outputs, attrs, params, origin=position))
    shape = None
    try:
        shape = tuple(input_shape(net)[1:])
    except CaffeError:
        pass
    preprocessing, notes = _preprocessing(net)
    output = tensor((len(graph.layers) - 1, graph.layers[-1].top[0])) if graph.layers and graph.layers[-1].top \
        else ""
    inputs = [tensor((input_layer.get(name, -1), name)) for name in inputs]
    return ModelGraph(nodes, inputs, shape, output, "Caffe", CaffeError, preprocessing, notes)
