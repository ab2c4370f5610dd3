"""Images in, as Darknet wants them: planar float32 RGB in [0, 1].

Files and encoded bytes are decoded by upstream's own code (stb_image), so results
equal the darknet CLI's. Arrays and PIL images are converted the way upstream
converts decoded pixels: value / 255 computed in double, stored as float32.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional, Union

import numpy as np

from .. import binding, errors
from ..binding import ffi, lib
from ..errors import ImageError
from ..formats.preprocessing import CHANNEL_ORDERS, DARKNET, Preprocessing, sidecar, stated
from ..limits import INT_MAX, MAX_IMAGE_PIXELS, positive_int

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]


class Image:
    """A decoded image: ``array`` is (3, height, width) float32 RGB in [0, 1]."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, dtype=np.float32)
        self.channels, self.height, self.width = self.array.shape
        if not (self.height and self.width):  # letterboxing divides by both
            raise ImageError(f"the image has no pixels ({self.width} x {self.height})")
        self._struct = ffi.new("pdn_image *", {"w": self.width, "h": self.height, "c": self.channels,
                                               "data": ffi.from_buffer("float[]", self.array)})

    @property
    def size(self):
        """(width, height) in pixels."""
        return self.width, self.height

    def to_uint8(self) -> np.ndarray:
        """Height x width x 3 uint8 RGB (exact for images decoded from 8-bit data)."""
        return np.rint(self.array * 255).astype(np.uint8).transpose(1, 2, 0)


def _decoded(call, *args, max_pixels: int) -> Image:
    """Run a pdn_image_* decoder and own the result as a numpy array."""
    raw = ffi.new("pdn_image *")
    err = ffi.new("pdn_error *")
    if call(*args, max_pixels, raw, err):
        raise binding.error(err)
    return owned_image(raw)


def owned_image(raw) -> Image:
    """An Image holding a copy of a pdn_image the C code made, which is then freed."""
    try:
        count = raw.c * raw.h * raw.w
        array = np.frombuffer(ffi.buffer(raw.data, 4 * count), dtype=np.float32).copy()
    finally:
        lib.pdn_image_free(raw)
    return Image(array.reshape(raw.c, raw.h, raw.w))


# (float)px/255. as upstream computes it in double, for each of the 256 values: a lookup
# gives the same float32 without float64 temporaries 16x the image's size.
_UINT8_TO_FLOAT = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def _check_pixels(height: int, width: int, max_pixels: int) -> None:
    if height * width > max_pixels:
        raise ImageError(f"the image is {width} x {height} = {height * width} pixels, more than the limit of "
                         f"{max_pixels}; if you trust it, decode it with pydarknet.load_image(source, "
                         "max_pixels=N) and pass that image")


