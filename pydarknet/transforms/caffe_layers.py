"""How each Caffe layer becomes Darknet layers: the walk over the graph Caffe builds
for inference, which caffe_to_darknet.convert_net drives. Every mapping is exact or an
error naming the layer (formats.md's pooling, padding and BatchNorm rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import CaffeError
from ..formats.caffe import blob_array
from ..formats.caffe_graph import Graph, bn_statistics, describe
from . import folding
from .fold_caffe import FoldPlan

Shape = Tuple[int, ...]  # (C, H, W) for maps, (N,) for vectors
# Darknet layers with an activation of their own, which a following ReLU/Sigmoid/TanH joins.
HAS_ACTIVATION = ("convolutional", "deconvolutional", "connected", "shortcut")


class Unsupported(Exception):
    """One layer that cannot be converted; collected, then reported together."""


class InputMissing(Exception):
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
        raise Unsupported(f"{name} {h}x{w}: Darknet has one {name} for both axes")
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
        raise Unsupported(f"negative_slope {slope:g}: Darknet's leaky slope is fixed at 0.1 (relu is 0)")
    return {"Sigmoid": "logistic", "TanH": "tanh"}[layer.type]


class Converter:
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
            raise InputMissing(version[1])
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
            raise Unsupported("it reads the network input after other layers, which Darknet cannot route to")
        self.emit("route", {"layers": blob.index}, [], blob.shape, f"route for {source}")

    def map_shape(self, blob: Blob) -> Shape:
        if len(blob.shape) != 3:
            raise Unsupported(f"its input has shape {blob.shape}; this layer needs a C x H x W map")
        return blob.shape

    def layer_blobs(self, layer, count: int) -> List[np.ndarray]:
        found = self.blobs.get(layer.name, [])
        if len(found) < count:
            raise Unsupported(f"the caffemodel has {len(found)} blobs for it, {count} needed")
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
            raise Unsupported("a data, loss or accuracy layer of a training network; convert the deploy prototxt")
        if handler is None:
            raise Unsupported("no Darknet equivalent is implemented")
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
            raise Unsupported(f"dilation {list(p.dilation)}: this Darknet has no dilated convolution")
        if p.axis != 1:
            raise Unsupported(f"axis {p.axis}: only axis 1 (channels)")
        size, stride, pad = _square(p, "kernel", 1), _square(p, "stride", 1), _square(p, "pad", 0)
        blob = self.bottom(position)
        c, h, w = self.map_shape(blob)
        deconv = layer.type == "Deconvolution"
        if deconv and p.group != 1:
            raise Unsupported(f"group {p.group}: Darknet's deconvolutional layer has no groups")
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
            raise Unsupported(f"axis {p.axis}: only axis 1")
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
            raise Unsupported("use_global_stats is false: it normalizes with batch statistics")
        mean, variance = bn_statistics(layer, self.layer_blobs(layer, 3))
        k = 1.0 / folding.caffe_denominator(variance, layer.batch_norm_param.eps)
        return self._channel_affine(position, layer, k, -mean * k)

    def _scale(self, position, layer) -> str:
        p = layer.scale_param
        if len(layer.bottom) != 1 or p.axis != 1 or p.num_axes != 1:
            raise Unsupported("only a learned per-channel Scale (one bottom, axis 1, num_axes 1)")
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
            raise Unsupported("STOCHASTIC pooling has no Darknet equivalent")
        self.read(blob, describe(layer))
        if p.global_pooling:
            if pool == "AVE":
                index = self.emit("avgpool", {}, [], (c, 1, 1), describe(layer))
            elif h == w:
                index = self.emit("maxpool", {"size": h, "stride": 1, "padding": 0}, [], (c, 1, 1), describe(layer))
            else:
                raise Unsupported(f"global MAX pooling of a {h}x{w} map: Darknet's maxpool windows are square")
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
            raise Unsupported(f"Caffe's {'ceil' if ceil else 'floor'}-rounded output {out[1]}x{out[2]} "
                               f"(kernel {size}, stride {stride}, pad {pad}) needs a window overhang that "
                               "Darknet's maxpool cannot express")
        conv_out = ((h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
        overhang = any((o - 1) * stride - pad + size > x + pad for x, o in ((h, out[1]), (w, out[2])))
        if conv_out != out[1:] or overhang:
            raise Unsupported(f"AVE pooling (kernel {size}, stride {stride}, pad {pad}) on {h}x{w} has windows "
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
            raise Unsupported(f"{('PROD', 'SUM', 'MAX')[p.operation]}: only SUM maps to Darknet ([shortcut])")
        inputs = [self.bottom(position, i) for i in range(len(layer.bottom))]
        coeffs = list(p.coeff) or [1.0] * len(inputs)
        if len(coeffs) != len(inputs) or len({b.shape for b in inputs}) != 1:
            raise CaffeError(f"{describe(layer)}: bottoms of different shapes or a coeff count that does not fit")
        if any(b.index < 0 for b in inputs):
            raise Unsupported("a bottom is the network input, which [shortcut] cannot read")
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
            raise Unsupported(f"axis {axis}: only channel concatenation (axis 1) maps to [route]")
        if len({b.shape[1:] for b in inputs}) != 1:
            raise CaffeError(f"{describe(layer)}: bottoms differ in size: {[b.shape for b in inputs]}")
        if any(b.index < 0 for b in inputs):
            raise Unsupported("a bottom is the network input, which [route] cannot read")
        shape = (sum(b.shape[0] for b in inputs),) + inputs[0].shape[1:]
        index = self.emit("route", {"layers": ",".join(str(b.index) for b in inputs)}, [], shape, describe(layer))
        self.set_tops(position, Blob(index, shape))
        return f"layer {index} [route]"

    def _flatten(self, position, layer) -> str:
        p = layer.flatten_param
        blob = self.bottom(position)
        if p.axis != 1 or p.end_axis != -1:
            raise Unsupported(f"axis {p.axis}..{p.end_axis}: only axis 1 to the end")
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
            raise Unsupported(f"softmax over axis {layer.softmax_param.axis} of {blob.shape}: Darknet's softmax "
                               "runs over the whole vector, so only a C x 1 x 1 or flat input maps")
        self.read(blob, describe(layer))
        index = self.emit("softmax", {"groups": 1}, [], blob.shape, describe(layer))
        self.set_tops(position, Blob(index, blob.shape))
        return f"layer {index} [softmax]"
