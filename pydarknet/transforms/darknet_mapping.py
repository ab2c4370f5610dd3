"""How a ModelGraph (from either reader: Caffe or ONNX) becomes Darknet layers: the
one mapping both converters share.

Darknet layers read the layer before them, so a [route] is inserted whenever a node's
input is not the previous layer's output; route and shortcut indices are absolute.
Every mapping is exact or an Unsupported naming the node (formats.md's pooling,
padding and BatchNorm rules); a BatchNorm after the convolution or fully connected
layer that alone feeds it is folded into it, or kept as its batch_normalize=1.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..formats.model_graph import ModelGraph, Node, Shape
from . import folding
from .activation_mapping import ActivationMapping
from .bn_folds import plan_folds
from .darknet_layers import ACTIVATIONS, Blob, DarknetLayer, InputMissing, Unsupported, depthwise


def _check_window(graph: ModelGraph, node: Node) -> None:
    """Sizes a file may state but no framework computes with: an error, not a crash."""
    a = node.attrs
    least = {"kernel": 1, "stride": 1, "dilation": 1, "pads": 0, "group": 1, "output_padding": 0}
    for name, minimum in least.items():
        values = a.get(name, ())
        values = values if isinstance(values, (tuple, list)) else (values,)
        if any(not isinstance(v, (int, np.integer)) or v < minimum for v in values):
            raise graph.error(f"{node.label}: {name} {values if len(values) > 1 else values[0]} "
                              f"(each must be a whole number >= {minimum})")


def _bias(graph: ModelGraph, node: Node, outputs: int) -> np.ndarray:
    """The node's bias, one value per output channel (zeros without one)."""
    bias = node.params.get("bias")
    if bias is None:
        return np.zeros(outputs)
    bias = np.asarray(bias).ravel()
    if bias.size != outputs:
        raise graph.error(f"{node.label}: {bias.size} bias values for {outputs} outputs")
    return bias


def _square(node: Node, name: str) -> int:
    h, w = node.attrs[name]
    if h != w:
        raise Unsupported(f"{name} {h}x{w}: Darknet has one {name} for both axes")
    return h


def _symmetric_pad(node: Node) -> int:
    pads = node.attrs["pads"]
    if len(set(pads)) != 1:
        raise Unsupported(f"pads {tuple(pads)} (top, left, bottom, right): Darknet pads all sides equally")
    return pads[0]


