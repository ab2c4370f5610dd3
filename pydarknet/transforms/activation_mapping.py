"""Activations as Darknet layers, for the mapping (darknet_mapping.Mapper): the ones
Darknet has join the layer before them where they may; the ones it lacks (other leaky
slopes, PReLU, clips such as ReLU6) are built from relu or hardtan and exact affine maps:
depthwise 1x1 convolutions and weighted shortcuts that upstream Darknet runs as they are."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..formats.model_graph import Node
from .darknet_layers import ACTIVATIONS, HAS_ACTIVATION, WEIGHTED, Blob, DarknetLayer, Unsupported, depthwise


class ActivationMapping:
    """The activation nodes' part of Mapper, which provides bottom, read, emit, output,
    set_outputs, map_shape, copy_input, layers, graph and overwritten."""

    def _activation(self, position: int, node: Node) -> str:
        if node.op == "leaky":
            return self._leaky(position, node, float(node.attrs["slope"]))
        return self._apply_activation(position, node, ACTIVATIONS[node.op])

    def _joinable(self, position: int, node: Node) -> Optional[DarknetLayer]:
        """The layer producing the node's input, if the node may become part of it: it is the
        last layer, has no activation yet, and nothing else reads its output."""
        blob = self.bottom(node)
        last = self.layers[-1] if self.layers else None
        if (blob.exclusive and blob.index == len(self.layers) - 1 and last is not None
                and last.section in HAS_ACTIVATION and last.options.get("activation") == "linear"
                and self.graph.only_reader(node.inputs[0]) == position):
            return last
        return None

    def _join(self, node: Node, layer: DarknetLayer, activation: str) -> str:
        layer.options["activation"] = activation
        layer.source += f" + {node.label}"
        self.overwritten.add(node.inputs[0])
        self.set_outputs(node, self.bottom(node))
        return f"activation={activation} of layer {len(self.layers) - 1}"

    def _apply_activation(self, position: int, node: Node, activation: str) -> str:
        """The producing layer's own activation when it may take one; else an [activation] layer."""
        layer = self._joinable(position, node)
        if layer is not None:
            return self._join(node, layer, activation)
        return self.output(node, "activation", {"activation": activation}, [], self.bottom(node).shape)

    def _shortcut_source(self, node: Node) -> Blob:
        """The node's input, made the previous layer's output, for layers that end in a
        [shortcut] back to it (which cannot read the network input: a copy of it then)."""
        blob = self.bottom(node)
        if blob.index < 0 and not self.layers:
            blob = self.copy_input(f"for {node.label}")
        self.read(blob, node.label)
        return blob

    def _leaky(self, position: int, node: Node, slope: float) -> str:
        """Darknet's leaky slope is fixed at 0.1 (and 0 is relu); another slope a is (1 - a) relu(x)
        + a x: an [activation] and a [shortcut] back to x weighted by alpha and beta (exact but
        for the rounding of that sum where x > 0, under 1e-7 of x)."""
        if not np.isfinite(slope):
            raise Unsupported(f"negative slope {slope}: not a number Darknet can compute with")
        if slope == 0 or abs(slope - 0.1) <= 1e-7:
            return self._apply_activation(position, node, "relu" if slope == 0 else "leaky")
        blob = self._shortcut_source(node)
        self.emit("activation", {"activation": "relu"}, [], blob.shape, node.label)
        a = np.float32(slope)  # Darknet's own precision, in the shortest form that reads back the same
        alpha, beta = str(1 - a), str(a)
        index = self.emit("shortcut", {"from": blob.index, "alpha": alpha, "beta": beta, "activation": "linear"},
                          [], blob.shape, node.label)
        self.set_outputs(node, Blob(index, blob.shape))
        return f"layers {index - 1}..{index} [activation] + [shortcut] ({alpha} relu(x) + {beta} x)"

    def _prelu(self, position: int, node: Node) -> str:
        """One slope: as leaky. One per channel (a_c <= 1): x + relu((a_c - 1) x), a depthwise
        1x1 [convolutional] with activation=relu and a [shortcut] back to x (exact where
        x > 0, one rounding of the sum elsewhere)."""
        slope = np.asarray(node.params["slope"], np.float64).ravel()
        if not np.isfinite(slope).all():
            raise Unsupported("a slope that is not a number Darknet can compute with")
        if slope.size == 1:
            return self._leaky(position, node, float(slope[0]))
        channels = self.map_shape(self.bottom(node))[0]
        if slope.size != channels:
            raise self.graph.error(f"{node.label}: {slope.size} slopes for {channels} channels")
        if (slope > 1).any():
            c = int(np.argmax(slope > 1))
            raise Unsupported(f"slope {slope[c]:g} in channel {c}: per-channel slopes above 1 have no exact "
                              "form in Darknet layers (x + relu((a - 1) x) needs a <= 1)")
        blob = self._shortcut_source(node)
        self.emit("convolutional", *depthwise(channels, slope - 1, 0.0, "relu"), blob.shape, node.label)
        index = self.emit("shortcut", {"from": blob.index, "activation": "linear"}, [], blob.shape, node.label)
        self.set_outputs(node, Blob(index, blob.shape))
        return f"layers {index - 1}..{index} [convolutional] (depthwise, relu) + [shortcut]: x + relu((a - 1) x)"

    def _clip(self, position: int, node: Node) -> str:
        """clip(s x + t, lo, hi) (Clip, ReLU6, HardSigmoid). Darknet's hardtan clips to [-1, 1]:
        a depthwise 1x1 [convolutional] maps [lo, hi] onto it, a second one maps back; with
        one bound, relu takes hardtan's place (relu(x - lo) + lo, hi - relu(hi - x))."""
        lo, hi = float(node.attrs["min"]), float(node.attrs["max"])
        s, t = float(node.attrs.get("scale", 1.0)), float(node.attrs.get("shift", 0.0))
        if not (lo < hi and np.isfinite([s, t]).all()):
            raise Unsupported(f"bounds [{lo:g}, {hi:g}] with scale {s:g} and shift {t:g}: not a clip Darknet computes")
        if (s, t, lo, hi) == (1.0, 0.0, 0.0, np.inf):
            return self._apply_activation(position, node, "relu")
        if np.isfinite([lo, hi]).all():
            into = (2 * s / (hi - lo), (2 * t - lo - hi) / (hi - lo), "hardtan")
            back = ((hi - lo) / 2, (lo + hi) / 2)
        elif np.isfinite(lo):
            into, back = (s, t - lo, "relu"), (1.0, lo)
        elif np.isfinite(hi):
            into, back = (-s, hi - t, "relu"), (-1.0, hi)
        else:
            into, back = (s, t, "linear"), None
        blob, producer = self.bottom(node), self._joinable(position, node)
        if producer is not None and producer.section in WEIGHTED and not producer.options.get("batch_normalize"):
            # the map into the range is one scale for all channels: the producer's weights take it
            k, shift, activation = into
            biases, weights = producer.params
            producer.params = [np.asarray(biases, np.float64) * k + shift, np.asarray(weights, np.float64) * k]
            how = self._join(node, producer, activation)
        else:
            self.read(blob, node.label)
            self.emit("convolutional", *depthwise(blob.shape[0], *into), blob.shape, node.label)
            how = f"layer {len(self.layers) - 1} [convolutional] (depthwise 1x1, activation={into[2]})"
        if back is not None:
            self.emit("convolutional", *depthwise(blob.shape[0], *back), blob.shape, node.label)
            how += f" + layer {len(self.layers) - 1} [convolutional] (depthwise 1x1, back to [{lo:g}, {hi:g}])"
        self.set_outputs(node, Blob(len(self.layers) - 1, blob.shape))
        return how
