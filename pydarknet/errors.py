"""Exceptions raised for everything Darknet reports as an error.

Each carries the file, the layer index (``section``) and the cfg ``line`` where
Darknet knew them, and says so in its message.
"""

from __future__ import annotations

import os
from typing import Optional


class DarknetError(Exception):
    """Base class of every error pydarknet raises for bad models, files or images."""

    def __init__(self, message: str, *, file: Optional[str] = None,
                 section: Optional[int] = None, line: Optional[int] = None):
        self.message = message
        self.file = file or None
        self.section = section if section is not None and section >= 0 else None
        self.line = line if line is not None and line > 0 else None
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.section is not None:
            where += f"{': ' if where else ''}layer {self.section}"
        super().__init__(f"{where}: {message}" if where else message)

    def in_file(self, file) -> "DarknetError":
        """This error, naming ``file`` where it names none (for the file a tool was
        given, when the error comes from deeper down)."""
        if self.file is not None:
            return self
        located = type(self)(self.message, file=os.fspath(file), section=self.section, line=self.line)
        located.__traceback__ = self.__traceback__
        return located


class FileError(DarknetError, OSError):
    """A file could not be opened, read or written."""


class CfgError(DarknetError, ValueError):
    """The .cfg network description is invalid."""


class WeightsError(DarknetError, ValueError):
    """The .weights file does not match the network (truncated, too long, foreign)."""


class ImageError(DarknetError, ValueError):
    """An image could not be decoded."""


class CaffeError(DarknetError, ValueError):
    """A Caffe .prototxt or .caffemodel is malformed or inconsistent."""


class OnnxError(DarknetError, ValueError):
    """An ONNX model is malformed or inconsistent."""


class FoldError(DarknetError, ValueError):
    """A model cannot be folded as asked (the message says why)."""


class DatasetError(DarknetError, ValueError):
    """A dataset is unusable: a .data file, its image list, or COCO annotations."""


class ConversionError(DarknetError, ValueError):
    """A model cannot be converted (the message lists every layer in the way)."""


class OutOfMemoryError(DarknetError, MemoryError):
    """Darknet could not allocate memory."""


class InternalError(DarknetError):
    """An internal consistency check in Darknet failed (please report with the cfg)."""


class DeviceError(DarknetError):
    """The device asked for cannot run the network: a build without CUDA, a GPU that is
    not there, a layer with no GPU code, or an error the GPU or a CUDA library reported."""


def printable(text: str) -> str:
    """A name as it can be printed and stored in JSON: bytes of a file name that are not
    UTF-8 (kept by Python as lone surrogates) written as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class DependencyError(ImportError):
    """A feature needs an optional package that is not installed; the message says which
    feature, which package, and the pip command that installs it."""


def optional(module: str, feature: str, install: str):
    """``module`` imported, or DependencyError: ``feature`` needs ``pip install
    {install}``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DependencyError(f"{feature} needs {module.split('.')[0]}: pip install {install}") from None
