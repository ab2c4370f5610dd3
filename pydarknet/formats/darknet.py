"""Darknet's two files as data: the .cfg kept line for line (so a tool can change a
key and leave comments, order and every other key as they were), and the .weights
as one float32 array per layer, laid out by the runtime's own reading of the cfg.

The runtime parses the cfg (``Network``) and says how many floats each layer reads
(``Layer.n_params``); this module never guesses a layer's shape itself.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .. import atomic
from ..errors import CfgError, FileError, WeightsError

PathLike = Union[str, "os.PathLike[str]"]
#: Layer types whose batch normalization folds into their own weights and biases
#: (patch bn-free-weights's can_fold_batchnorm).
FOLDABLE = ("convolutional", "deconvolutional", "connected")
_STRIPPED = str.maketrans("", "", " \t\n\r")  # the characters upstream's strip() removes


# -- cfg ---------------------------------------------------------------------------


@dataclass
class Option:
    key: str
    value: str
    line: int  # index into Cfg.lines


@dataclass
class Section:
    name: str  # without brackets, e.g. "convolutional"
    line: int  # index of the [name] line in Cfg.lines
    options: Dict[str, Option] = field(default_factory=dict)

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        option = self.options.get(key)
        return default if option is None else option.value


class Cfg:
    """A .cfg file: ``lines`` as read (line endings kept) and the ``sections`` they
    define, read exactly as upstream's read_cfg() reads them: lines end at '\n' only
    (fgetl), spaces, tabs, CR and LF are removed anywhere in a line (strip), '#' and ';'
    start comments, and a key is what comes before the first '='. ``layers`` are the
    sections after [net], one per network layer. A NUL byte, which the C reader treats
    in ways no editor shows, is refused."""

    def __init__(self, text: str, path: Optional[PathLike] = None):
        self.path = None if path is None else Path(os.fspath(path))
        where = str(self.path) if self.path else None
        pieces = text.split("\n")
        self.lines: List[str] = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        self.sections: List[Section] = []
        for index, raw in enumerate(self.lines):
            if "\0" in raw:
                raise CfgError("a NUL byte: this is not a text cfg", file=where, line=index + 1)
            line = raw.translate(_STRIPPED)
            if not line or line[0] in "#;":
                continue
            if line[0] == "[":
                self.sections.append(Section(line[1:line.find("]")] if "]" in line else line[1:], index))
            elif "=" in line and self.sections:
                key, value = line.split("=", 1)
                # Darknet's option_find() reads a key's first line; a repeated key is unused
                self.sections[-1].options.setdefault(key, Option(key, value, index))
            else:
                raise CfgError(f"'{raw.strip()}' is not a [section] or key=value line", file=where, line=index + 1)
        if not self.sections or self.sections[0].name not in ("net", "network"):
            raise CfgError("the first section must be [net]", file=where)

    @classmethod
    def read(cls, path: PathLike) -> "Cfg":
        """The cfg in ``path``, its bytes as the C reader sees them (text that is not
        UTF-8 is kept byte for byte)."""
        try:
            with open(path, "rb") as f:
                return cls(f.read().decode("utf-8", "surrogateescape"), path)
        except OSError as e:
            raise FileError(f"cannot read the cfg: {e.strerror}", file=os.fspath(path)) from None

    def write(self, path: PathLike) -> None:
        """The lines, byte for byte as read (but for changed keys), into ``path``."""
        Path(os.fspath(path)).write_bytes(self.text().encode("utf-8", "surrogateescape"))

    @property
    def layers(self) -> List[Section]:
        return self.sections[1:]

    def set(self, section: Section, key: str, value: str) -> None:
        """Change ``key`` of ``section`` to ``value`` on the key's own line (its
        indentation and line ending kept)."""
        option = section.options[key]
        old = self.lines[option.line]
        indent = old[:len(old) - len(old.lstrip(" \t"))]
        ending = old[len(old.rstrip("\r\n")):]
        self.lines[option.line] = f"{indent}{key}={value}{ending}"
        option.value = value

    def text(self) -> str:
        return "".join(self.lines)

    def where(self, section: Section) -> str:
        """``file:line [name]`` for messages."""
        return f"{self.path or '<cfg>'}:{section.line + 1} [{section.name}]"


def cfg_without_bn(cfg_path: PathLike, layer_indices: Sequence[int]) -> Cfg:
    """The cfg with batch_normalize=0 in the given layers (everything else as it was)."""
    cfg = Cfg.read(cfg_path)
    for index in layer_indices:
        cfg.set(cfg.layers[index], "batch_normalize", "0")
    return cfg


def cfg_text(sections: Sequence[Tuple[str, Dict[str, object]]]) -> str:
    """A cfg from (section name, options) pairs, [net] first, one blank line apart."""
    blocks = ["\n".join([f"[{name}]"] + [f"{key}={value}" for key, value in options.items()])
              for name, options in sections]
    return "\n\n".join(blocks) + "\n"


# -- weights -----------------------------------------------------------------------


class WeightsHeader(NamedTuple):
    major: int
    minor: int
    revision: int
    seen: int
    seen_bytes: int  # 8 (size_t) for version >= 0.2, else 4

    @property
    def size(self) -> int:
        return 12 + self.seen_bytes

    @property
    def transposed(self) -> bool:
        """Old files store [connected] weights as [inputs][outputs]."""
        return self.major > 1000 or self.minor > 1000

    def pack(self) -> bytes:
        return struct.pack("<iii", self.major, self.minor, self.revision) + \
            self.seen.to_bytes(self.seen_bytes, "little")


CURRENT_HEADER = WeightsHeader(0, 2, 0, 0, 8)


def parse_header(data: bytes, path: Optional[str] = None) -> WeightsHeader:
    if len(data) < 16:
        raise WeightsError(f"file is too short for a weights header ({len(data)} bytes)", file=path)
    major, minor, revision = struct.unpack_from("<iii", data)
    seen_bytes = 8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4
    if len(data) < 12 + seen_bytes:
        raise WeightsError(f"file is too short for a weights header ({len(data)} bytes)", file=path)
    seen = int.from_bytes(data[12:12 + seen_bytes], "little")
    return WeightsHeader(major, minor, revision, seen, seen_bytes)


@dataclass
class Weights:
    """A weights file split by layer: ``layers[i]`` holds the floats layer i reads
    (empty for layers without parameters), in file order."""

    header: WeightsHeader
    layers: List[np.ndarray]

    @classmethod
    def read(cls, path: PathLike, n_params: Sequence[int]) -> "Weights":
        """Read ``path`` for layers that take ``n_params[i]`` floats each; the file
        size must match exactly."""
        name = os.fspath(path)
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise FileError(f"cannot read the weights: {e.strerror}", file=name) from None
        header = parse_header(data, name)
        expected = header.size + 4 * sum(n_params)
        if len(data) != expected:
            side = "short" if len(data) < expected else "long"
            raise WeightsError(
                f"file is too {side}: the cfg needs {expected} bytes ({header.size}-byte header + "
                f"{sum(n_params)} floats), the file has {len(data)}; it is truncated or belongs to another cfg",
                file=name)
        floats = np.frombuffer(data, dtype="<f4", offset=header.size)
        bounds = np.cumsum([0, *n_params])
        bad = np.flatnonzero(~np.isfinite(floats))
        if bad.size:  # as the C loader refuses them (patch checked-weights-io)
            layer = int(np.searchsorted(bounds, bad[0], side="right")) - 1
            kind = "NaN" if np.isnan(floats[bad[0]]) else "infinite"
            raise WeightsError(f"the value at byte {header.size + 4 * int(bad[0])} is {kind} "
                               f"({bad.size} non-finite values in all): these weights are not usable "
                               f"(a diverged training run writes them)", file=name, section=layer)
        return cls(header, [floats[a:b].astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:])])

    def write(self, path: PathLike) -> None:
        """Write atomically (a temporary file renamed into place)."""
        with atomic.replacing(path) as (temp,):
            with open(temp, "wb") as f:
                f.write(self.header.pack())
                for floats in self.layers:
                    f.write(np.ascontiguousarray(floats, dtype="<f4").tobytes())


# -- a layer's floats --------------------------------------------------------------


@dataclass
class AffineParams:
    """A conv/deconv/connected layer's floats by name. ``weights`` is shaped with the
    output channel on ``out_axis``; the BN arrays are None without batch_normalize."""

    biases: np.ndarray
    weights: np.ndarray
    out_axis: int
    scales: Optional[np.ndarray] = None
    rolling_mean: Optional[np.ndarray] = None
    rolling_variance: Optional[np.ndarray] = None


def split_affine(kind: str, floats: np.ndarray, outputs: int, inputs: int, bn: bool,
                 transposed: bool = False) -> AffineParams:
    """Name the floats of a convolutional / deconvolutional / connected layer with
    ``outputs`` filters; ``inputs`` is the input channel count (deconv) or the
    input size (connected), unused for conv.

    File order: conv and deconv: biases, [scales, mean, variance], weights;
    connected: biases, weights, [scales, mean, variance]. Conv weights are
    [n][c/groups*k*k], deconv [c][n][k*k], connected [outputs][inputs] (or
    [inputs][outputs] in files whose header says transposed)."""
    n_bn = 3 * outputs if bn else 0
    biases = floats[:outputs]
    if kind == "connected":
        weights = floats[outputs:len(floats) - n_bn]
        bn_floats = floats[len(floats) - n_bn:]
        if transposed:
            weights, axis = weights.reshape(inputs, outputs), 1
        else:
            weights, axis = weights.reshape(outputs, inputs), 0
    else:
        bn_floats = floats[outputs:outputs + n_bn]
        weights = floats[outputs + n_bn:]
        if kind == "deconvolutional":
            weights, axis = weights.reshape(inputs, outputs, -1), 1
        else:
            weights, axis = weights.reshape(outputs, -1), 0
    params = AffineParams(biases, weights, axis)
    if bn:
        params.scales, params.rolling_mean, params.rolling_variance = bn_floats.reshape(3, outputs)
    return params


def join_affine(kind: str, params: AffineParams) -> np.ndarray:
    """The floats of ``params`` in file order (the inverse of split_affine)."""
    bn = [params.scales, params.rolling_mean, params.rolling_variance] if params.scales is not None else []
    parts = [params.biases, params.weights.ravel(), *bn] if kind == "connected" else \
        [params.biases, *bn, params.weights.ravel()]
    return np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])
