"""Layers written in Python, usable as ``[name]`` sections in any cfg.

    >>> def hard_swish(x, params):
    ...     return x * np.clip(x + 3, 0, 6) / 6
    >>> pydarknet.register_layer("hswish", output_shape=lambda shape, params: shape,
    ...                          forward=hard_swish)

``output_shape((c, h, w), params) -> (c, h, w)`` runs while the cfg is parsed;
``forward(x, params) -> array`` runs during each forward pass with ``x`` shaped
(batch, c, h, w) float32 (its own copy) and must return (batch, *output_shape).
``params`` holds the section's ``key=value`` lines as strings. An exception raised in
either comes out of ``Network(...)`` or ``Network.predict`` as itself; the network
stays usable. Registration is per process.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

from ..binding import ffi, keep_exception, lib
from ..errors import InternalError

Shape = Tuple[int, int, int]


@dataclass(frozen=True)
class _Spec:
    output_shape: Callable[[Shape, Dict[str, str]], Shape]
    forward: Callable[[np.ndarray, Dict[str, str]], np.ndarray]


@dataclass(frozen=True)
class _Instance:
    spec: _Spec
    params: Dict[str, str]
    input_shape: Shape
    output_shape: Shape


_specs: Dict[str, _Spec] = {}
_instances: Dict[int, _Instance] = {}
_ids = itertools.count()
_lock = threading.Lock()
_state = threading.local()  # .created: ids of the Python layers this load made


def register_layer(name: str, *, output_shape: Callable, forward: Callable) -> None:
    """Make ``[name]`` sections run ``forward`` (see the module documentation)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,30}", name or ""):
        raise ValueError(f"layer name {name!r}: use letters, digits, '_' or '-' (at most 31)")
    if not (callable(output_shape) and callable(forward)):
        raise TypeError("output_shape and forward must be callables")
    with _lock:
        if lib.pdn_register_python_section(name.encode()) != 0:
            raise ValueError(f"[{name}] is a built-in section (or too many layers are registered)")
        _specs[name] = _Spec(output_shape, forward)


def unregister_layer(name: str) -> None:
    """Forget ``[name]``; networks already loaded keep working."""
    with _lock:
        if _specs.pop(name, None) is None:
            raise ValueError(f"no Python layer [{name}] is registered")
        if lib.pdn_unregister_python_section(name.encode()) != 0:
            raise InternalError(f"[{name}] was registered here but Darknet's section registry does not have it")


class collecting:
    """Context manager: the ids of the Python layers created while loading a network."""

    def __enter__(self) -> List[int]:
        _state.created = []
        return _state.created

    def __exit__(self, *exc_info) -> None:
        _state.created = None


# Defaults bind the module state: Network.close() calls this from __del__, also at
# interpreter exit after this module's globals are cleared.
def forget(ids: List[int], _lock=_lock, _instances=_instances) -> None:
    with _lock:
        for layer_id in ids:
            _instances.pop(layer_id, None)


def _shape(value) -> Shape:
    shape = tuple(int(v) for v in value)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"output_shape must return three positive ints (c, h, w), got {value!r}")
    return shape


@ffi.def_extern()
def pdn_python_parse(section, c, h, w, batch, keys, values, n, out_shape):
    try:
        name = ffi.string(section).decode()[1:-1]
        params = {ffi.string(keys[i]).decode(): ffi.string(values[i]).decode() for i in range(n)}
        with _lock:
            spec = _specs[name]
        shape = _shape(spec.output_shape((c, h, w), dict(params)))
        with _lock:
            layer_id = next(_ids)
            _instances[layer_id] = _Instance(spec, params, (c, h, w), shape)
        created = getattr(_state, "created", None)
        if created is not None:
            created.append(layer_id)
        out_shape[0:3] = shape
        return layer_id
    except BaseException as exc:  # reported to the caller by Network
        keep_exception(exc)
        return -1


@ffi.def_extern()
def pdn_python_forward(layer_id, batch, input_ptr, output_ptr):
    try:
        with _lock:
            layer = _instances[layer_id]
        c, h, w = layer.input_shape
        # a copy: the previous layer's buffer is freed with the network, and forward may keep x
        x = np.frombuffer(ffi.buffer(input_ptr, 4 * batch * c * h * w), dtype=np.float32).reshape(batch, c, h, w).copy()
        y = np.asarray(layer.spec.forward(x, dict(layer.params)), dtype=np.float32)
        expected = (batch,) + layer.output_shape
        if y.shape != expected:
            raise ValueError(f"forward returned shape {y.shape}, expected {expected}")
        out = np.frombuffer(ffi.buffer(output_ptr, 4 * y.size), dtype=np.float32)
        out[:] = y.reshape(-1)
        return 0
    except BaseException as exc:  # reported to the caller by Network.predict
        keep_exception(exc)
        return -1
