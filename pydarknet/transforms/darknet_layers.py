"""What the mapping (darknet_mapping.py) makes of a model graph: Darknet layers, where
each tensor lives among them, and why a node could not become any."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from ..formats.model_graph import Shape

# Darknet layers with an activation of their own, which a following activation joins.
HAS_ACTIVATION = ("convolutional", "deconvolutional", "connected", "shortcut")
WEIGHTED = ("convolutional", "deconvolutional", "connected")  # params [biases, weights] without BN
ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh", "swish": "swish"}


class Unsupported(Exception):
    """One node that cannot be converted; collected, then reported together."""


class InputMissing(Exception):
    """A node downstream of one that could not be converted (not reported again)."""


@dataclass
class DarknetLayer:
    section: str
    options: Dict[str, object]
    params: List[np.ndarray]  # in weights-file order
    shape: Shape  # the output shape the runtime must report
    source: str  # the node(s) it comes from


@dataclass
class Blob:
    """Where a tensor lives in the Darknet network: the output of layer ``index`` (-1:
    the network input). ``exclusive``: nothing else reads that Darknet output through
    another name (so an activation may join the layer)."""

    index: int
    shape: Shape
    exclusive: bool = True


def depthwise(channels: int, k, shift, activation: str = "linear") -> Tuple[Dict, List[np.ndarray]]:
    """activation(k x + shift) per channel: the options and weights of a depthwise 1x1
    [convolutional] (exact: one product and one sum per value)."""
    options = {"filters": channels, "size": 1, "stride": 1, "padding": 0, "groups": channels,
               "batch_normalize": 0, "activation": activation}
    return options, [np.broadcast_to(np.asarray(shift, np.float64), (channels,)),
                     np.broadcast_to(np.asarray(k, np.float64), (channels,)).reshape(channels, 1, 1, 1)]
