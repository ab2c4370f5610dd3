"""``pydarknet.export_onnx``: a model as every API function takes it (a Network, a zoo
name, or a cfg and weights) exported by transforms/darknet_to_onnx.py."""

from __future__ import annotations

import os
from typing import List, Optional, Union

from ..runtime.network import Network
from ..transforms.darknet_to_onnx import DEFAULT_OPSET, export
from .zoo import model_files

PathLike = Union[str, "os.PathLike[str]"]


def export_onnx(model, weights: Optional[PathLike], path: PathLike, *, opset: int = DEFAULT_OPSET,
                batch: Optional[int] = None, boxes: bool = False) -> List[str]:
    """Write ``path``, the ONNX model of a Network loaded from its weights file (weights
    None), of a zoo model (its name) or of a cfg and weights; returns the output names."""
    if isinstance(model, Network):
        if model.weights_path is None or weights is not None:
            raise ValueError("export_onnx(network, None, path) exports a Network loaded with its weights file")
        model, weights = model.cfg_path, model.weights_path
    found = model_files(model, weights)
    return export(found.cfg, found.weights, path, opset=opset, batch=batch, boxes=boxes)
