"""Darknet -> ONNX: a cfg + weights as an ONNX graph built with the ``onnx`` package's
own helpers (``pip install ".[onnx]"``), batch normalization folded (the CPU's formula),
the batch dimension dynamic unless fixed.

Each output is named after its layer and holds the tensor the runtime holds there: every
[yolo] / [region] layer's, else the last layer's. A cfg with any layer that cannot be
exported exactly is an error listing every such layer, and nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Union

import numpy as np

from .. import atomic
from ..errors import ConversionError, optional
from ..formats.darknet import Cfg, Weights, split_affine
from . import fold_darknet, folding

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_OPSET = 13
OUTPUT_LAYERS = ("yolo", "region", "detection")


def _onnx():
    onnx = optional("onnx", "exporting to ONNX", "onnx (or pip install \".[onnx]\")")
    from onnx import helper, numpy_helper

    return onnx, helper, numpy_helper


@dataclass
class _Graph:
    """The nodes and constants so far; ``tensor[i]`` names layer i's output."""

    helper: object
    numpy_helper: object
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    tensor: Dict[int, str] = field(default_factory=dict)
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, hint: str, array) -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: List[str], hint: Optional[str] = None, **attributes) -> str:
        out = self.name(hint or op.lower())
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attributes))
        return out


def _activation(g: _Graph, x: str, activation: str) -> str:
    """Darknet's activation of x (activations.h), as ONNX operators."""
    if activation in ("linear", ""):
        return x
    if activation == "leaky":
        return g.node("LeakyRelu", [x], alpha=0.1)
    if activation == "relu":
        return g.node("Relu", [x])
    if activation == "logistic":
        return g.node("Sigmoid", [x])
    if activation == "tanh":
        return g.node("Tanh", [x])
    if activation == "elu":
        return g.node("Elu", [x], alpha=1.0)
    if activation == "selu":
        return g.node("Selu", [x], alpha=1.6732, gamma=1.0507)
    if activation == "hardtan":
        return g.node("Clip", [x, g.constant("lo", np.float32(-1)), g.constant("hi", np.float32(1))])
    if activation == "loggy":  # 2 logistic(x) - 1
        doubled = g.node("Mul", [g.node("Sigmoid", [x]), g.constant("two", np.float32(2))])
        return g.node("Sub", [doubled, g.constant("one", np.float32(1))])
    if activation == "mish":  # x tanh(softplus(x))
        return g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x])])])
    if activation == "swish":  # x logistic(x)
        return g.node("Mul", [x, g.node("Sigmoid", [x])])
    raise _Unexportable(f"activation={activation} has no exact ONNX form here")


class _Unexportable(Exception):
    pass


def _option(section, key: str, default: str) -> str:
    option = section.options.get(key)
    return option.value if option else default


def _affine(layer, floats: np.ndarray, transposed: bool):
    """(weights, biases) with batch normalization folded (the CPU's formula)."""
    if layer.batch_normalize:
        floats = fold_darknet.fold_layer(layer, floats, "cpu", transposed)
    inputs = layer.input_shape[0] if layer.type == "deconvolutional" else layer.inputs
    params = split_affine(layer.type, floats, layer.filters, inputs, False, transposed)
    return params.weights, params.biases


def _slice(g: _Graph, x: str, start: int, end: int, axis: int) -> str:
    """x[start:end] along axis."""
    bounds = [g.constant(name, np.array([value], np.int64)) for name, value in
              (("start", start), ("end", end), ("axis", axis))]
    return g.node("Slice", [x, *bounds])


