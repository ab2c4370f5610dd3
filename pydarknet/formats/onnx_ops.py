"""ONNX operators as ModelGraph nodes (formats/model_graph.py's ops), one function per
operator type, as PyTorch exports them at opsets 11-20. Each gets the reader (its
constants and inferred shapes), the NodeProto and its attributes; what has no exact
node raises Unsupported with the reason."""

from __future__ import annotations

import numpy as np

from ..limits import INT_MAX


class Unsupported(Exception):
    """This node cannot become a ModelGraph node (the message says why)."""


def _optional(r, node, i: int, what: str, default=None):
    """Input i as a constant, or ``default`` where the node leaves it out (absent or '')."""
    return r.constant(node.input[i], what) if len(node.input) > i and node.input[i] else default


def _auto_pad(a: dict) -> None:
    mode = _text(a.get("auto_pad"), "NOTSET")
    if mode not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad {mode}: export with explicit pads")


def _spatial(a: dict, name: str, default: int, count: int = 2):
    values = list(a.get(name, [default] * count))
    if len(values) != count:
        raise Unsupported(f"{name} {values}: only 2-D (H, W) layers convert")
    return tuple(values)


def _window(a: dict, kernel) -> dict:
    """kernel, stride, pads (top, left, bottom, right) and dilation of a Conv/Pool."""
    _auto_pad(a)
    pads = _spatial(a, "pads", 0, 4)  # ONNX: (begin_h, begin_w, end_h, end_w)
    return {"kernel": tuple(kernel), "stride": _spatial(a, "strides", 1), "pads": pads,
            "dilation": _spatial(a, "dilations", 1)}


def _conv(r, node, a, deconv: bool = False) -> None:
    weight = r.constant(node.input[1], "weight")
    if weight.ndim != 4:
        raise Unsupported(f"a {weight.ndim - 2}-D convolution: only 2-D ones convert")
    bias = _optional(r, node, 2, "bias")
    attrs = _window(a, a.get("kernel_shape", weight.shape[2:]))
    attrs["group"] = a.get("group", 1)
    if deconv:
        attrs["output_padding"] = _spatial(a, "output_padding", 0)
        if "output_shape" in a:
            raise Unsupported("output_shape: export without it (Darknet computes the size from the pads)")
    r.add(node, "deconv" if deconv else "conv", node.input[:1], attrs, {"weight": weight, "bias": bias})


def _batchnorm(r, node, a) -> None:
    gamma, beta, mean, variance = (r.constant(n, what) for n, what in
                                   zip(node.input[1:5], ("scale", "bias", "mean", "variance")))
    attrs = {"eps": a.get("epsilon", 1e-5), "batch_statistics": bool(a.get("training_mode", 0))}
    r.add(node, "batchnorm", node.input[:1], attrs, {"mean": mean, "variance": variance, "gamma": gamma,
                                                     "beta": beta})


def _pool(op: str):
    def translate(r, node, a) -> None:
        attrs = _window(a, _spatial(a, "kernel_shape", 0))
        if attrs.pop("dilation") != (1, 1):
            raise Unsupported("dilated pooling has no Darknet equivalent")
        attrs.update({"ceil": bool(a.get("ceil_mode", 0)), "clip_padded_only": False,
                      "count_include_pad": bool(a.get("count_include_pad", 0))})
        r.add(node, op, node.input[:1], attrs)
    return translate


def _spatial_reduction(op: str):
    """ReduceMean/ReduceMax over H and W: global pooling (torch.onnx's dynamo exporter
    writes nn.AdaptiveAvgPool2d(1) this way). Axes: an attribute before opset 18, an input
    from it on."""
    def translate(r, node, a) -> None:
        shape = r.shape(node.input[0])
        axes = [int(x) for x in np.ravel(_optional(r, node, 1, "axes", a.get("axes", ())))]
        if not axes and a.get("noop_with_empty_axes", 0):
            r.add(node, "identity", node.input[:1])
            return
        if len(shape) != 4 or any(not -4 <= x < 4 for x in axes) or sorted({x % 4 for x in axes}) != [2, 3]:
            raise Unsupported(f"it reduces axes {axes or 'all'} of {shape}; only H and W of a map (global pooling) "
                              "convert")
        r.add(node, op, node.input[:1])
    return translate


def _simple(op: str, **attrs):
    def translate(r, node, a) -> None:
        r.add(node, op, node.input[:1], dict(attrs))
    return translate


def _leaky(r, node, a) -> None:
    r.add(node, "leaky", node.input[:1], {"slope": a.get("alpha", 0.01)})


def _clip(r, node, a) -> None:
    """Clip (nn.ReLU6, nn.Hardtanh): bounds as attributes before opset 11, optional
    constant inputs from it on; float32's extremes (the old defaults) mean no bound."""
    bounds = []
    for i, key, default in ((1, "min", -np.inf), (2, "max", np.inf)):
        value = np.ravel(_optional(r, node, i, f"{key} bound", a.get(key, default))).astype(np.float64)
        if value.size != 1 or np.isnan(value[0]):
            raise Unsupported(f"{key} bound {value.tolist()}: not one number")
        bounds.append(float(value[0]) if abs(value[0]) < np.finfo(np.float32).max else np.copysign(np.inf, value[0]))
    r.add(node, "clip", node.input[:1], {"min": bounds[0], "max": bounds[1]})


