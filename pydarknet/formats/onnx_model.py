"""An ONNX model as a ModelGraph: the ONNX front end of the converter.

Read with the onnx package and checked by its checker; onnx's shape inference gives
every tensor's shape for the input size (batch as the file states it, else 1), and
whatever depends on constants only (the Shape/Gather/Concat chains exporters emit
before a Reshape, Constant nodes, casts of initializers) is evaluated by onnx's
reference evaluator at the model's own opset, so only operations on the image remain.
Two patterns PyTorch exports for one layer become one node: x * Sigmoid(x) (SiLU,
swish) and MatMul followed by the Add of a bias (nn.Linear at some opsets).
"""

from __future__ import annotations

import math
import os
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from ..errors import ConversionError, DarknetError, OnnxError, optional
from .model_graph import ModelGraph, Node, Shape
from .onnx_ops import OPS, Unsupported

PathLike = Union[str, "os.PathLike[str]"]
#: Bytes constant folding may allocate beyond the model's own data (the shape tensors
#: and casts exporters fold are tiny; a dead ConstantOfShape([N, 1024, 1024]) is not).
FOLD_ALLOWANCE = 16 << 20
NOT_STATED = ("not stated by the ONNX file: RGB 0-1, stretched to the input, no mean or std; pass --mean/--std "
              "(torchvision's: --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225) if the model was trained with them")


def onnx():
    return optional("onnx", "ONNX import", "onnx (or pip install \".[onnx]\")")