def pool_size(x: int, k: int, begin: int, end: int, s: int, ceil: bool, clip_padded_only: bool) -> int:
    """Output length of a pooling window sweep, as the source framework computes it: a
    ceil-rounded last window that would start past the input (and its leading padding)
    is dropped (Caffe: only when there is padding)."""
    span = x + begin + end - k
    out = (-(-span // s) if ceil else span // s) + 1
    if (out - 1) * s >= x + begin and (begin or end or not clip_padded_only):
        out -= 1
    return out


class Mapper(ActivationMapping):
    """Turns the nodes of ``graph``, in order, into ``layers``."""

    def __init__(self, graph: ModelGraph, shape: Shape, fold_bn: bool):
        self.graph, self.fold_bn = graph, fold_bn
        plans, self.kept = plan_folds(graph)
        self.plans = {plan.producer: plan for plan in plans}
        self.absorbed = {p: plan for plan in plans for p in (plan.bn, plan.affine) if p is not None}
        self.layers: List[DarknetLayer] = []
        self.where: Dict[str, Blob] = {graph.input: Blob(-1, shape)}
        self.overwritten = set()  # tensors whose Darknet layer took an activation after them
        if len(graph.readers(graph.input)) > 1:
            self.copy_input("read by several layers")

    # -- bookkeeping ---------------------------------------------------------------

    def bottom(self, node: Node, i: int = 0) -> Blob:
        if node.inputs[i] not in self.where:
            raise InputMissing(node.inputs[i])
        return self.where[node.inputs[i]]

    def set_outputs(self, node: Node, blob: Blob) -> None:
        for name in node.outputs:
            self.where[name] = blob

    def emit(self, section: str, options: Dict[str, object], params: List[np.ndarray], shape: Shape,
             source: str) -> int:
        self.layers.append(DarknetLayer(section, options, params, shape, source))
        return len(self.layers) - 1

    def copy_input(self, why: str) -> Blob:
        """Darknet layers cannot route to the network input: an identity layer, the first,
        holds it for them."""
        shape = self.where[self.graph.input].shape
        blob = Blob(self.emit("activation", {"activation": "linear"}, [], shape, f"the network input, {why}"),
                    shape, exclusive=False)
        self.where[self.graph.input] = blob
        return blob

    def read(self, blob: Blob, source: str) -> None:
        """Make ``blob`` the previous layer's output, with a [route] if it is not."""
        if blob.index == len(self.layers) - 1:
            return
        if blob.index < 0:
            raise Unsupported("it reads the network input after other layers, which Darknet cannot route to")
        self.emit("route", {"layers": blob.index}, [], blob.shape, f"route for {source}")

    def output(self, node: Node, section: str, options: Dict[str, object], params: List[np.ndarray],
               shape: Shape, what: str = "") -> str:
        """Read the node's first input, emit its layer and point its outputs there."""
        self.read(self.bottom(node), node.label)
        index = self.emit(section, options, params, shape, node.label)
        self.set_outputs(node, Blob(index, shape))
        return f"layer {index} [{section}]" + (f" ({what})" if what else "")

    @staticmethod
    def map_shape(blob: Blob) -> Shape:
        if len(blob.shape) != 3:
            raise Unsupported(f"its input has shape {blob.shape}; this layer needs a C x H x W map")
        return blob.shape

    def convert(self, position: int) -> str:
        node = self.graph.nodes[position]
        if position in self.absorbed:
            produced = self.graph.nodes[self.absorbed[position].producer].outputs[0]
            if produced not in self.where:  # the producer could not be converted
                raise InputMissing(produced)
            self.set_outputs(node, self.where[produced])
            index = self.where[node.outputs[0]].index
            return f"folded into layer {index}" if self.fold_bn else f"batch_normalize=1 in layer {index}"
        if node.op == "unsupported" or "unusable" in node.attrs:
            raise Unsupported(node.attrs.get("unusable") or node.attrs["reason"])
        if node.op in ACTIVATIONS or node.op == "leaky":
            return self._activation(position, node)
        return getattr(self, f"_{node.op}")(position, node)

    # -- nodes ---------------------------------------------------------------------

    def _identity(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        self.set_outputs(node, Blob(blob.index, blob.shape, exclusive=False))
        return "no layer (identity at inference)"

    def _producer_params(self, position: int, node: Node, weight: np.ndarray, k_shape,
                         bias: np.ndarray) -> Tuple[Dict, np.ndarray, np.ndarray, List[np.ndarray]]:
        """(options, weights, biases, BN floats): BN folded in, kept, or none."""
        plan = self.plans.get(position)
        if plan is None:
            return {"batch_normalize": 0}, weight, bias, []
        if plan.mean.size != bias.size:
            raise self.graph.error(f"{self.graph.nodes[plan.bn].label} has {plan.mean.size} channels, "
                                   f"{node.label} has {bias.size}")
        denominator = folding.caffe_denominator(plan.variance, plan.eps)
        if self.fold_bn:
            k, new_bias = folding.fold_factors(plan.mean, denominator, plan.gamma, plan.beta, bias)
            return {"batch_normalize": 0}, k_shape(weight, k), new_bias, []
        # Darknet CPU: scales * (x - mean') / (sqrt(var') + 1e-6) + biases, with x without bias
        variance = (denominator - folding.CPU_EPSILON) ** 2
        return {"batch_normalize": 1}, weight, plan.beta, [plan.gamma, plan.mean - bias, variance]

    def _conv(self, position: int, node: Node) -> str:
        return self._convolution(position, node, deconv=False)

    def _deconv(self, position: int, node: Node) -> str:
        return self._convolution(position, node, deconv=True)

    def _convolution(self, position: int, node: Node, deconv: bool) -> str:
        a = node.attrs
        _check_window(self.graph, node)
        if tuple(a["dilation"]) != (1, 1):
            raise Unsupported(f"dilation {tuple(a['dilation'])}: this Darknet has no dilated convolution")
        size, stride, pad = _square(node, "kernel"), _square(node, "stride"), _symmetric_pad(node)
        blob = self.bottom(node)
        c, h, w = self.map_shape(blob)
        group = a["group"]
        if deconv and group != 1:
            raise Unsupported(f"group {group}: Darknet's deconvolutional layer has no groups")
        if deconv and tuple(a.get("output_padding", (0, 0))) != (0, 0):
            raise Unsupported(f"output_padding {tuple(a['output_padding'])}: Darknet's output size has none")
        weight = np.asarray(node.params["weight"])
        filters = weight.shape[1] * group if deconv else weight.shape[0]
        expected = (c, filters // group, size, size) if deconv else (filters, c // max(group, 1), size, size)
        if weight.shape != expected or c % group or filters % group:
            raise self.graph.error(f"{node.label}: weights have shape {weight.shape}, the model implies {expected}")
        bias = _bias(self.graph, node, filters)
        options, weight, biases, bn_params = self._producer_params(
            position, node, weight, lambda w, k: folding.scale_outputs(w, k, "deconv" if deconv else "conv", group),
            bias)
        if deconv:
            out = (filters, stride * (h - 1) + size - 2 * pad, stride * (w - 1) + size - 2 * pad)
        else:
            out = (filters, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
        options = {"filters": filters, "size": size, "stride": stride, "padding": pad,
                   **({"groups": group} if group != 1 else {}), **options, "activation": "linear"}
        return self.output(node, "deconvolutional" if deconv else "convolutional", options,
                           [biases, *bn_params, weight], out)

    def _dense(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        inputs = int(np.prod(blob.shape))
        weight = np.asarray(node.params["weight"])
        if weight.ndim != 2 or weight.shape[1] != inputs:
            raise self.graph.error(f"{node.label}: weights have shape {weight.shape}, the input implies "
                                   f"({weight.shape[0] if weight.ndim else '?'}, {inputs})")
        outputs = weight.shape[0]
        bias = _bias(self.graph, node, outputs)
        options, weight, biases, bn_params = self._producer_params(
            position, node, weight, lambda w, k: folding.scale_outputs(w, k, "dense"), bias)
        return self.output(node, "connected", {"output": outputs, **options, "activation": "linear"},
                           [biases, weight, *bn_params], (outputs,))

    def _channel_affine(self, node: Node, k: np.ndarray, shift: np.ndarray, what: str) -> str:
        """y = k x + shift per channel, as a depthwise 1x1 [convolutional]."""
        blob = self.bottom(node)
        channels = blob.shape[0]
        if k.size != channels or shift.size != channels:
            raise self.graph.error(f"{node.label}: {k.size} values for {channels} channels")
        return self.output(node, "convolutional", *depthwise(channels, k, shift), blob.shape,
                           f"depthwise 1x1: {what} as a per-channel affine map")

    def _batchnorm(self, position: int, node: Node) -> str:
        if node.attrs.get("batch_statistics"):
            raise Unsupported("it normalizes with the batch's own statistics, not stored ones")
        p = {k: np.asarray(v, np.float64).ravel() for k, v in node.params.items()}
        k, shift = folding.fold_factors(p["mean"], folding.caffe_denominator(p["variance"], node.attrs["eps"]),
                                        p["gamma"], p["beta"])
        return self._channel_affine(node, k, shift, "batch normalization")

    def _affine(self, position: int, node: Node) -> str:
        p = node.params
        return self._channel_affine(node, np.asarray(p["scale"], np.float64).ravel(),
                                    np.asarray(p["bias"], np.float64).ravel(), "scale and bias")

    def _global_avgpool(self, position: int, node: Node) -> str:
        c, h, w = self.map_shape(self.bottom(node))
        return self.output(node, "avgpool", {}, [], (c, 1, 1), "global")

    def _global_maxpool(self, position: int, node: Node) -> str:
        c, h, w = self.map_shape(self.bottom(node))
        if h != w:
            raise Unsupported(f"global MAX pooling of a {h}x{w} map: Darknet's maxpool windows are square")
        return self.output(node, "maxpool", {"size": h, "stride": 1, "padding": 0}, [], (c, 1, 1), "global")

    def _pool_output(self, node: Node, blob: Blob) -> Tuple[Shape, int, int, Sequence[int]]:
        a = node.attrs
        _check_window(self.graph, node)
        c, h, w = self.map_shape(blob)
        size, stride = _square(node, "kernel"), _square(node, "stride")
        top, left, bottom, right = a["pads"]
        out = (c, pool_size(h, size, top, bottom, stride, a["ceil"], a["clip_padded_only"]),
               pool_size(w, size, left, right, stride, a["ceil"], a["clip_padded_only"]))
        return out, size, stride, a["pads"]

    def _maxpool(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        out, size, stride, pads = self._pool_output(node, blob)
        _, h, w = blob.shape
        # Darknet: padding P in all, windows from -(P // 2), out = (x + P - size) // stride + 1
        for padding in (pads[0] + pads[2], pads[0] + pads[2] + 1):
            if padding // 2 == pads[0] == pads[1] and all(
                    (x + padding - size) // stride + 1 == o for x, o in ((h, out[1]), (w, out[2]))):
                return self.output(node, "maxpool", {"size": size, "stride": stride, "padding": padding}, [], out,
                                   f"padding={padding}")
        rounding = "ceil" if node.attrs["ceil"] else "floor"
        raise Unsupported(f"{self.graph.source_format}'s {rounding}-rounded output {out[1]}x{out[2]} (kernel {size}, "
                          f"stride {stride}, {_pads(pads)}) needs a window overhang that Darknet's maxpool "
                          "cannot express")

    def _avgpool(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        out, size, stride, pads = self._pool_output(node, blob)
        _, h, w = blob.shape
        pad = pads[0]
        conv_out = ((h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
        overhang = any((o - 1) * stride - pad + size > x + pad for x, o in ((h, out[1]), (w, out[2])))
        if len(set(pads)) != 1 or conv_out != out[1:] or overhang:
            raise Unsupported(f"average pooling (kernel {size}, stride {stride}, {_pads(pads)}) on {h}x{w} has "
                              "windows cut by the padded border, whose divisor Darknet cannot reproduce")
        if pad and not node.attrs["count_include_pad"]:
            raise Unsupported(f"average pooling with {_pads(pads)} that leaves the padding out of the divisor: "
                              "Darknet divides by the whole window")
        c = out[0]
        options = {"filters": c, "size": size, "stride": stride, "padding": pad, "groups": c,
                   "batch_normalize": 0, "activation": "linear"}
        weights = np.full((c, 1, size, size), 1.0 / (size * size))
        return self.output(node, "convolutional", options, [np.zeros(c), weights], out,
                           f"depthwise, weights 1/{size * size}: the average")

    def _add(self, position: int, node: Node) -> str:
        inputs = [self.bottom(node, i) for i in range(len(node.inputs))]
        coeffs = node.attrs["coeffs"]
        if len({b.shape for b in inputs}) != 1:
            raise self.graph.error(f"{node.label}: inputs of different shapes {[b.shape for b in inputs]}")
        if any(b.index < 0 for b in inputs):
            raise Unsupported("an input is the network input, which [shortcut] cannot read")
        order = list(range(len(inputs)))
        first = next((i for i in order if inputs[i].index == len(self.layers) - 1), None)
        if first is None:
            first = 0
            self.read(inputs[0], node.label)
        order.remove(first)
        alpha = coeffs[first]
        for i in order:
            index = self.emit("shortcut", {"from": inputs[i].index, "alpha": repr(float(alpha)),
                                           "beta": repr(float(coeffs[i])), "activation": "linear"},
                              [], inputs[0].shape, node.label)
            alpha = 1.0
        self.set_outputs(node, Blob(index, inputs[0].shape))
        first_index = index - len(order) + 1
        return f"layer {index} [shortcut]" if len(order) == 1 else f"layers {first_index}..{index} [shortcut]"

    def _concat(self, position: int, node: Node) -> str:
        inputs = [self.bottom(node, i) for i in range(len(node.inputs))]
        axis = node.attrs["axis"]
        if axis < 0:
            axis += len(inputs[0].shape) + 1  # counting the batch axis
        if axis != 1:
            raise Unsupported(f"axis {node.attrs['axis']}: only channel concatenation (axis 1) maps to [route]")
        if len({b.shape[1:] for b in inputs}) != 1:
            raise self.graph.error(f"{node.label}: inputs differ in size: {[b.shape for b in inputs]}")
        if any(b.index < 0 for b in inputs):
            raise Unsupported("an input is the network input, which [route] cannot read")
        shape = (sum(b.shape[0] for b in inputs),) + inputs[0].shape[1:]
        index = self.emit("route", {"layers": ",".join(str(b.index) for b in inputs)}, [], shape, node.label)
        self.set_outputs(node, Blob(index, shape))
        return f"layer {index} [route]"

    def _flatten(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        axis, end = node.attrs["axis"], node.attrs.get("end_axis", -1)
        if axis != 1 or end not in (-1, len(blob.shape)):
            raise Unsupported(f"axis {axis}..{end}: only axis 1 to the end")
        if len(blob.shape) == 1:
            self.set_outputs(node, blob)
            return "no layer (already flat)"
        return self.output(node, "flatten", {}, [], (int(np.prod(blob.shape)),))

    def _softmax(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        axis = node.attrs["axis"]
        if axis < 0:
            axis += len(blob.shape) + 1
        if axis != 1 or not (node.attrs["whole"] or int(np.prod(blob.shape[1:])) == 1):
            raise Unsupported(f"softmax over axis {node.attrs['axis']} of {blob.shape}: Darknet's softmax runs "
                              "over the whole vector, so only a C x 1 x 1 or flat input maps")
        # Darknet's [softmax] gives a vector (it sets no map size)
        return self.output(node, "softmax", {"groups": 1}, [], (int(np.prod(blob.shape)),))

    def _upsample(self, position: int, node: Node) -> str:
        blob = self.bottom(node)
        c, h, w = self.map_shape(blob)
        sh, sw = node.attrs["scale"]
        if sh != sw or sh < 1 or sh != int(sh):
            raise Unsupported(f"scale {sh:g}x{sw:g}: Darknet's [upsample] repeats each pixel an integer number "
                              "of times, the same on both axes")
        s = int(sh)
        return self.output(node, "upsample", {"stride": s}, [], (c, h * s, w * s), "nearest")


def _pads(pads: Sequence[int]) -> str:
    return f"pad {pads[0]}" if len(set(pads)) == 1 else f"pads {tuple(pads)}"