def _from_uint8(array: np.ndarray, channel_order: str, max_pixels: int) -> Image:
    """Grey (H, W) or (H, W, 1) becomes the same value in all three channels and an
    alpha channel (H, W, 4) is dropped, as Darknet's decoder does with such files."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"uint8 images must be height x width (grey), or height x width x 1 (grey), 3 (RGB or "
                         f"BGR) or 4 (with alpha, dropped), got shape {array.shape}")
    _check_pixels(array.shape[0], array.shape[1], max_pixels)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    if channel_order == "BGR":
        array = array[:, :, ::-1]
    return Image(_UINT8_TO_FLOAT[np.ascontiguousarray(array.transpose(2, 0, 1))])


def load_image(source: ImageSource, channel_order: str = "RGB", max_pixels: Optional[int] = None) -> Image:
    """Decode or convert any supported image source.

    - a path (str or os.PathLike): decoded by upstream's stb_image, like the CLI;
    - bytes / bytearray / memoryview: an encoded file (JPEG, PNG, BMP, ...) in memory;
    - numpy uint8 (height, width, 3): pixels in ``channel_order`` ("RGB", or "BGR" for
      OpenCV frames); grey (height, width) or (height, width, 1) takes its value in
      every channel, and (height, width, 4) drops its alpha (RGBA or BGRA);
    - numpy float32 (3, height, width): already planar RGB in [0, 1];
    - a PIL image (any mode; converted to RGB).

    Images of more than ``max_pixels`` pixels (default ``limits.MAX_IMAGE_PIXELS``)
    raise ImageError, encoded ones from their header before anything is decoded; images
    without pixels and float images with values outside [0, 1] (NaN included) are refused.
    """
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else positive_int(max_pixels, "max_pixels", 2**62)
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, not {channel_order!r}")
    if isinstance(source, Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise errors.FileError("cannot open image: no such file", file=os.fsdecode(source))
        return _decoded(lib.pdn_image_load, os.fsencode(source), max_pixels=max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise errors.ImageError("cannot decode image data: it is empty")
        if len(data) > INT_MAX:
            raise errors.ImageError(f"cannot decode {len(data)} bytes of image data: "
                                    f"the decoder takes at most {INT_MAX}")
        return _decoded(lib.pdn_image_decode, data, len(data), max_pixels=max_pixels)
    if isinstance(source, np.ndarray):
        if source.dtype == np.uint8:
            return _from_uint8(source, channel_order, max_pixels)
        if source.dtype == np.float32:
            if source.ndim != 3 or source.shape[0] != 3:
                raise ValueError(f"float32 images must be 3 x height x width (planar RGB), got shape {source.shape}")
            _check_pixels(source.shape[1], source.shape[2], max_pixels)
            # not (min >= 0 and max <= 1): NaN fails both comparisons
            if source.size and not (source.min() >= 0 and source.max() <= 1):
                raise ValueError("float32 images must hold values in [0, 1] (no NaN)")
            return Image(source)
        raise TypeError(f"numpy images must be uint8 (H, W[, 1|3|4]) or float32 (3, H, W), not {source.dtype}")
    if hasattr(source, "convert") and hasattr(source, "size") and hasattr(source, "mode"):  # PIL
        width, height = source.size
        _check_pixels(height, width, max_pixels)
        try:
            pixels = np.asarray(source.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for damaged files
            raise errors.ImageError(f"PIL cannot decode this image: {exc}") from exc
        return _from_uint8(pixels, "RGB", max_pixels)
    raise TypeError(
        f"unsupported image type {type(source).__name__}: use a path, bytes, a numpy array or a PIL image"
    )


class PreprocessingWarning(UserWarning):
    """A converted model that states how its images are prepared runs without that."""


def model_preprocessing(cfg, choice) -> Preprocessing:
    """What a network loaded from ``cfg`` does to images: ``choice`` "auto" takes what
    the .json next to the cfg states (else Darknet's own), None takes Darknet's own
    (with a warning when the .json states something else), a Preprocessing or a dict of
    its fields takes those."""
    if isinstance(choice, Preprocessing):
        return choice
    if isinstance(choice, dict):
        return Preprocessing(**choice)
    if choice not in ("auto", None):
        raise TypeError(f"preprocessing must be 'auto', None, a Preprocessing or a dict, not {choice!r}")
    found = stated(cfg)
    if choice == "auto":
        return found or DARKNET
    if found is not None and not found.is_darknets:
        warnings.warn(f"{sidecar(cfg)} states the preprocessing {found}, but the network runs with Darknet's "
                      "(RGB 0-1 letterbox): its outputs will be wrong unless the inputs are prepared that way; "
                      "load it with preprocessing='auto' (the default)", PreprocessingWarning, stacklevel=3)
    return DARKNET


def c_preprocessing(preprocessing: Preprocessing):
    """The pdn_preprocessing for the C paths; NULL for Darknet's own, which keeps every
    upstream choice (the cfg's letter_box included)."""
    if preprocessing.is_darknets:
        return ffi.NULL
    resize = {"letterbox": lib.PDN_SIZE_LETTERBOX, "stretch": lib.PDN_SIZE_STRETCH, "crop": lib.PDN_SIZE_CROP}
    return ffi.new("pdn_preprocessing *", {
        "resize": resize[preprocessing.resize], "crop_from": preprocessing.crop_from,
        "max_pixels": MAX_IMAGE_PIXELS,
        "bgr": preprocessing.channel_order == "BGR", "pixel_range": preprocessing.pixel_range,
        "mean": list(preprocessing.mean), "scale": list(preprocessing.scale)})
