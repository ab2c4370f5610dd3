"""A CNN as a format-neutral graph: what the Caffe and ONNX readers produce and the
one Darknet mapping (transforms/darknet_mapping.py) consumes.

Every tensor has one name and one producer (Caffe's in-place blobs get a name per
version), so who reads what is unambiguous. Ops use the conventions both formats
share (NCHW; a batch axis 0 that Darknet handles by itself):

- ``conv``: weight (O, I/group, kh, kw), bias (O) or none; kernel, stride, dilation
  (h, w); pads (top, left, bottom, right); group.
- ``deconv``: weight (I, O/group, kh, kw), bias; the same attributes, output_padding.
- ``dense``: weight (N, K) applied to the flattened input, bias (N) or none.
- ``batchnorm``: mean, variance, gamma, beta (per channel); eps; batch_statistics
  (normalizes with the batch's own statistics: not an inference layer).
- ``affine``: per-channel scale and bias.
- ``relu``, ``leaky`` (slope), ``sigmoid``, ``tanh``, ``swish`` (x * sigmoid(x)).
- ``prelu``: slope, one per channel or one for all.
- ``clip``: min(max(scale x + shift, min), max); min, max may be infinite; scale 1
  and shift 0 unless given.
- ``maxpool``/``avgpool``: kernel, stride, pads, ceil (output size rounding);
  clip_padded_only (Caffe: a ceil-rounded last window that starts past the input is
  dropped only when there is padding; ONNX/PyTorch: always); count_include_pad.
- ``global_avgpool``, ``global_maxpool``.
- ``add`` (coeffs, one per input), ``concat`` (axis), ``flatten`` (axis, end_axis),
  ``softmax`` (axis; whole: over everything from axis on, as ONNX before opset 13),
  ``upsample`` (scale (h, w), nearest), ``identity``.
- ``unsupported``: a node the reader could not express (``reason``), reported with the
  others before anything is written.

Any node may carry ``attrs["unusable"]``: its op is known but the file does not let it
be computed (missing weights, a form of the op that has no exact mapping); the reason
is reported like an unsupported node's, and no BatchNorm folds through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

import numpy as np

from ..errors import DarknetError

Shape = Tuple[int, ...]


@dataclass
class Node:
    op: str
    name: str  # the source's own name for it
    kind: str  # the source's own type ("Convolution", "Conv")
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    params: Dict[str, np.ndarray] = field(default_factory=dict)
    origin: int = -1  # its position among the source's own layers/nodes, for tools that edit the source

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass
class ModelGraph:
    nodes: List[Node]  # in an order where every input is produced before it is read
    inputs: List[str]  # the network inputs (Darknet networks have one: the converter checks)
    input_shape: Optional[Shape]  # (C, H, W), if the file states it
    output: str
    source_format: str  # "Caffe", "ONNX": how messages name the original
    error: Type[DarknetError]  # raised for a file that contradicts itself
    preprocessing: Optional[dict] = None  # what the file states, formats/preprocessing.py's fields
    notes: List[str] = field(default_factory=list)

    def __post_init__(self):
        self._readers: Dict[str, List[int]] = {}
        self._producer: Dict[str, int] = {}
        for position, node in enumerate(self.nodes):
            for name in node.inputs:
                self._readers.setdefault(name, []).append(position)
            for name in node.outputs:
                self._producer[name] = position

    @property
    def input(self) -> str:
        return self.inputs[0] if self.inputs else ""

    def readers(self, tensor: str) -> List[int]:
        """Positions of the nodes reading ``tensor`` (the graph output counts as none)."""
        return self._readers.get(tensor, [])

    def producer(self, tensor: str) -> int:
        """Position of the node producing ``tensor``; -1 for the input or an unknown name."""
        return self._producer.get(tensor, -1)

    def only_reader(self, tensor: str) -> Optional[int]:
        """The one node reading ``tensor`` when nothing else (nor the output) does."""
        found = self.readers(tensor)
        return found[0] if len(found) == 1 and tensor != self.output else None
