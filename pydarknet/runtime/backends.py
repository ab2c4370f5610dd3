"""What computes a network's layers: the backend (``Network(backend=...)``) and the
precision (``Network(precision=...)``), as the C side takes them."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ..binding import ffi, lib
from ..formats import quantization
from ..formats.preprocessing import sidecar

_NULL = ffi.NULL

#: What a network computes its layers with (``Network(backend=...)``), in the order of
#: csrc/pydarknet.h's PDN_BACKEND_*: upstream Darknet's own forward functions, our CPU
#: kernels (csrc/backend/cpu.c, with Winograd convolutions), and those with oneDNN
#: primitives for the other convolutions (builds with PYDARKNET_BACKEND=onednn).
BACKENDS = ("upstream", "cpu", "onednn")


def backend_for(name: Optional[str]) -> str:
    """The backend a network asks for; None: the best this build has."""
    if name is None:
        return "onednn" if lib.pdn_has_onednn() else "cpu"
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "onednn" and not lib.pdn_has_onednn():
        raise ValueError("backend='onednn': this build has no oneDNN (rebuild with PYDARKNET_BACKEND=onednn, "
                         "the default on Linux x86-64)")
    return name


#: What the CPU convolutions compute in (``Network(precision=...)``): "int8" needs the
#: quantization parameters ``pydarknet quantize`` writes next to the cfg (oneDNN builds).
PRECISIONS = ("float32", "int8")


def int8_inputs(cfg: Path, precision: str, backend: str, device: str, layer_types: List[str]):
    """The C array of int8 layer inputs for precision="int8" (NULL for float32)."""
    if precision == "float32":
        return _NULL, None
    if not lib.pdn_has_onednn():
        raise ValueError("precision='int8' computes on oneDNN, which this build has not (PYDARKNET_BACKEND=onednn, "
                         "the default on Linux x86-64)")
    if device != "cpu" or backend != "onednn":
        raise ValueError(f"precision='int8' runs on the CPU with the oneDNN backend, not {device} with "
                         f"backend={backend!r}")
    found = quantization.stated(cfg)
    if found is None:
        raise ValueError(f"precision='int8': {sidecar(cfg)} states no quantization parameters for {cfg.name}; "
                         f"write them with: pydarknet quantize --cfg {cfg} --weights W --calibrate IMAGES -o OUT")
    inputs = found.per_layer(layer_types, sidecar(cfg))
    array = ffi.new("pdn_int8_input[]", len(inputs))
    for item, (scale, signed) in zip(array, inputs):
        item.scale, item.is_signed = scale, signed
    return array, found
