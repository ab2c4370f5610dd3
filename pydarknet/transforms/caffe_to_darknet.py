"""Caffe -> Darknet: a Caffe network (prototxt + caffemodel) as a Darknet cfg + weights
that the patched runtime runs with the same numbers.

The conversion walks the graph Caffe builds for inference (phase TEST; blob versions
follow in-place layers), so the order of lines in the file does not matter beyond
what Caffe itself requires. Each Caffe layer becomes zero or more Darknet layers;
Darknet layers read the layer before them, so a [route] is inserted whenever a layer's
input is not the previous layer's output, and every route/shortcut index is absolute,
computed after all insertions. Mappings follow shared/docs/formats.md; whatever Darknet
cannot compute exactly is an error naming the layer, never an approximation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import atomic
from ..errors import CaffeError, ConversionError
from ..formats.caffe import blob_array, blobs_by_layer, read_caffemodel, read_prototxt
from ..formats.darknet import CURRENT_HEADER, Weights, cfg_text
from . import folding
from .fold_caffe import (FoldPlan, Graph, bn_statistics, describe, fold_net, input_shape, opencv_errors, opencv_net,
                         plan_folds, with_blobs)

PathLike = Union[str, "os.PathLike[str]"]
Shape = Tuple[int, ...]  # (C, H, W) for maps, (N,) for vectors
# Darknet layers with an activation of their own, which a following ReLU/Sigmoid/TanH joins.
HAS_ACTIVATION = ("convolutional", "deconvolutional", "connected", "shortcut")


class _Unsupported(Exception):
    """One layer that cannot be converted; collected, then reported together."""


class _InputMissing(Exception):
    """A layer downstream of one that could not be converted (not reported again)."""


@dataclass
class DarknetLayer:
    section: str
    options: Dict[str, object]
    params: List[np.ndarray]  # in weights-file order
    shape: Shape  # the output shape the runtime must report
    source: str  # the Caffe layer(s) it comes from


@dataclass
class Blob:
    """Where a Caffe blob version lives in the Darknet network: the output of layer
    ``index`` (-1: the network input). ``exclusive``: nothing else reads that
    Darknet output through another name (so an activation may join the layer)."""

    index: int
    shape: Shape
    exclusive: bool = True


@dataclass
class Conversion:
    """The converted network, and what became of each Caffe layer."""

    layers: List[DarknetLayer]
    input_shape: Shape
    input_name: str
    output_name: str
    mapping: List[dict]
    blob_layers: Dict[str, int]  # Caffe blob (its final version) -> the Darknet layer holding it
    notes: List[str] = field(default_factory=list)
    fold_report: Optional[folding.FoldReport] = None
    verify: Optional[folding.CheckResult] = None
    outputs: List[str] = field(default_factory=list)

    def cfg(self) -> str:
        c, h, w = self.input_shape
        net = {"batch": 1, "width": w, "height": h, "channels": c}
        return cfg_text([("net", net)] + [(layer.section, layer.options) for layer in self.layers])

    def weights(self) -> Weights:
        return Weights(CURRENT_HEADER, [np.concatenate([np.asarray(p, np.float32).ravel() for p in layer.params])
                                        if layer.params else np.zeros(0, np.float32) for layer in self.layers])

    def __str__(self) -> str:
        lines = [f"converted {len(self.mapping)} Caffe layers into {len(self.layers)} Darknet layers"]
        for entry in self.mapping:
            lines.append(f"  {entry['caffe']} ({entry['type']}): {entry['how']}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"wrote {path}" for path in self.outputs]
        if self.verify is not None:
            lines.append(str(self.verify))
        return "\n".join(lines)


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
    return (values[0], values[-1]) if len(values) <= 2 else (-1, -1)


def _square(params, name: str, default: int) -> int:
    h, w = _pair(params, name, default)
    if h != w or h < 0:
        raise _Unsupported(f"{name} {h}x{w}: Darknet has one {name} for both axes")
    return h


def _caffe_pool_size(x: int, k: int, p: int, s: int, ceil: bool) -> int:
    """Caffe's PoolingLayer output size (with its clipping of a window that would
    start in the padding)."""
    span = x + 2 * p - k
    out = (-(-span // s) if ceil else span // s) + 1
    if p > 0 and (out - 1) * s >= x + p:
        out -= 1
    return out


def _activation(layer) -> str:
    if layer.type == "ReLU":
        slope = layer.relu_param.negative_slope
        if slope == 0:
            return "relu"
        if abs(slope - 0.1) < 1e-7:
            return "leaky"
        raise _Unsupported(f"negative_slope {slope:g}: Darknet's leaky slope is fixed at 0.1 (relu is 0)")
    return {"Sigmoid": "logistic", "TanH": "tanh"}[layer.type]


class _Converter:
    def __init__(self, graph: Graph, blobs, plans: Sequence[FoldPlan], shape: Shape, input_name: str):
        self.graph, self.blobs = graph, blobs
        self.plans = {plan.producer: plan for plan in plans}
        self.absorbed = {p: plan for plan in plans for p in (plan.bn, plan.scale) if p is not None}
        self.layers: List[DarknetLayer] = []
        self.where: Dict[Tuple[int, str], Blob] = {(-1, input_name): Blob(-1, shape)}
        self.input_name = input_name
        self.mapping: List[dict] = []
        self.overwritten = set()  # versions whose Darknet layer took an activation after them

    # -- bookkeeping ---------------------------------------------------------------

    def bottom(self, position: int, i: int = 0) -> Blob:
        version = self.graph.reads[position][i]
        if version not in self.where:
            raise _InputMissing(version[1])
        return self.where[version]

    def set_tops(self, position: int, blob: Blob) -> None:
        for name in self.graph.layers[position].top:
            self.where[(position, name)] = blob

    def emit(self, section: str, options: Dict[str, object], params: List[np.ndarray], shape: Shape,
             source: str) -> int:
        self.layers.append(DarknetLayer(section, options, params, shape, source))
        return len(self.layers) - 1

    def read(self, blob: Blob, source: str) -> None:
        """Make ``blob`` the previous layer's output, with a [route] if it is not."""
        if blob.index == len(self.layers) - 1:
            return
        if blob.index < 0:
            raise _Unsupported("it reads the network input after other layers, which Darknet cannot route to")
        self.emit("route", {"layers": blob.index}, [], blob.shape, f"route for {source}")

    def map_shape(self, blob: Blob) -> Shape:
        if len(blob.shape) != 3:
            raise _Unsupported(f"its input has shape {blob.shape}; this layer needs a C x H x W map")
        return blob.shape

    def layer_blobs(self, layer, count: int) -> List[np.ndarray]:
        found = self.blobs.get(layer.name, [])
        if len(found) < count:
            raise _Unsupported(f"the caffemodel has {len(found)} blobs for it, {count} needed")
        return [blob_array(b) for b in found]

    # -- layers --------------------------------------------------------------------

    # Caffe layer types, spelled as Caffe spells them, and the methods that convert them
    HANDLERS = {
        "Input": "_alias", "Dropout": "_alias", "Split": "_alias",
        "Convolution": "_convolution", "Deconvolution": "_convolution", "InnerProduct": "_innerproduct",
        "BatchNorm": "_batchnorm", "Scale": "_scale", "ReLU": "_activation_layer", "Sigmoid": "_activation_layer",
        "TanH": "_activation_layer", "Pooling": "_pooling", "Eltwise": "_eltwise", "Concat": "_concat",
        "Flatten": "_flatten", "Softmax": "_softmax",
    }

    def convert(self, position: int) -> str:
        layer = self.graph.layers[position]
        if position in self.absorbed:
            plan = self.absorbed[position]
            self.set_tops(position, self.where[(plan.producer, self.graph.layers[plan.producer].top[0])])
            return f"batch_normalize=1 in layer {self.where[(position, layer.top[0])].index}"
        handler = getattr(self, self.HANDLERS[layer.type]) if layer.type in self.HANDLERS else None
        if handler is None and (layer.type.endswith(("Data", "Loss")) or layer.type == "Accuracy"):
            raise _Unsupported("a data, loss or accuracy layer of a training network; convert the deploy prototxt")
        if handler is None:
            raise _Unsupported("no Darknet equivalent is implemented")
        return handler(position, layer)

    def _alias(self, position, layer) -> str:
        """Identity at test time: the tops are the bottom (or the network input)."""
        if layer.bottom:
            self.set_tops(position, Blob(self.bottom(position).index, self.bottom(position).shape, exclusive=False))
        else:
            self.set_tops(position, self.where[(-1, self.input_name)])
        return "no layer (identity at test time)"

    def _bn_options(self, position: int, bias: np.ndarray) -> Tuple[Dict, np.ndarray, List[np.ndarray]]:
        """batch_normalize, the biases and the BN floats of a producer: its own bias
        and no BN floats, unless a BatchNorm is kept in it (--keep-bn)."""
        plan = self.plans.get(position)
        if plan is None:
            return {"batch_normalize": 0}, bias, []
        # Darknet CPU: scales * (x - mean') / (sqrt(var') + 1e-6) + biases, with x without bias
        variance = (np.sqrt(plan.variance + plan.eps) - folding.CPU_EPSILON) ** 2
        return {"batch_normalize": 1}, plan.beta, [plan.gamma, plan.mean - bias, variance]

    def _convolution(self, position, layer) -> str:
        p = layer.convolution_param
        if any(d != 1 for d in p.dilation):
            raise _Unsupported(f"dilation {list(p.dilation)}: this Darknet has no dilated convolution")
        if p.axis != 1:
            raise _Unsupported(f"axis {p.axis}: only axis 1 (channels)")
        size, stride, pad = _square(p, "kernel", 1), _square(p, "stride", 1), _square(p, "pad", 0)
        blob = self.bottom(position)
        c, h, w = self.map_shape(blob)
        deconv = layer.type == "Deconvolution"
        if deconv and p.group != 1:
            raise _Unsupported(f"group {p.group}: Darknet's deconvolutional layer has no groups")
        arrays = self.layer_blobs(layer, 2 if p.bias_term else 1)
        weights = arrays[0]
        expected = (c, p.num_output, size, size) if deconv else (p.num_output, c // max(p.group, 1), size, size)
        if weights.size != int(np.prod(expected)) or c % p.group:
            raise CaffeError(f"{describe(layer)}: weights have shape {weights.shape}, the prototxt implies {expected}")
        bn_options, biases, bn_params = self._bn_options(
            position, arrays[1].ravel() if p.bias_term else np.zeros(p.num_output))
        if deconv:
            out = (p.num_output, stride * (h - 1) + size - 2 * pad, stride * (w - 1) + size - 2 * pad)
        else:
            out = (p.num_output, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
        options = {"filters": p.num_output, "size": size, "stride": stride, "padding": pad}
        if p.group != 1:
            options["groups"] = p.group
        options.update(bn_options)
        options["activation"] = "linear"
        self.read(blob, describe(layer))
        index = self.emit("deconvolutional" if deconv else "convolutional", options,
                          [biases, *bn_params, weights], out, describe(layer))
        self.set_tops(position, Blob(index, out))
        return f"layer {index} [{self.layers[index].section}]"

    def _innerproduct(self, position, layer) -> str:
        p = layer.inner_product_param
        if p.axis != 1:
            raise _Unsupported(f"axis {p.axis}: only axis 1")
        blob = self.bottom(position)
        inputs = int(np.prod(blob.shape))
        arrays = self.layer_blobs(layer, 2 if p.bias_term else 1)
        weights = arrays[0]
        if weights.size != p.num_output * inputs:
            raise CaffeError(f"{describe(layer)}: weights have {weights.size} values, the prototxt implies "
                             f"{p.num_output} x {inputs}")
        weights = weights.reshape(inputs, p.num_output).T if p.transpose else weights.reshape(p.num_output, inputs)
        bn_options, biases, bn_params = self._bn_options(
            position, arrays[1].ravel() if p.bias_term else np.zeros(p.num_output))
        self.read(blob, describe(layer))
        options = {"output": p.num_output, **bn_options, "activation": "linear"}
        index = self.emit("connected", options, [biases, weights, *bn_params], (p.num_output,), describe(layer))
        self.set_tops(position, Blob(index, (p.num_output,)))
        return f"layer {index} [connected]"

    def _channel_affine(self, position, layer, k: np.ndarray, shift: np.ndarray) -> str:
        """y = k x + shift per channel, as a depthwise 1x1 [convolutional] (exact)."""
        blob = self.bottom(position)
        channels = blob.shape[0]
        if k.size != channels or shift.size != channels:
            raise CaffeError(f"{describe(layer)}: {k.size} values for {channels} channels")
        self.read(blob, describe(layer))
        options = {"filters": channels, "size": 1, "stride": 1, "padding": 0, "groups": channels,
                   "batch_normalize": 0, "activation": "linear"}
        index = self.emit("convolutional", options, [shift, k], blob.shape, describe(layer))
        self.set_tops(position, Blob(index, blob.shape))
        return f"layer {index} [convolutional] (depthwise 1x1: the per-channel affine map)"

    def _batchnorm(self, position, layer) -> str:
        if layer.batch_norm_param.HasField("use_global_stats") and not layer.batch_norm_param.use_global_stats:
            raise _Unsupported("use_global_stats is false: it normalizes with batch statistics")
        mean, variance = bn_statistics(layer, self.layer_blobs(layer, 3))
        k = 1.0 / folding.caffe_denominator(variance, layer.batch_norm_param.eps)
        return self._channel_affine(position, layer, k, -mean * k)

    def _scale(self, position, layer) -> str:
        p = layer.scale_param
        if len(layer.bottom) != 1 or p.axis != 1 or p.num_axes != 1:
            raise _Unsupported("only a learned per-channel Scale (one bottom, axis 1, num_axes 1)")
        arrays = self.layer_blobs(layer, 2 if p.bias_term else 1)
        gamma = arrays[0].astype(np.float64).ravel()
        beta = arrays[1].astype(np.float64).ravel() if p.bias_term else np.zeros(gamma.size)
        return self._channel_affine(position, layer, gamma, beta)

    def _activation_layer(self, position, layer) -> str:
        activation = _activation(layer)
        blob = self.bottom(position)
        version = self.graph.reads[position][0]
        last = self.layers[-1] if self.layers else None
        if (blob.exclusive and blob.index == len(self.layers) - 1 and last is not None
                and last.section in HAS_ACTIVATION and last.options.get("activation") == "linear"
                and self.graph.readers.get(version) == [position]):
            last.options["activation"] = activation
            last.source += f" + {describe(layer)}"
            self.overwritten.add(version)
            self.set_tops(position, blob)
            return f"activation={activation} of layer {blob.index}"
        self.read(blob, describe(layer))
        index = self.emit("activation", {"activation": activation}, [], blob.shape, describe(layer))
        self.set_tops(position, Blob(index, blob.shape))
        return f"layer {index} [activation]"

    def _pooling(self, position, layer) -> str:
        p = layer.pooling_param
        blob = self.bottom(position)
        c, h, w = self.map_shape(blob)
        pool = {0: "MAX", 1: "AVE"}.get(p.pool)
        if pool is None:
            raise _Unsupported("STOCHASTIC pooling has no Darknet equivalent")
        self.read(blob, describe(layer))
        if p.global_pooling:
            if pool == "AVE":
                index = self.emit("avgpool", {}, [], (c, 1, 1), describe(layer))
            elif h == w:
                index = self.emit("maxpool", {"size": h, "stride": 1, "padding": 0}, [], (c, 1, 1), describe(layer))
            else:
                raise _Unsupported(f"global MAX pooling of a {h}x{w} map: Darknet's maxpool windows are square")
            self.set_tops(position, Blob(index, (c, 1, 1)))
            return f"layer {index} [{self.layers[index].section}] (global)"
        size, stride, pad = _square(p, "kernel", 0), _square(p, "stride", 1), _square(p, "pad", 0)
        ceil = p.round_mode == 0
        out = (c, _caffe_pool_size(h, size, pad, stride, ceil), _caffe_pool_size(w, size, pad, stride, ceil))
        if pool == "MAX":
            # Darknet: padding P in total, windows from -P/2, out = (x + P - size)/stride + 1
            for extra in (0, 1):
                padding = 2 * pad + extra
                if all((x + padding - size) // stride + 1 == o for x, o in ((h, out[1]), (w, out[2]))):
                    index = self.emit("maxpool", {"size": size, "stride": stride, "padding": padding}, [], out,
                                      describe(layer))
                    self.set_tops(position, Blob(index, out))
                    return f"layer {index} [maxpool] padding={padding}"
            raise _Unsupported(f"Caffe's {'ceil' if ceil else 'floor'}-rounded output {out[1]}x{out[2]} "
                               f"(kernel {size}, stride {stride}, pad {pad}) needs a window overhang that "
                               "Darknet's maxpool cannot express")
        conv_out = ((h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
        overhang = any((o - 1) * stride - pad + size > x + pad for x, o in ((h, out[1]), (w, out[2])))
        if conv_out != out[1:] or overhang:
            raise _Unsupported(f"AVE pooling (kernel {size}, stride {stride}, pad {pad}) on {h}x{w} has windows "
                               "cut by the padded border, whose divisor Darknet cannot reproduce")
        options = {"filters": c, "size": size, "stride": stride, "padding": pad, "groups": c,
                   "batch_normalize": 0, "activation": "linear"}
        weights = np.full((c, 1, size, size), 1.0 / (size * size))
        index = self.emit("convolutional", options, [np.zeros(c), weights], out, describe(layer))
        self.set_tops(position, Blob(index, out))
        return f"layer {index} [convolutional] (depthwise, weights 1/{size * size}: the average)"

    def _eltwise(self, position, layer) -> str:
        p = layer.eltwise_param
        if p.operation != 1:
            raise _Unsupported(f"{('PROD', 'SUM', 'MAX')[p.operation]}: only SUM maps to Darknet ([shortcut])")
        inputs = [self.bottom(position, i) for i in range(len(layer.bottom))]
        coeffs = list(p.coeff) or [1.0] * len(inputs)
        if len(coeffs) != len(inputs) or len({b.shape for b in inputs}) != 1:
            raise CaffeError(f"{describe(layer)}: bottoms of different shapes or a coeff count that does not fit")
        if any(b.index < 0 for b in inputs):
            raise _Unsupported("a bottom is the network input, which [shortcut] cannot read")
        order = list(range(len(inputs)))
        first = next((i for i in order if inputs[i].index == len(self.layers) - 1), None)
        if first is None:
            first = 0
            self.read(inputs[0], describe(layer))
        order.remove(first)
        alpha = coeffs[first]
        for i in order:
            index = self.emit("shortcut", {"from": inputs[i].index, "alpha": repr(float(alpha)),
                                           "beta": repr(float(coeffs[i])), "activation": "linear"},
                              [], inputs[0].shape, describe(layer))
            alpha = 1.0
        self.set_tops(position, Blob(index, inputs[0].shape))
        first_index = index - len(order) + 1
        return f"layer {index} [shortcut]" if len(order) == 1 else f"layers {first_index}..{index} [shortcut]"

    def _concat(self, position, layer) -> str:
        p = layer.concat_param
        inputs = [self.bottom(position, i) for i in range(len(layer.bottom))]
        axis = p.concat_dim if p.HasField("concat_dim") and not p.HasField("axis") else p.axis
        if axis < 0:
            axis += len(inputs[0].shape) + 1  # counting the batch axis
        if axis != 1:
            raise _Unsupported(f"axis {axis}: only channel concatenation (axis 1) maps to [route]")
        if len({b.shape[1:] for b in inputs}) != 1:
            raise CaffeError(f"{describe(layer)}: bottoms differ in size: {[b.shape for b in inputs]}")
        if any(b.index < 0 for b in inputs):
            raise _Unsupported("a bottom is the network input, which [route] cannot read")
        shape = (sum(b.shape[0] for b in inputs),) + inputs[0].shape[1:]
        index = self.emit("route", {"layers": ",".join(str(b.index) for b in inputs)}, [], shape, describe(layer))
        self.set_tops(position, Blob(index, shape))
        return f"layer {index} [route]"

    def _flatten(self, position, layer) -> str:
        p = layer.flatten_param
        blob = self.bottom(position)
        if p.axis != 1 or p.end_axis != -1:
            raise _Unsupported(f"axis {p.axis}..{p.end_axis}: only axis 1 to the end")
        if len(blob.shape) == 1:
            self.set_tops(position, blob)
            return "no layer (already flat)"
        self.read(blob, describe(layer))
        shape = (int(np.prod(blob.shape)),)
        index = self.emit("flatten", {}, [], shape, describe(layer))
        self.set_tops(position, Blob(index, shape))
        return f"layer {index} [flatten]"

    def _softmax(self, position, layer) -> str:
        blob = self.bottom(position)
        if layer.softmax_param.axis != 1 or int(np.prod(blob.shape[1:])) != 1:
            raise _Unsupported(f"softmax over axis {layer.softmax_param.axis} of {blob.shape}: Darknet's softmax "
                               "runs over the whole vector, so only a C x 1 x 1 or flat input maps")
        self.read(blob, describe(layer))
        index = self.emit("softmax", {"groups": 1}, [], blob.shape, describe(layer))
        self.set_tops(position, Blob(index, blob.shape))
        return f"layer {index} [softmax]"


def _preprocessing(net) -> dict:
    """What the prototxt says about input preprocessing (Caffe data layers'
    transform_param, any phase); Caffe's conventions where it says nothing."""
    found = {"channel_order": "BGR", "value_range": "0-255",
             "note": "Caffe's conventions (images as OpenCV loads them); the prototxt does not state them"}
    for layer in net.layer:
        if layer.HasField("transform_param"):
            t = layer.transform_param
            found.update({"from_layer": layer.name, "scale": t.scale, "mean_value": list(t.mean_value),
                          "mean_file": t.mean_file or None, "crop_size": t.crop_size or None,
                          "order": "subtract mean, then multiply by scale"})
            break
    return found


def convert_net(structure, weights, *, input_shape_chw: Optional[Shape] = None, fold_bn: bool = True) -> Conversion:
    """The conversion of NetParameters (structure from the prototxt, blobs from the
    caffemodel). Raises ConversionError listing every layer that cannot convert."""
    notes = []
    fold_report = None
    if fold_bn:
        net, fold_report = fold_net(structure, weights)
    else:
        net = with_blobs(structure, {name: list(b) for name, b in blobs_by_layer(weights).items()})
    graph = Graph.build(net)
    blobs = blobs_by_layer(net)
    plans = [] if fold_bn else plan_folds(graph, blobs)[0]
    inputs = list(net.input) + [layer.top[0] for layer in graph.layers if layer.type == "Input"]
    if len(inputs) != 1:
        raise ConversionError(f"the network has {len(inputs)} inputs ({', '.join(inputs) or 'none'}); "
                              "Darknet networks have one")
    shape = tuple(input_shape_chw) if input_shape_chw else tuple(input_shape(net)[1:])
    if len(shape) != 3 or min(shape) < 1:
        raise ConversionError(f"input shape {shape}: give C,H,W (--input-shape)")
    converter = _Converter(graph, blobs, plans, shape, inputs[0])
    input_version = next((v for v in graph.readers if v[1] == inputs[0] and
                          (v[0] < 0 or graph.layers[v[0]].type == "Input")), None)
    if input_version is not None and len(graph.readers[input_version]) > 1:
        # Darknet layers cannot route to the network input: an identity layer first
        converter.emit("activation", {"activation": "linear"}, [], shape, "the network input, read by several layers")
        converter.where[(-1, inputs[0])] = Blob(0, shape, exclusive=False)
    unsupported = []
    for position, layer in enumerate(graph.layers):
        try:
            how = converter.convert(position)
        except _Unsupported as e:
            unsupported.append(f"{layer.name} ({layer.type}): {e}")
            continue
        except _InputMissing as e:
            if not unsupported:  # a bottom no layer produces: Caffe would refuse the file too
                raise CaffeError(f"{describe(layer)} reads '{e}', which no layer before it produces") from None
            continue
        top = converter.where.get((position, layer.top[0])) if layer.top else None
        converter.mapping.append({"caffe": layer.name, "type": layer.type, "how": how,
                                  "darknet": top.index if top and top.index >= 0 else None})
    if unsupported:
        raise ConversionError(f"{len(unsupported)} layer(s) cannot be converted:\n  " + "\n  ".join(unsupported))
    if not converter.layers:
        raise ConversionError("the network has no layer that computes anything")
    output = graph.layers[-1].top[0]
    final = converter.where[(len(graph.layers) - 1, output)]
    if final.index != len(converter.layers) - 1:
        converter.read(final, "the network output")
    unread = [top for p, layer in enumerate(graph.layers) for top in layer.top
              if not graph.readers.get((p, top)) and top != output and layer.type != "Input"]
    if unread:
        notes.append(f"other unread blobs ({', '.join(sorted(set(unread)))}) are not outputs of the Darknet model, "
                     f"whose output is '{output}'")
    final = {name: position for position, layer in enumerate(graph.layers) for name in layer.top}
    blob_layers = {}
    for name, position in final.items():
        blob = converter.where.get((position, name))
        # a producer with batch_normalize=1 holds the normalized value, not its own
        if (blob is not None and blob.index >= 0 and position not in converter.plans
                and (position, name) not in converter.overwritten):
            blob_layers[name] = blob.index
    return Conversion(converter.layers, shape, inputs[0], output, converter.mapping, blob_layers, notes,
                      fold_report)


def _check_runtime_shapes(conversion: Conversion, cfg: PathLike, weights: PathLike) -> None:
    """Load the written files and compare every layer's shape with Caffe's."""
    from ..runtime.network import Network

    with Network(cfg, weights, fold_bn=False) as net:  # shapes only: no folding work
        for layer, expected in zip(net.layers, conversion.layers):
            got = layer.output_shape if len(expected.shape) == 3 else (layer.outputs,)
            if tuple(got) != expected.shape:
                raise ConversionError(f"internal: Darknet layer {layer.index} ({expected.source}) has output shape "
                                      f"{got}, Caffe's is {expected.shape}; please report this model")


def caffe_to_darknet(prototxt: PathLike, caffemodel: PathLike, out: PathLike, *,
                     input_shape: Optional[Shape] = None, fold_bn: bool = True) -> Conversion:
    """Convert and write ``out``.cfg, ``out``.weights and ``out``.json (input shape,
    preprocessing, layer mapping); all three or none."""
    structure = read_prototxt(prototxt)
    preprocessing = _preprocessing(structure)  # before conversion edits the structure
    conversion = convert_net(structure, read_caffemodel(caffemodel), input_shape_chw=input_shape, fold_bn=fold_bn)
    paths = [f"{os.fspath(out)}{suffix}" for suffix in (".cfg", ".weights", ".json")]
    description = {
        "source": {"prototxt": os.fspath(prototxt), "caffemodel": os.fspath(caffemodel)},
        "input": {"blob": conversion.input_name, "shape_chw": list(conversion.input_shape)},
        "output": {"blob": conversion.output_name},
        "preprocessing": preprocessing,
        "batch_norm": "folded" if fold_bn else "kept (batch_normalize=1)",
        "layers": conversion.mapping,
        "notes": conversion.notes,
    }
    with atomic.replacing(*paths, inputs=(prototxt, caffemodel)) as (cfg_temp, weights_temp, json_temp):
        cfg_temp.write_text(conversion.cfg(), encoding="utf-8")
        conversion.weights().write(weights_temp)
        _check_runtime_shapes(conversion, cfg_temp, weights_temp)
        json_temp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    conversion.outputs = paths
    return conversion


def verify(prototxt: PathLike, caffemodel: PathLike, cfg: PathLike, weights: PathLike, conversion: Conversion,
           inputs: int = 2, seed: int = 0) -> folding.CheckResult:
    """The Caffe model on OpenCV DNN and the converted one on pydarknet, same random
    inputs: the network output, and every mapped layer whose output both expose."""
    from ..runtime.network import Network

    x = np.random.default_rng(seed).random((inputs, *conversion.input_shape), dtype=np.float32)
    with opencv_errors(prototxt):  # OpenCV builds its layers on the first forward
        cv2, caffe = opencv_net(prototxt, caffemodel, x)
        graph = Graph.build(read_prototxt(prototxt))
        # OpenCV names a layer's output by the layer: pair each blob's final writer in the
        # original network with the Darknet layer holding that blob.
        # (OpenCV's importer renames some layers after their top: try both names.)
        writer = {name: layer.name for layer in graph.layers for name in layer.top if layer.type != "Input"}
        names, indices = [], []
        for blob, index in conversion.blob_layers.items():
            found = [n for n in (writer.get(blob), blob) if n is not None and caffe.getLayerId(n) >= 0]
            if found:
                names.append(found[0])
                indices.append(index)
        reference = caffe.forward(names) if names else []
        with Network(cfg, weights, batch=inputs, fold_bn=False) as net:  # the files as written
            outputs = net.layer_outputs(x)
        pairs = [(f"'{name}' (Darknet layer {i})", ref, outputs[i].reshape(ref.shape))
                 for name, i, ref in zip(names, indices, reference)]
        last = caffe.forward()
        output = [(f"the network output '{conversion.output_name}'", last, outputs[-1].reshape(last.shape))]
    runtime = f"OpenCV DNN {cv2.__version__} vs pydarknet"
    result = folding.compare(pairs + output, runtime, inputs)
    result.output = folding.compare(output, runtime, inputs)
    return result