def _hard_sigmoid(r, node, a) -> None:
    """max(0, min(1, alpha x + beta)) (nn.Hardsigmoid: alpha 1/6)."""
    r.add(node, "clip", node.input[:1], {"min": 0.0, "max": 1.0, "scale": a.get("alpha", 0.2),
                                         "shift": a.get("beta", 0.5)})


def _prelu(r, node, a) -> None:
    """PRelu with a slope that is one number, or one per channel of a map (PyTorch's
    nn.PReLU: shape (1,) or (C, 1, 1))."""
    shape = r.shape(node.input[0])
    slope = r.constant(node.input[1], "slope").astype(np.float64)
    if slope.size == 1:
        r.add(node, "prelu", node.input[:1], {}, {"slope": slope.ravel()})
        return
    try:
        full = np.broadcast_to(slope, (1, *shape[1:]))[0]
    except ValueError:
        raise Unsupported(f"slope of shape {slope.shape} does not broadcast to its input {shape}") from None
    if len(shape) != 4 or 0 in full.shape or (full != full[:, :1, :1]).any():
        raise Unsupported(f"slope of shape {slope.shape} on {shape}: only one slope per channel of a map converts")
    r.add(node, "prelu", node.input[:1], {}, {"slope": full[:, 0, 0].copy()})


def _shaping(r, node, a) -> None:
    """Flatten/Reshape/Squeeze/Unsqueeze: a flatten when the result is (N, everything
    else) of the input, nothing when it keeps the shape."""
    before, after = r.shape(node.input[0]), r.shape(node.output[0])
    if node.op_type == "Flatten" and a.get("axis", 1) != 1:
        raise Unsupported(f"axis {a['axis']}: only axis 1 (keep the batch, flatten the rest)")
    if after == before:
        r.add(node, "identity", node.input[:1])
    elif len(after) == 2 and after[0] == before[0] and after[1] == int(np.prod(before[1:])):
        r.add(node, "flatten", node.input[:1], {"axis": 1, "end_axis": -1})
    else:
        raise Unsupported(f"it reshapes {before} to {after}; only flattening to (batch, features) converts")


def _dense(r, node, weight: np.ndarray, bias) -> None:
    if len(r.shape(node.input[0])) != 2:
        raise Unsupported(f"its input has shape {r.shape(node.input[0])}; flatten to (batch, features) first")
    r.add(node, "dense", node.input[:1], {}, {"weight": weight, "bias": bias})


def _gemm(r, node, a) -> None:
    if a.get("transA", 0):
        raise Unsupported("transA: the input must be (batch, features)")
    b = r.constant(node.input[1], "weight").astype(np.float64)
    weight = (b if a.get("transB", 0) else b.T) * a.get("alpha", 1.0)
    bias = _optional(r, node, 2, "bias")
    if bias is not None:  # C broadcast to (1, outputs): one value for all, or one each (the mapping checks)
        bias = bias.astype(np.float64).ravel() * a.get("beta", 1.0)
        bias = np.full(weight.shape[0], bias[0]) if bias.size == 1 else bias
    _dense(r, node, weight, bias)


def _matmul(r, node, a) -> None:
    weight = r.constant(node.input[1], "weight")
    if weight.ndim != 2:
        raise Unsupported(f"a {weight.ndim}-D weight: only (features, outputs) matrices convert")
    _dense(r, node, weight.T, None)


def _biasless_dense(r, name: str):
    """The dense node that alone produces ``name``, without a bias yet (MatMul + Add)."""
    position = r.made.get(name)
    node = r.nodes[position] if position is not None else None
    if node is not None and node.op == "dense" and node.params["bias"] is None and r.consumers.get(name) == 1:
        return node
    return None


def _add(r, node, a) -> None:
    constant = [n for n in node.input if n in r.constants]
    if not constant:
        if len({r.shape(n) for n in node.input}) != 1:
            raise Unsupported(f"it broadcasts {[r.shape(n) for n in node.input]}; [shortcut] adds equal shapes")
        r.add(node, "add", node.input, {"coeffs": [1.0] * len(node.input)})
        return
    data = [n for n in node.input if n not in r.constants][0]
    dense = _biasless_dense(r, data)
    bias = r.constants[constant[0]]
    if dense is None or bias.size != dense.params["weight"].shape[0]:
        raise Unsupported("it adds a constant; only a bias after MatMul converts")
    dense.params["bias"] = bias.ravel()
    dense.outputs = list(node.output[:1])
    r.made[node.output[0]] = r.made.pop(data)


