"""What a network says about its layers and detections: the ``Layer`` rows of its
summary (read from the C side's pdn_layer) and upstream's raw detections."""

from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple

from ..binding import ffi, lib
from ..errors import InternalError

Shape = Tuple[int, ...]


class RawDetection(NamedTuple):
    """One class of one box as upstream's detector reports it (relative coordinates)."""

    class_id: int
    prob: float
    objectness: float
    x: float
    y: float
    w: float
    h: float


class Layer(NamedTuple):
    """One row of a network's layer summary. Shapes are (channels, height, width)."""

    index: int
    type: str
    input_shape: Shape
    output_shape: Shape
    filters: int
    size: int
    stride: int
    pad: int
    groups: int
    batch_normalize: bool
    activation: str
    n_weights: int  # weights proper (no biases, no batchnorm values)
    n_params: int  # floats this layer takes from a weights file
    bflops: float
    inputs: int = 0  # floats per image in
    outputs: int = 0  # floats per image out
    partial_load: bool = False  # dontload, dontloadscales, numload or flipped is set
    winograd: int = 0  # Winograd output tile m (F(m x m, 3 x 3)); 0: im2col + GEMM
    onednn: bool = False  # runs as a oneDNN primitive
    int8: bool = False  # that primitive computes in int8 (Network(precision="int8"))
    kernel: str = ""  # the primitive's implementation as oneDNN names it, e.g. "brg:avx2"


def read_layer(net, index: int) -> Layer:
    """Layer ``index`` of the C network ``net``."""
    raw = ffi.new("pdn_layer *")
    if lib.pdn_layer_get(net, index, raw):
        raise InternalError(f"no layer {index} in this network")
    return Layer(
        index=index,
        type=ffi.string(raw.type).decode(),
        input_shape=(raw.c, raw.h, raw.w),
        output_shape=(raw.out_c, raw.out_h, raw.out_w),
        filters=raw.filters,
        size=raw.size,
        stride=raw.stride,
        pad=raw.pad,
        groups=raw.groups,
        batch_normalize=bool(raw.batch_normalize),
        activation=ffi.string(raw.activation).decode(),
        n_weights=raw.n_weights,
        n_params=raw.n_params,
        bflops=raw.bflops,
        inputs=raw.inputs,
        outputs=raw.outputs,
        partial_load=bool(raw.partial_load),
        winograd=raw.winograd,
        onednn=bool(raw.onednn),
        int8=bool(raw.int8),
        kernel=ffi.string(raw.kernel).decode(),
    )


def layer_table(layers: Sequence[Layer], bflops: float, n_params: int) -> str:
    """Network.summary(): index, type, input and output shapes, BFLOPs, details."""
    rows = [f"{'#':>4}  {'type':<15} {'input (c,h,w)':>18}  {'output (c,h,w)':>18}  {'BFLOPs':>7}  details"]
    for layer in layers:
        details = []
        if layer.filters:
            details.append(f"{layer.filters} filters")
        if layer.size:
            details.append(f"{layer.size}x{layer.size}/{layer.stride}")
        if layer.batch_normalize:
            details.append("bn")
        if layer.activation:
            details.append(layer.activation)
        if layer.winograd:
            details.append(f"winograd F({layer.winograd}x{layer.winograd},3x3)")
        if layer.onednn:
            details.append(f"onednn {'int8 ' if layer.int8 else ''}({layer.kernel})")
        rows.append(f"{layer.index:>4}  {layer.type:<15} {'x'.join(map(str, layer.input_shape)):>18}  "
                    f"{'x'.join(map(str, layer.output_shape)):>18}  {layer.bflops:>7.3f}  {' '.join(details)}")
    rows.append(f"total {bflops:.3f} BFLOPs, {n_params} parameters")
    return "\n".join(rows)
