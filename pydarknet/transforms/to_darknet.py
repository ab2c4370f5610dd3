"""Any ModelGraph -> Darknet files: the conversion core both importers (Caffe, ONNX)
share. It drives darknet_mapping over the graph, writes OUT.cfg, OUT.weights and
OUT.json (input shape, preprocessing, what each node became) together or not at all,
and checks that the runtime loads them with the shapes the mapping expects."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .. import atomic
from ..errors import ConversionError, DarknetError
from ..formats.darknet import CURRENT_HEADER, Weights, cfg_text
from ..formats.model_graph import ModelGraph, Shape
from ..formats.preprocessing import Preprocessing
from . import folding
from .darknet_layers import DarknetLayer, InputMissing, Unsupported
from .darknet_mapping import Mapper

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class Conversion:
    """The converted network, and what became of each node of the original."""

    layers: List[DarknetLayer]
    input_shape: Shape
    input_name: str
    output_name: str
    mapping: List[dict]
    tensor_layers: Dict[str, int]  # tensor -> the Darknet layer whose output holds exactly it
    source_format: str
    preprocessing: Preprocessing
    notes: List[str] = field(default_factory=list)
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
        lines = [f"converted {len(self.mapping)} {self.source_format} layers into {len(self.layers)} Darknet layers"]
        lines += [f"  {entry['source']} ({entry['type']}): {entry['how']}" for entry in self.mapping]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"preprocessing: {self.preprocessing}")
        lines += [f"wrote {path}" for path in self.outputs]
        if self.verify is not None:
            lines.append(str(self.verify))
        return "\n".join(lines)


def convert_graph(graph: ModelGraph, *, input_shape: Optional[Shape] = None, fold_bn: bool = True,
                  preprocessing: Optional[dict] = None) -> Conversion:
    """The Darknet layers for ``graph``. ``preprocessing``: fields that replace what the
    file states. Raises ConversionError listing every node that cannot convert."""
    if len(graph.inputs) != 1:
        raise ConversionError(f"the network has {len(graph.inputs)} inputs ({', '.join(graph.inputs) or 'none'}); "
                              "Darknet networks have one")
    shape = tuple(input_shape) if input_shape else graph.input_shape
    if shape is None or len(shape) != 3 or min(shape) < 1:
        raise ConversionError(f"input shape {shape}: give C,H,W (--input-shape)")
    mapper = Mapper(graph, shape, fold_bn)
    unsupported, mapping = [], []
    for position, node in enumerate(graph.nodes):
        try:
            how = mapper.convert(position)
        except Unsupported as e:
            unsupported.append(f"{node.name} ({node.kind}): {e}")
            continue
        except InputMissing as e:
            if not unsupported:  # an input no node produces: the file is broken
                raise graph.error(f"{node.label} reads '{e}', which nothing before it produces") from None
            continue
        except DarknetError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:  # values no check foresaw
            raise graph.error(f"{node.label}: cannot be converted ({type(e).__name__}: {e})") from None
        top = mapper.where.get(node.outputs[0]) if node.outputs else None
        mapping.append({"source": node.name, "type": node.kind, "how": how,
                        "darknet": top.index if top and top.index >= 0 else None})
    if unsupported:
        raise ConversionError(f"{len(unsupported)} layer(s) cannot be converted:\n  " + "\n  ".join(unsupported))
    if not mapper.layers:
        raise ConversionError("the network has no layer that computes anything")
    final = mapper.where.get(graph.output)
    if final is None:
        raise graph.error(f"the network output '{graph.output}' is not computed by any layer")
    if final.index != len(mapper.layers) - 1:
        mapper.read(final, "the network output")
    notes = list(graph.notes) + [f"{line} (a depthwise 1x1 convolution instead)" for line in mapper.kept]
    unread = [name for node in graph.nodes for name in node.outputs if not graph.readers(name) and
              name != graph.output and node.op not in ("identity", "unsupported")]
    if unread:
        notes.append(f"other unread tensors ({', '.join(sorted(set(unread)))}) are not outputs of the Darknet "
                     f"model, whose output is '{graph.output}'")
    tensor_layers = {}
    for position, node in enumerate(graph.nodes):
        for name in node.outputs:
            blob = mapper.where.get(name)
            # a layer with a BatchNorm folded or kept in it holds the normalized value, not its own
            if blob is not None and blob.index >= 0 and position not in mapper.plans and name not in mapper.overwritten:
                tensor_layers[name] = blob.index
    stated = Preprocessing(**(graph.preprocessing or {}))
    return Conversion(mapper.layers, shape, graph.input, graph.output, mapping, tensor_layers,
                      graph.source_format, stated.override(**(preprocessing or {})), notes)


def _check_runtime_shapes(conversion: Conversion, cfg: PathLike, weights: PathLike) -> None:
    """Load the written files and compare every layer's shape with the mapping's."""
    from ..runtime.network import Network

    try:
        net = Network(cfg, weights, fold_bn=False)  # shapes only
    except DarknetError as e:  # the message, not the temporary file it names
        layer = e.section if e.section is not None and e.section < len(conversion.layers) else None
        where = conversion.layers[layer].source if layer is not None else \
            f"the input {'x'.join(map(str, conversion.input_shape))} (C x H x W)"
        raise ConversionError(f"{where}: Darknet cannot run this: {e.message}") from None
    with net:
        for layer, expected in zip(net.layers, conversion.layers):
            got = layer.output_shape if len(expected.shape) == 3 else (layer.outputs,)
            if tuple(got) != expected.shape:
                raise ConversionError(f"internal: Darknet layer {layer.index} ({expected.source}) has output shape "
                                      f"{got}, the original's is {expected.shape}; please report this model")


def write(conversion: Conversion, out: PathLike, source: Dict[str, str], inputs: Sequence[PathLike],
          fold_bn: bool) -> Conversion:
    """Write ``out``.cfg, ``out``.weights and ``out``.json, all three or none."""
    paths = [f"{os.fspath(out)}{suffix}" for suffix in (".cfg", ".weights", ".json")]
    description = {
        "source": source,
        "input": {"tensor": conversion.input_name, "shape_chw": list(conversion.input_shape)},
        "output": {"tensor": conversion.output_name},
        "preprocessing": conversion.preprocessing.to_json(),
        "batch_norm": "folded" if fold_bn else "kept (batch_normalize=1)",
        "layers": conversion.mapping,
        "notes": conversion.notes,
    }
    with atomic.replacing(*paths, inputs=inputs) as (cfg_temp, weights_temp, json_temp):
        cfg_temp.write_text(conversion.cfg(), encoding="utf-8")
        conversion.weights().write(weights_temp)
        _check_runtime_shapes(conversion, cfg_temp, weights_temp)
        json_temp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    conversion.outputs = paths
    return conversion


def layer_outputs(conversion: Conversion, x: np.ndarray) -> List[np.ndarray]:
    """Every layer's output for the inputs ``x``, from the files as written."""
    from ..runtime.network import Network

    with Network(*conversion.outputs[:2], batch=len(x), fold_bn=False) as net:
        return net.layer_outputs(x)