def _mul(r, node, a) -> None:
    """x * Sigmoid(x): the sigmoid node becomes a swish node producing the product."""
    for x, s in (node.input, node.input[::-1]):
        position = r.made.get(s)
        sigmoid = r.nodes[position] if position is not None else None
        if sigmoid is not None and sigmoid.op == "sigmoid" and sigmoid.inputs == [x] and r.consumers.get(s) == 1:
            sigmoid.op, sigmoid.kind, sigmoid.outputs = "swish", "Sigmoid+Mul", list(node.output[:1])
            r.made[node.output[0]] = r.made.pop(s)
            return
    raise Unsupported("only x * Sigmoid(x) (SiLU) converts")


def _concat(r, node, a) -> None:
    r.add(node, "concat", node.input, {"axis": a["axis"]})


def _softmax(r, node, a) -> None:
    # before opset 13, Softmax works on everything from axis on, flattened
    old = r.opset < 13
    r.add(node, "softmax", node.input[:1], {"axis": a.get("axis", 1 if old else -1), "whole": old})


# coordinate_transformation_mode -> the source coordinate of output pixel x at scale s
_COORDINATES = {
    "asymmetric": lambda x, s: x / s,
    "half_pixel": lambda x, s: (x + 0.5) / s - 0.5,
    "pytorch_half_pixel": lambda x, s: (x + 0.5) / s - 0.5,
    "tf_half_pixel_for_nn": lambda x, s: (x + 0.5) / s,
}
_ROUNDING = {
    "floor": np.floor, "ceil": np.ceil,
    "round_prefer_floor": lambda v: np.where(v - np.floor(v) == 0.5, np.floor(v), np.round(v)),
    "round_prefer_ceil": lambda v: np.where(v - np.floor(v) == 0.5, np.ceil(v), np.round(v)),
}


def _text(value, default: str) -> str:
    return (value.decode() if isinstance(value, bytes) else value) if value is not None else default


def _resize(r, node, a) -> None:
    """Nearest Resize/Upsample by an integer factor: [upsample] when every output pixel
    reads input pixel x // s, which the modes decide; checked on this input's size."""
    if _text(a.get("mode"), "nearest") != "nearest":
        raise Unsupported(f"mode {_text(a.get('mode'), '')}: only nearest converts ([upsample])")
    before, after = r.shape(node.input[0]), r.shape(node.output[0])
    if len(before) != 4 or len(after) != 4 or after[:2] != before[:2] or min(before[2:]) < 1 \
            or any(o % i for o, i in zip(after[2:], before[2:])):
        raise Unsupported(f"it resizes {before} to {after}; only integer upscaling of H and W converts")
    scale = tuple(o // i for o, i in zip(after[2:], before[2:]))
    if scale[0] != scale[1]:
        raise Unsupported(f"scale {scale[0]}x{scale[1]}: Darknet's [upsample] repeats pixels equally on both axes")
    if int(np.prod(after)) > INT_MAX:
        raise Unsupported(f"its output {after} has more values than Darknet's buffers hold ({INT_MAX})")
    if node.op_type == "Upsample":
        coordinates, rounding = "asymmetric", "floor"
    else:
        coordinates = _text(a.get("coordinate_transformation_mode"), "half_pixel")
        rounding = _text(a.get("nearest_mode"), "round_prefer_floor")
    if coordinates not in _COORDINATES or rounding not in _ROUNDING:
        raise Unsupported(f"coordinate_transformation_mode {coordinates}: not a pixel repetition")
    for size, s in zip(before[2:], scale):
        x = np.arange(size * s, dtype=np.float64)  # fewer than INT_MAX, checked above
        source = np.clip(_ROUNDING[rounding](_COORDINATES[coordinates](x, s)), 0, size - 1)
        if not np.array_equal(source, x // s):
            raise Unsupported(f"{coordinates} coordinates with {rounding} rounding do not repeat each pixel")
    r.add(node, "upsample", node.input[:1], {"scale": scale})


OPS = {
    "Conv": _conv, "ConvTranspose": lambda r, node, a: _conv(r, node, a, deconv=True),
    "BatchNormalization": _batchnorm, "Relu": _simple("relu"), "LeakyRelu": _leaky, "Sigmoid": _simple("sigmoid"),
    "Tanh": _simple("tanh"), "MaxPool": _pool("maxpool"), "AveragePool": _pool("avgpool"),
    "GlobalAveragePool": _simple("global_avgpool"), "GlobalMaxPool": _simple("global_maxpool"),
    "ReduceMean": _spatial_reduction("global_avgpool"), "ReduceMax": _spatial_reduction("global_maxpool"),
    "Flatten": _shaping, "Reshape": _shaping, "Squeeze": _shaping, "Unsqueeze": _shaping, "Gemm": _gemm,
    "MatMul": _matmul, "Add": _add, "Mul": _mul, "Concat": _concat, "Resize": _resize, "Upsample": _resize,
    "Softmax": _softmax, "Dropout": _simple("identity"), "Identity": _simple("identity"), "PRelu": _prelu,
    "Clip": _clip, "HardSigmoid": _hard_sigmoid,
}