def _resampled(g: _Graph, x: str, source, target) -> str:
    """Upstream's shortcut_cpu() between layers of different sizes: the source sampled
    every stride-th pixel, on the channels both have; the others get nothing added."""
    (c1, h1, w1), (c2, h2, w2) = source, target
    stride = max(w1 // w2, 1)
    if w2 // w1 > 1 or h1 // h2 != w1 // w2:
        raise _Unexportable("shortcut from a smaller layer (upstream scatters it) or with unequal strides")
    minc, minh, minw = min(c1, c2), min(h1, h2), min(w1, w2)
    sliced = g.node("Slice", [x, g.constant("start", np.array([0, 0, 0], np.int64)),
                              g.constant("end", np.array([minc, minh * stride, minw * stride], np.int64)),
                              g.constant("axes", np.array([1, 2, 3], np.int64)),
                              g.constant("steps", np.array([1, stride, stride], np.int64))])
    if (minc, minh, minw) == (c2, h2, w2):
        return sliced
    pads = np.array([0, 0, 0, 0, 0, c2 - minc, h2 - minh, w2 - minw], np.int64)
    return g.node("Pad", [sliced, g.constant("pads", pads)])


def _reorg(g: _Graph, x: str, layer, section) -> str:
    """upstream's reorg_cpu(..., forward=0): the input's memory read as (c/s^2, h s, w s)
    and written back in (c, h, w) order with channel (dy s + dx) c/s^2 + c2 taking pixel
    (j s + dy, i s + dx) of channel c2; the result's memory is the (c s^2, h/s, w/s) output."""
    if any(int(_option(section, key, "0")) for key in ("reverse", "flatten", "extra")):
        raise _Unexportable("reorg with reverse, flatten or extra")
    s = int(_option(section, "stride", "1"))
    c, h, w = layer.input_shape
    grid = g.node("Reshape", [x, g.constant("shape", np.array([-1, c // (s * s), h, s, w, s], np.int64))])
    moved = g.node("Transpose", [grid], perm=[0, 3, 5, 1, 2, 4])
    return g.node("Reshape", [moved, g.constant("shape", np.array([-1, *layer.output_shape], np.int64))])


def _yolo_like(g: _Graph, x: str, layer, section, region: bool) -> str:
    """[yolo] / [region]: logistic on x, y, objectness (and classes for yolo; softmax
    over them for region), w and h raw, per anchor, as the layer's forward pass leaves
    them."""
    c, h, w = layer.input_shape
    classes = int(_option(section, "classes", "20"))
    coords = int(_option(section, "coords", "4")) if region else 4
    entries = coords + 1 + classes
    anchors = c // entries
    if region and (int(_option(section, "background", "0")) or int(_option(section, "softmax", "0")) != 1
                   or "tree" in section.options):
        raise _Unexportable("[region] exports with softmax=1 and no background or class tree only")
    grid = g.node("Reshape", [x, g.constant("shape", np.array([-1, anchors, entries, h, w], np.int64))])

    def part(start, end):
        return _slice(g, grid, start, end, axis=2)

    new_coords = not region and int(_option(section, "new_coords", "0"))
    xy = part(0, 2) if new_coords else g.node("Sigmoid", [part(0, 2)])
    scale = 1.0 if region else float(_option(section, "scale_x_y", "1"))
    if scale != 1:
        xy = g.node("Sub", [g.node("Mul", [xy, g.constant("s", np.float32(scale))]),
                            g.constant("shift", np.float32(0.5 * (scale - 1)))])
    rest = [part(2, coords)]
    if region:
        rest += [g.node("Sigmoid", [part(coords, coords + 1)]), g.node("Softmax", [part(coords + 1, entries)], axis=2)]
    else:
        rest.append(part(4, entries) if new_coords else g.node("Sigmoid", [part(4, entries)]))
    joined = g.node("Concat", [xy, *rest], axis=2)
    return g.node("Reshape", [joined, g.constant("shape", np.array([-1, c, h, w], np.int64))])


class _Site(NamedTuple):
    """Layer ``i`` where it is exported: the graph so far, the layer, its cfg section and
    its floats as stored (``transposed``: a [connected] layer's weights), every layer."""

    g: _Graph
    i: int
    layer: object
    section: object
    floats: np.ndarray
    transposed: bool
    net_layers: list

    @property
    def x(self) -> str:
        """The layer's input: the previous layer's output tensor."""
        return self.g.tensor[self.i - 1]


def _convolutional(s: _Site) -> str:
    if int(_option(s.section, "binary", "0")) or int(_option(s.section, "xnor", "0")):
        raise _Unexportable("binary/xnor convolutions")
    layer, g = s.layer, s.g
    weights, biases = _affine(layer, s.floats, s.transposed)
    k = layer.size
    weights = weights.reshape(layer.filters, layer.input_shape[0] // layer.groups, k, k)
    # darknet's output size (h + 2 pad - size) / stride + 1: symmetric padding
    y = g.node("Conv", [s.x, g.constant("W", weights.astype(np.float32)), g.constant("B", biases.astype(np.float32))],
               kernel_shape=[k, k], strides=[layer.stride] * 2, pads=[layer.pad] * 4, group=layer.groups)
    return _activation(g, y, layer.activation)


def _deconvolutional(s: _Site) -> str:
    layer, g = s.layer, s.g
    weights, biases = _affine(layer, s.floats, s.transposed)
    k = layer.size
    weights = weights.reshape(layer.input_shape[0], layer.filters, k, k)  # darknet: [c][n][k*k]
    # darknet's output size (h - 1) stride + size - 2 pad
    y = g.node("ConvTranspose", [s.x, g.constant("W", weights.astype(np.float32)),
                                 g.constant("B", biases.astype(np.float32))],
               kernel_shape=[k, k], strides=[layer.stride] * 2, pads=[layer.pad] * 4)
    return _activation(g, y, layer.activation)


def _connected(s: _Site) -> str:
    layer, g = s.layer, s.g
    weights, biases = _affine(layer, s.floats, s.transposed)
    if s.transposed:
        weights = weights.T
    flat = g.node("Flatten", [s.x], axis=1)
    y = g.node("Gemm", [flat, g.constant("W", weights.astype(np.float32)),
                        g.constant("B", biases.astype(np.float32))], transB=1)
    y = _activation(g, y, layer.activation)
    return g.node("Reshape", [y, g.constant("shape", np.array([-1, layer.outputs, 1, 1], np.int64))])


def _maxpool(s: _Site) -> str:
    layer = s.layer
    size, stride = layer.size, layer.stride
    padding = int(_option(s.section, "padding", str(size - 1)))
    if layer.output_shape[1:] != tuple((d + padding - size) // stride + 1 for d in layer.input_shape[1:]):
        raise _Unexportable("maxpool whose output size is not darknet's rule")
    # darknet's windows start at -padding/2: the rest of the padding goes after
    return s.g.node("MaxPool", [s.x], kernel_shape=[size, size], strides=[stride, stride],
                    pads=[padding // 2, padding // 2, padding - padding // 2, padding - padding // 2])


def _route(s: _Site) -> str:
    layers = [int(v) for v in _option(s.section, "layers", "").split(",")]
    groups, group_id = int(_option(s.section, "groups", "1")), int(_option(s.section, "group_id", "0"))
    parts = []
    for ref in layers:
        index = ref if ref >= 0 else s.i + ref
        source = s.g.tensor[index]
        if groups > 1:
            c = s.net_layers[index].output_shape[0] // groups
            source = _slice(s.g, source, group_id * c, (group_id + 1) * c, axis=1)
        parts.append(source)
    return parts[0] if len(parts) == 1 else s.g.node("Concat", parts, axis=1)


def _shortcut(s: _Site) -> str:
    g, layer = s.g, s.layer
    ref = int(_option(s.section, "from", "0"))
    index = ref if ref >= 0 else s.i + ref
    alpha, beta = float(_option(s.section, "alpha", "1")), float(_option(s.section, "beta", "1"))
    other = g.tensor[index] if beta == 1 else g.node("Mul", [g.tensor[index], g.constant("beta", np.float32(beta))])
    if s.net_layers[index].output_shape != layer.output_shape:
        other = _resampled(g, other, s.net_layers[index].output_shape, layer.output_shape)
        if alpha != 1:
            raise _Unexportable("shortcut with alpha between differently sized layers")
    own = s.x if alpha == 1 else g.node("Mul", [s.x, g.constant("alpha", np.float32(alpha))])
    return _activation(g, g.node("Add", [own, other]), layer.activation)


def _upsample(s: _Site) -> str:
    g = s.g
    stride = int(_option(s.section, "stride", "2"))
    scale = float(_option(s.section, "scale", "1"))
    if stride < 0:
        raise _Unexportable("upsample with a negative stride (downsampling)")
    y = g.node("Resize", [s.x, "", g.constant("scales", np.array([1, 1, stride, stride], np.float32))],
               mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return y if scale == 1 else g.node("Mul", [y, g.constant("scale", np.float32(scale))])


def _softmax(s: _Site) -> str:
    g, layer = s.g, s.layer
    if "tree" in s.section.options:
        raise _Unexportable("softmax over a class tree")
    groups = int(_option(s.section, "groups", "1"))  # each of groups runs of inputs/groups values
    temperature = float(_option(s.section, "temperature", "1"))
    flat = g.node("Reshape", [s.x, g.constant("shape", np.array([-1, groups, layer.inputs // groups], np.int64))])
    if temperature != 1:
        flat = g.node("Div", [flat, g.constant("temperature", np.float32(temperature))])
    y = g.node("Softmax", [flat], axis=2)
    return g.node("Reshape", [y, g.constant("shape", np.array([-1, *_shape(layer)], np.int64))])


def _identity(s: _Site) -> str:
    return s.g.node("Identity", [s.x])


def _activation_layer(s: _Site) -> str:
    y = _activation(s.g, s.x, s.layer.activation)
    return y if y != s.x else _identity(s)


# Each layer type the exporter knows -> the ONNX nodes it becomes (its output tensor).
EXPORTERS: Dict[str, Callable[[_Site], str]] = {
    "convolutional": _convolutional, "deconvolutional": _deconvolutional, "connected": _connected,
    "maxpool": _maxpool, "avgpool": lambda s: s.g.node("GlobalAveragePool", [s.x]),
    "route": _route, "shortcut": _shortcut, "upsample": _upsample, "softmax": _softmax,
    "flatten": lambda s: s.g.node("Reshape", [s.x, s.g.constant("shape", np.array([-1, *_shape(s.layer)],
                                                                                   np.int64))]),
    "reorg": lambda s: _reorg(s.g, s.x, s.layer, s.section),
    "activation": _activation_layer,
    "dropout": _identity, "cost": _identity,
    "yolo": lambda s: _yolo_like(s.g, s.x, s.layer, s.section, region=False),
    "region": lambda s: _yolo_like(s.g, s.x, s.layer, s.section, region=True),
}


def _layer(site: _Site) -> str:
    """The ONNX nodes of a layer; returns its output tensor."""
    exporter = EXPORTERS.get(site.layer.type)
    if exporter is None:
        raise _Unexportable(f"[{site.layer.type}] has no ONNX export")
    return exporter(site)


def _shape(layer) -> tuple:
    """The layer's output as the runtime holds it: (c, h, w), or flat where those do not
    multiply to its outputs (softmax, cost), as Network.layer_outputs() shapes it."""
    c, h, w = layer.output_shape
    return layer.output_shape if c * h * w == layer.outputs else (layer.outputs,)


def _decoded(g: _Graph, x: str, layer, section, net_w: int, net_h: int):
    """A [yolo] head's output as boxes (x1, y1, x2, y2 in input pixels) and per-class
    scores (objectness x class), as get_yolo_box() and get_yolo_detections() compute
    them before NMS: shapes (N, anchors x h x w, 4) and (N, anchors x h x w, classes), in
    the order anchor, row, column."""
    c, h, w = layer.output_shape
    classes = int(_option(section, "classes", "20"))
    entries = 5 + classes
    anchors_used = c // entries
    all_anchors = [float(v) for v in _option(section, "anchors", "").split(",") if v.strip()]
    mask = [int(v) for v in _option(section, "mask", "").split(",") if v.strip()] or list(range(anchors_used))
    sizes = np.array([[all_anchors[2 * m], all_anchors[2 * m + 1]] for m in mask], np.float32)
    grid = g.node("Reshape", [x, g.constant("shape", np.array([-1, anchors_used, entries, h, w], np.int64))])

    def part(start, end):
        return _slice(g, grid, start, end, axis=2)

    columns = np.arange(w, dtype=np.float32).reshape(1, 1, 1, 1, w)
    rows = np.arange(h, dtype=np.float32).reshape(1, 1, 1, h, 1)
    cx = g.node("Mul", [g.node("Add", [part(0, 1), g.constant("columns", columns)]),
                        g.constant("sx", np.float32(net_w / w))])
    cy = g.node("Mul", [g.node("Add", [part(1, 2), g.constant("rows", rows)]), g.constant("sy", np.float32(net_h / h))])
    if int(_option(section, "new_coords", "0")):  # (2 t)^2 x anchor
        bw, bh = (g.node("Mul", [g.node("Mul", [t, t]), g.constant("four", np.float32(4))])
                  for t in (part(2, 3), part(3, 4)))
    else:  # exp(t) x anchor
        bw, bh = g.node("Exp", [part(2, 3)]), g.node("Exp", [part(3, 4)])
    bw = g.node("Mul", [bw, g.constant("aw", sizes[:, 0].reshape(1, -1, 1, 1, 1))])
    bh = g.node("Mul", [bh, g.constant("ah", sizes[:, 1].reshape(1, -1, 1, 1, 1))])
    half_w, half_h = (g.node("Mul", [v, g.constant("half", np.float32(0.5))]) for v in (bw, bh))
    corners = g.node("Concat", [g.node("Sub", [cx, half_w]), g.node("Sub", [cy, half_h]),
                                g.node("Add", [cx, half_w]), g.node("Add", [cy, half_h])], axis=2)
    scores = g.node("Mul", [part(4, 5), part(5, entries)])

    def rows_of(tensor, width):  # (N, A, k, h, w) -> (N, A h w, k)
        moved = g.node("Transpose", [tensor], perm=[0, 1, 3, 4, 2])
        return g.node("Reshape", [moved, g.constant("shape", np.array([0, -1, width], np.int64))])

    return rows_of(corners, 4), rows_of(scores, classes)


def _output_layers(layers) -> List[int]:
    """The detection layers, else the layer whose output predict() returns: the last
    that is not a [cost] (which only scores training, as upstream's network output)."""
    found = [layer.index for layer in layers if layer.type in OUTPUT_LAYERS]
    return found or [next((layer.index for layer in reversed(layers) if layer.type != "cost"), len(layers) - 1)]


def export(cfg: PathLike, weights: PathLike, path: PathLike, *, opset: int = DEFAULT_OPSET,
           batch: Optional[int] = None, boxes: bool = False) -> List[str]:
    """Write ``path``, the ONNX model of the cfg + weights; returns its output names.
    ``boxes`` adds the [yolo] heads decoded, before NMS: ``boxes`` (N, K, 4: x1, y1, x2,
    y2 in input pixels) and ``scores`` (N, K, classes: objectness x class probability).
    Raises ConversionError listing every layer that cannot be exported."""
    from ..runtime.network import Network

    onnx, helper, numpy_helper = _onnx()
    cfg_file = Cfg.read(cfg)
    sections = cfg_file.layers
    with Network(cfg, batch=1) as net:  # the runtime's own reading of the cfg
        layers = list(net.layers)
        input_shape = net.input_shape
    stored = Weights.read(weights, [layer.n_params for layer in layers])
    g = _Graph(helper, numpy_helper)
    g.tensor[-1] = "input"
    problems = []
    for i, layer in enumerate(layers):
        try:
            g.tensor[i] = _layer(_Site(g, i, layer, sections[i], stored.layers[i], stored.header.transposed,
                                       layers))
        except _Unexportable as reason:
            problems.append(f"layer {i}, {cfg_file.where(sections[i])}: {reason}")
            g.tensor[i] = g.tensor[i - 1]
    heads = [i for i, layer in enumerate(layers) if layer.type == "yolo"]
    if boxes and (not heads or any(layer.type in ("region", "detection") for layer in layers)):
        problems.append("--boxes decodes [yolo] heads; this network has none, or other detection layers")
    if problems:
        raise ConversionError("these layers cannot be exported to ONNX exactly:\n  " + "\n  ".join(problems),
                              file=os.fspath(cfg))
    dim = batch if batch else "batch"
    outputs = []
    for index in _output_layers(layers):
        name = f"{layers[index].type}_{index}"
        g.nodes.append(helper.make_node("Identity", [g.tensor[index]], [name], name=f"output_{index}"))
        outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [dim, *_shape(layers[index])]))
    if boxes and heads:
        decoded = [_decoded(g, g.tensor[i], layers[i], sections[i], input_shape[2], input_shape[1]) for i in heads]
        classes = int(_option(sections[heads[0]], "classes", "20"))
        for name, parts, width in (("boxes", [d[0] for d in decoded], 4), ("scores", [d[1] for d in decoded], classes)):
            joined = parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=1)
            g.nodes.append(helper.make_node("Identity", [joined], [name], name=f"output_{name}"))
            outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [dim, None, width]))
    graph = helper.make_graph(g.nodes, os.path.basename(os.fspath(cfg)),
                              [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [dim, *input_shape])],
                              outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pydarknet")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker's ValidationError, shape inference's InferenceError
        raise ConversionError(f"internal: the exported model fails onnx's checker ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:300]}); please report this cfg",
                              file=os.fspath(cfg)) from None
    with atomic.replacing(path, inputs=(cfg, weights)) as (temp,):
        onnx.save(model, os.fspath(temp))
    return [output.name for output in outputs]


def verify(cfg: PathLike, weights: PathLike, path: PathLike, *, batches=(1, 2), seed: int = 0) -> folding.CheckResult:
    """Each output of the ONNX file on onnxruntime against pydarknet on the same random
    inputs, at each batch size: the worst difference relative to that output's largest
    value, as every check of a written model reports it (a NaN on either side fails)."""
    from ..runtime.network import Network

    onnxruntime = optional("onnxruntime", "--verify (the model on onnxruntime)", "onnxruntime")
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    pairs = []
    for batch in batches:
        with Network(cfg, weights, batch=batch) as net:
            x = np.random.default_rng(seed + batch).random((batch, *net.input_shape), dtype=np.float32)
            ours = net.layer_outputs(x)
        for name, theirs in zip(names, session.run(None, {"input": x})):
            if name in ("boxes", "scores"):  # decoded: the tests check them against detect()
                continue
            expected = ours[int(name.rsplit("_", 1)[1])].reshape(theirs.shape)
            pairs.append((f"{name} (batch {batch})", expected, theirs))
    return folding.compare(pairs, "onnxruntime", sum(batches))
