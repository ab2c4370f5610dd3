"""The limits pydarknet enforces before handing anything to Darknet, and the checks of
plain arguments shared by the API and the command line.

Darknet sizes and indexes its buffers with C ints; everything that would overflow one
is refused with a typed error instead (the C side checks each layer, this module the
arguments). The memory and pixel budgets below are defaults that each call can raise.
"""

from __future__ import annotations

import math
import os
import numbers

INT_MAX = 2**31 - 1
#: Most threads set_num_threads() accepts: each one costs a stack and scratch memory,
#: and the OpenMP runtime ends the process when it cannot create them.
MAX_THREADS = 256
#: Most pixels an image may declare (PIL's own decompression-bomb limit): about 1 GB as
#: the float32 RGB image Darknet works on. Images are checked from their header, before
#: anything is decoded. Pass ``max_pixels=`` to raise it for one call.
MAX_IMAGE_PIXELS = 89_478_485


#: How a drawn box is labelled: its class name (upstream's), the name and confidence, or no text.
LABEL_STYLES = ("name", "conf", "none")


def label_style(labels: str) -> str:
    """``labels`` checked as one of LABEL_STYLES."""
    if labels not in LABEL_STYLES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_STYLES)}, not {labels!r}")
    return labels


#: The runtimes a Darknet BatchNorm fold can be made for (their BN denominators differ).
FOLD_TARGETS = ("cpu", "gpu")


def fold_target(target: str) -> str:
    """``target`` checked as one of FOLD_TARGETS."""
    if target not in FOLD_TARGETS:
        raise ValueError(f"target must be 'cpu' or 'gpu', not {target!r}")
    return target


def network_memory() -> int:
    """The default memory budget of one network: this machine's physical memory (an
    allocation beyond it would swap or wake the OOM killer instead of failing)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0  # unknown: no budget, allocations are still checked


def positive_int(value, name: str, maximum: int = INT_MAX) -> int:
    """``value`` as an int in 1..maximum, else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int between 1 and {maximum}, not {value!r}")
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}, got {value}")
    return int(value)


def probability(value, name: str) -> float:
    """``value`` as a float in [0, 1] (thresholds, NMS overlap), else TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not 0.0 <= number <= 1.0:  # also false for NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return number