def read_onnx(path: PathLike):
    """The model in ``path``, checked by onnx's checker; OnnxError naming the file if
    it cannot be read or is not valid ONNX. Tensors stored outside the file (external
    data) are read only from files inside the model's own folder, whatever the onnx
    version (before 1.16 it follows '../' out of it)."""
    module = onnx()
    if not os.path.isfile(path):
        raise OnnxError("no such file", file=os.fspath(path))
    try:
        model = module.load(os.fspath(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError
        raise OnnxError(f"not a valid ONNX model ({type(e).__name__}: {str(e).strip()[:300]}); export it again",
                        file=os.fspath(path)) from None
    _check_names(model.graph, os.fspath(path))
    _load_external_data(module, model, os.path.dirname(os.path.abspath(path)), os.fspath(path))
    try:
        module.checker.check_model(model)
    except Exception as e:  # the checker's ValidationError
        raise OnnxError(f"not a valid ONNX model ({type(e).__name__}: {str(e).strip().splitlines()[0][:300]}); "
                        "export it again", file=os.fspath(path)) from None
    return model


def _check_names(graph, path: str) -> None:
    """Names are UTF-8 text (protobuf hands out an invalid one as bytes, which every
    message and the written .json would then trip over)."""
    named = [(f"node {i}", node, ("name", "op_type", "domain")) for i, node in enumerate(graph.node)]
    named += [(f"value '{value.name}'", value, ("name",))
              for value in list(graph.input) + list(graph.output) + list(graph.initializer) + list(graph.value_info)]
    for where, item, fields in named:
        names = [(f, getattr(item, f)) for f in fields] + [("input", n) for n in getattr(item, "input", ())] \
            + [("output", n) for n in getattr(item, "output", ())]
        for field, value in names:
            if not isinstance(value, str):
                raise OnnxError(f"{where}: its {field} {value!r} is not UTF-8 text", file=path)


def _tensors(graph) -> Iterator:
    """Every tensor a graph holds: initializers, node attributes, subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _load_external_data(module, model, folder: str, path: str) -> None:
    """Read each externally stored tensor from its file, which must lie in ``folder``
    (symbolic links resolved) and hold the bytes the tensor declares."""
    real_folder = os.path.realpath(folder)
    for tensor in _tensors(model.graph):
        if tensor.data_location != module.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = os.path.realpath(os.path.join(real_folder, location))
        if not location or os.path.isabs(location) or os.path.commonpath([real_folder, target]) != real_folder:
            raise OnnxError(f"the tensor '{tensor.name}' is stored in {location!r}, outside the model's folder; "
                            "external data must lie beside the model", file=path)
        try:
            module.external_data_helper.load_external_data_for_tensor(tensor, real_folder)
            tensor.data_location = module.TensorProto.DEFAULT
            del tensor.external_data[:]
        except Exception as e:  # a missing file, an offset or length beyond it
            raise OnnxError(f"the tensor '{tensor.name}' cannot be read from {location!r} "
                            f"({type(e).__name__}: {str(e)[:200]})", file=path) from None


class _Reader:
    """The walk over one model's nodes."""

    def __init__(self, model, input_shape: Optional[Shape]):
        module = onnx()
        self.numpy_helper = module.numpy_helper
        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        graph = model.graph
        self.constants: Dict[str, np.ndarray] = {t.name: self._array(t) for t in graph.initializer}
        # what folding may allocate: a file cannot make us hold much more than its own data
        self.fold_budget = FOLD_ALLOWANCE + sum(v.nbytes for v in self.constants.values())
        inputs = [i for i in graph.input if i.name not in self.constants]
        self.inputs = [i.name for i in inputs]
        if len(inputs) != 1:  # model_graph stops here, and the conversion core refuses it
            return
        self.input = inputs[0].name
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        if dims and len(dims) != 4:
            raise ConversionError(f"the input '{self.input}' has {len(dims)} dimensions; Darknet takes N x C x H x W")
        stated = tuple(dims[1:]) if dims and all(dims[1:]) else None
        self.input_shape = tuple(input_shape) if input_shape else stated
        self.folded = set()  # positions of the nodes evaluated as constants
        self.shapes: Dict[str, Shape] = {}
        if self.input_shape:
            batch = (dims[0] if dims and dims[0] else 1,)
            self.shapes = self._infer_shapes(batch + self.input_shape)
            # evaluate what depends on constants only, then infer again: a Reshape's shape
            # computed by a Shape/Gather/Concat chain is known only then
            self.folded = {i for i, node in enumerate(graph.node) if self._fold(node)}
            if self.folded:
                self.shapes = self._infer_shapes(batch + self.input_shape)
        self.consumers: Dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        for output in graph.output:
            self.consumers[output.name] = self.consumers.get(output.name, 0) + 1
        self.nodes: List[Node] = []
        self.made: Dict[str, int] = {}  # tensor -> position in self.nodes

    def _array(self, tensor) -> np.ndarray:
        try:
            return self.numpy_helper.to_array(tensor)
        except Exception as e:  # an unknown data type, a size that does not fit the dims
            raise OnnxError(f"the initializer '{tensor.name}' cannot be read ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None

    def _infer_shapes(self, shape: Shape) -> Dict[str, Shape]:
        """Static shapes of the tensors, for an input of ``shape``, with the nodes folded
        so far replaced by their values."""
        module = onnx()
        model = module.ModelProto()
        model.CopyFrom(self.model)
        kept = [node for i, node in enumerate(model.graph.node) if i not in self.folded]
        del model.graph.node[:]
        model.graph.node.extend(kept)
        known = {t.name for t in model.graph.initializer}
        model.graph.initializer.extend(self.numpy_helper.from_array(np.asarray(value), name)
                                       for name, value in self.constants.items() if name not in known)
        typed = next(i for i in model.graph.input if i.name == self.input).type.tensor_type
        del typed.shape.dim[:]
        for value in shape:
            typed.shape.dim.add().dim_value = value
        try:
            inferred = module.shape_inference.infer_shapes(model, data_prop=True)
        except Exception as e:  # the inference raises its own InferenceError
            raise OnnxError(f"onnx's shape inference fails for input shape {shape}: {str(e).strip()[:300]}") from None
        shapes = {}
        for value in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
            dims = value.type.tensor_type.shape.dim
            if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                shapes[value.name] = tuple(d.dim_value for d in dims)
        return shapes

    # -- constants -----------------------------------------------------------------

    def _fold(self, node) -> bool:
        """Evaluate ``node`` if it depends on constants (and static shapes) only."""
        names = [n for n in node.input if n]
        if node.op_type in ("Shape", "Size") and names and names[0] in self.shapes:
            shape = self.shapes[names[0]]  # its value, without the tensor (which may be huge)
            a = _attributes(node)
            value = shape[a.get("start", 0):a.get("end", len(shape))] if node.op_type == "Shape" else math.prod(shape)
            if math.prod(shape) > 2**63 - 1:
                raise OnnxError(f"{_label(node)}: the shape {shape} is too large")
            self.constants[node.output[0]] = np.array(value, dtype=np.int64)
            return True
        if all(n in self.constants for n in names) and node.op_type not in ("RandomNormal", "RandomUniform"):
            feeds = {n: self.constants[n] for n in names}
        else:
            return False
        size = 8 * self._fold_elements(node, [feeds[n] for n in names])  # bytes, at most 8 per element
        if size > self.fold_budget:
            raise OnnxError(f"{_label(node)} would make a constant of about {size / 2**20:.0f} MB, "
                            f"beyond what this model's own data allows ({self.fold_budget / 2**20:.0f} MB)")
        self.fold_budget -= size
        module = onnx()
        helper = module.helper
        typed = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                 for n, v in feeds.items()]
        untyped = [helper.make_tensor_value_info(n, module.TensorProto.UNDEFINED, None) for n in node.output if n]
        alone = helper.make_model(helper.make_graph([node], "fold", typed, untyped),
                                  opset_imports=self.model.opset_import)
        try:
            from onnx.reference import ReferenceEvaluator

            values = ReferenceEvaluator(alone).run(None, feeds)
        except Exception as e:
            raise OnnxError(f"{_label(node)} computes a constant that onnx's reference evaluator "
                            f"cannot ({type(e).__name__}: {str(e)[:200]})") from None
        self.constants.update({n: np.asarray(v) for n, v in zip([n for n in node.output if n], values)})
        return True

    def _fold_elements(self, node, inputs: List[np.ndarray]) -> int:
        """How many values evaluating ``node`` makes: from the inferred shapes, else for
        the operators that make more than they read, from their inputs' values."""
        shapes = [self.shapes.get(n) for n in node.output if n]
        if shapes and all(shape is not None for shape in shapes):
            return sum(math.prod(shape) for shape in shapes)
        op, count = node.op_type, lambda values: math.prod(int(v) for v in np.ravel(values))
        try:
            if op == "ConstantOfShape":
                return count(inputs[0])
            if op == "Expand":
                return count(np.broadcast_shapes(inputs[0].shape, tuple(int(v) for v in np.ravel(inputs[1]))))
            if op == "Tile":
                return inputs[0].size * count(inputs[1])
            if op == "Range":
                start, limit, delta = (float(np.ravel(v)[0]) for v in inputs[:3])
                return max(math.ceil((limit - start) / delta), 0)
        except (ValueError, IndexError, OverflowError, ZeroDivisionError):
            return 0  # onnx's evaluator refuses these inputs itself
        return sum(v.size for v in inputs) + 1

    def constant(self, name: str, what: str) -> np.ndarray:
        if name not in self.constants:
            raise Unsupported(f"its {what} is computed from the image; only constant {what}s convert")
        return self.constants[name]

    def shape(self, name: str) -> Shape:
        if name not in self.shapes:
            raise Unsupported(f"the shape of '{name}' is unknown (give --input-shape)")
        return self.shapes[name]

    # -- nodes ---------------------------------------------------------------------

    def add(self, node, op: str, inputs: Sequence[str], attrs: dict = None, params: dict = None,
            outputs: Sequence[str] = None) -> None:
        outputs = [n for n in (outputs or node.output[:1])]
        self.nodes.append(Node(op, node.name or outputs[0], node.op_type, list(inputs), outputs, attrs or {},
                               params or {}))
        for name in outputs:
            self.made[name] = len(self.nodes) - 1

    def read(self) -> None:
        for position, node in enumerate(self.model.graph.node):
            if position in self.folded:
                continue
            if node.domain not in ("", "ai.onnx"):
                reason = f"an operator of domain {node.domain}"
                self.add(node, "unsupported", [n for n in node.input if n], {"reason": reason})
                continue
            translate = OPS.get(node.op_type)
            try:
                if translate is None:
                    raise Unsupported("no Darknet equivalent is implemented")
                extra = [n for n in node.output[1:] if n and self.consumers.get(n)]
                if extra:
                    raise Unsupported(f"its output(s) {', '.join(extra)} are used; only the first converts")
                translate(self, node, _attributes(node))
            except Unsupported as e:
                data = [n for n in node.input if n and n not in self.constants]
                self.add(node, "unsupported", data, {"reason": str(e)})
            except DarknetError:
                raise
            except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:  # values no check foresaw
                raise OnnxError(f"{_label(node)} cannot be read ({type(e).__name__}: {str(e)[:200]})") from None


def _label(node) -> str:
    """How messages name an ONNX node: its operator and name (else its first output)."""
    return f"{node.op_type} '{node.name or (node.output[0] if node.output else '')}'"


def _attributes(node) -> dict:
    return {a.name: onnx().helper.get_attribute_value(a) for a in node.attribute}


def model_graph(model, input_shape: Optional[Shape] = None) -> ModelGraph:
    """The ModelGraph of an ONNX ModelProto (``input_shape``: C, H, W for a model whose
    file leaves them open, or to replace them)."""
    reader = _Reader(model, input_shape)
    if len(reader.inputs) != 1:
        return ModelGraph([], reader.inputs, None, "", "ONNX", OnnxError)
    reader.read()
    outputs = [o.name for o in model.graph.output]
    if not outputs:
        raise OnnxError("the model declares no output")
    notes = []
    if len(outputs) > 1:
        notes.append(f"the model has {len(outputs)} outputs; the Darknet model's is the first, '{outputs[0]}'")
    if outputs[0] in reader.constants:
        raise ConversionError(f"the output '{outputs[0]}' does not depend on the input")
    preprocessing = {"channel_order": "RGB", "pixel_range": 1.0, "resize": "stretch", "stated_by": NOT_STATED}
    return ModelGraph(reader.nodes, reader.inputs, reader.input_shape, outputs[0], "ONNX", OnnxError,
                      preprocessing, notes)
