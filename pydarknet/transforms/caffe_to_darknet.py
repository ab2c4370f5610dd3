"""Caffe -> Darknet: a Caffe network (prototxt + caffemodel) as a Darknet cfg + weights
that the patched runtime runs with the same numbers.

formats/caffe_model.py reads the network Caffe builds for inference (phase TEST; blob
versions follow in-place layers) into a ModelGraph; to_darknet turns that into Darknet
layers, as it does for ONNX models. ``verify`` runs the original on OpenCV DNN.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from ..errors import DarknetError
from ..formats.caffe import blobs_by_layer, read_caffemodel, read_prototxt
from ..formats.caffe_graph import Graph
from ..formats.caffe_model import model_graph
from ..formats.model_graph import Shape
from . import folding
from .opencv_reference import opencv_errors, opencv_net
from .to_darknet import Conversion, convert_graph, layer_outputs, write

PathLike = Union[str, "os.PathLike[str]"]


def convert_net(structure, weights, *, input_shape_chw: Optional[Shape] = None, fold_bn: bool = True,
                preprocessing: Optional[dict] = None) -> Conversion:
    """The conversion of NetParameters (structure from the prototxt, blobs from the
    caffemodel). Raises ConversionError listing every layer that cannot convert."""
    graph = model_graph(structure, {name: list(b) for name, b in blobs_by_layer(weights).items()})
    return convert_graph(graph, input_shape=input_shape_chw, fold_bn=fold_bn, preprocessing=preprocessing)


def caffe_to_darknet(prototxt: PathLike, caffemodel: PathLike, out: PathLike, *,
                     input_shape: Optional[Shape] = None, fold_bn: bool = True,
                     preprocessing: Optional[dict] = None) -> Conversion:
    """Convert and write ``out``.cfg, ``out``.weights and ``out``.json (input shape,
    preprocessing, layer mapping); all three or none. ``preprocessing``: fields of
    formats.preprocessing.Preprocessing (mean, scale, channel_order, ...) for models
    whose prototxt does not state them."""
    try:
        conversion = convert_net(read_prototxt(prototxt), read_caffemodel(caffemodel),
                                 input_shape_chw=input_shape, fold_bn=fold_bn, preprocessing=preprocessing)
        source = {"prototxt": os.fspath(prototxt), "caffemodel": os.fspath(caffemodel)}
        return write(conversion, out, source, (prototxt, caffemodel), fold_bn)
    except DarknetError as e:
        raise e.in_file(prototxt) from None


def verify(prototxt: PathLike, caffemodel: PathLike, conversion: Conversion, inputs: int = 2,
           seed: int = 0) -> folding.CheckResult:
    """The Caffe model on OpenCV DNN and the converted one on pydarknet, same random
    inputs: the network output, and every mapped layer whose output both expose."""
    x = np.random.default_rng(seed).random((inputs, *conversion.input_shape), dtype=np.float32)
    with opencv_errors(prototxt):  # OpenCV builds its layers on the first forward
        cv2, caffe = opencv_net(prototxt, caffemodel, x)
        graph = Graph.build(read_prototxt(prototxt))
        # OpenCV names a layer's output by the layer: pair each blob's final writer in the
        # original network with the Darknet layer holding that blob.
        # (OpenCV's importer renames some layers after their top: try both names.)
        writer = {name: layer.name for layer in graph.layers for name in layer.top if layer.type != "Input"}
        names, indices = [], []
        for blob, index in conversion.tensor_layers.items():
            found = [n for n in (writer.get(blob), blob) if n is not None and caffe.getLayerId(n) >= 0]
            if found:
                names.append(found[0])
                indices.append(index)
        reference = caffe.forward(names) if names else []
        outputs = layer_outputs(conversion, x)
        pairs = [(f"'{name}' (Darknet layer {i})", ref, outputs[i].reshape(ref.shape))
                 for name, i, ref in zip(names, indices, reference)]
        last = caffe.forward()
        output = [(f"the network output '{conversion.output_name}'", last, outputs[-1].reshape(last.shape))]
    runtime = f"OpenCV DNN {cv2.__version__} vs pydarknet"
    result = folding.compare(pairs + output, runtime, inputs)
    result.output = folding.compare(output, runtime, inputs)
    return result
