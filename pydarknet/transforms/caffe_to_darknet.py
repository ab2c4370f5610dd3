"""Caffe -> Darknet: a Caffe network (prototxt + caffemodel) as a Darknet cfg + weights
that the patched runtime runs with the same numbers.

The conversion walks the graph Caffe builds for inference (phase TEST; blob versions
follow in-place layers), so the order of lines in the file does not matter beyond
what Caffe itself requires. Each Caffe layer becomes zero or more Darknet layers;
Darknet layers read the layer before them, so a [route] is inserted whenever a layer's
input is not the previous layer's output, and every route/shortcut index is absolute,
computed after all insertions (caffe_layers.py holds the mappings); whatever Darknet
cannot compute exactly is an error naming the layer, never an approximation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .. import atomic
from ..errors import CaffeError, ConversionError
from ..formats.caffe import blobs_by_layer, read_caffemodel, read_prototxt
from ..formats.darknet import CURRENT_HEADER, Weights, cfg_text
from . import folding
from ..formats.caffe_graph import Graph, describe, input_shape, with_blobs
from .caffe_layers import Blob, Converter, DarknetLayer, InputMissing, Unsupported
from .fold_caffe import fold_net, plan_folds
from .opencv_reference import opencv_errors, opencv_net

PathLike = Union[str, "os.PathLike[str]"]
Shape = Tuple[int, ...]  # (C, H, W) for maps, (N,) for vectors
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
    converter = Converter(graph, blobs, plans, shape, inputs[0])
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
        except Unsupported as e:
            unsupported.append(f"{layer.name} ({layer.type}): {e}")
            continue
        except InputMissing as e:
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
