"""Caffe's two files as data: .prototxt (text format) and .caffemodel (binary), both a
``caffe.NetParameter`` of the schema in caffe.proto, compiled when pydarknet is built.

Everything is read through protobuf (no hand-written parser, no Caffe install).
Deprecated V1 files (``layers`` with enum types) are upgraded to ``layer`` on
reading, as Caffe does, and always written back in the current form.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .. import atomic
from ..errors import CaffeError, FileError, optional

PathLike = Union[str, "os.PathLike[str]"]
_DESCRIPTOR = Path(__file__).with_name("caffe.desc")

# Caffe's UpgradeV1LayerType: V1 enum name -> layer type string.
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution",
    "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


@functools.lru_cache(maxsize=None)
def messages():
    """The caffe message classes by name (``messages().NetParameter`` ...)."""
    optional("google.protobuf", "reading Caffe files", "protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(_DESCRIPTOR.read_bytes())
    except OSError:
        raise ImportError(f"{_DESCRIPTOR} is missing: this pydarknet was not built completely; reinstall it") from None
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    get_class = getattr(message_factory, "GetMessageClass", None) or \
        message_factory.MessageFactory(pool).GetPrototype  # protobuf < 4.22
    package = files.file[0]
    classes = {m.name: get_class(pool.FindMessageTypeByName(f"{package.package}.{m.name}"))
               for m in package.message_type}
    return type("CaffeMessages", (), classes)


# -- reading and writing ------------------------------------------------------------


def _read_bytes(path: PathLike, what: str) -> bytes:
    try:
        return Path(os.fspath(path)).read_bytes()
    except OSError as e:
        raise FileError(f"cannot read the {what}: {e.strerror}", file=os.fspath(path)) from None


# Field 13 of PoolingParameter is BVLC's `round_mode` (CEIL = 0) but `ceil_mode` (a bool,
# true = ceil) in several forks and in OpenCV; text files say which one they mean.
_CEIL_MODE = re.compile(r"\bceil_mode\s*:\s*(true|false|True|False|1|0)\b")


def _bvlc_round_mode(match) -> str:
    return "round_mode: " + ("CEIL" if match.group(1).lower() in ("true", "1") else "FLOOR")


def read_prototxt(path: PathLike):
    """The NetParameter in a text .prototxt, upgraded from V1 if needed."""
    from google.protobuf import text_format

    data = _read_bytes(path, "prototxt")
    net = messages().NetParameter()
    try:
        text_format.Parse(_CEIL_MODE.sub(_bvlc_round_mode, data.decode("utf-8")), net)
    except UnicodeDecodeError as e:
        raise CaffeError(f"not a text prototxt ({e.reason} at byte {e.start}); "
                         "was a binary .caffemodel given in its place?", file=os.fspath(path)) from None
    except text_format.ParseError as e:
        line = getattr(e, "GetLine", lambda: None)()
        text = str(e).split(" : ", 1)[-1] if line else str(e)
        raise CaffeError(f"{text}; the file is not a Caffe NetParameter in text format, or uses fields of a "
                         "Caffe fork that BVLC's schema does not have", file=os.fspath(path), line=line) from None
    net = upgrade_v1(net, path)
    check_structure(net, path)
    return net


# Positive-size fields of the layers the tools read: (parameter message, fields).
_CONVOLUTION_SIZES = ("convolution_param", ("num_output", "group", "kernel_size", "kernel_h", "kernel_w",
                                            "stride", "stride_h", "stride_w", "dilation"))
_POSITIVE = {
    "Convolution": _CONVOLUTION_SIZES,
    "Deconvolution": _CONVOLUTION_SIZES,
    "Pooling": ("pooling_param", ("kernel_size", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w")),
    "InnerProduct": ("inner_product_param", ("num_output",)),
}
# Fewest bottoms a layer type needs: these, none for inputs and data layers, else one.
_MIN_BOTTOMS = {"Eltwise": 2}


def _min_bottoms(layer_type: str) -> int:
    if layer_type == "Input" or layer_type.endswith("Data"):
        return 0
    return _MIN_BOTTOMS.get(layer_type, 1)


def check_structure(net, path: Optional[PathLike] = None) -> None:
    """What the tools rely on in a prototxt's structure, checked once where it is read
    (as Caffe's own layer setup would refuse it): at least one layer, a top for every
    layer, positive sizes, strides and groups, and enough bottoms, each one produced by
    an earlier layer or declared as an input."""
    where = dict(file=None if path is None else os.fspath(path))
    if not net.layer:
        raise CaffeError("the prototxt declares no layers; is it the network description (deploy.prototxt)?",
                         **where)
    produced = set(net.input)
    for layer in net.layer:
        name = f"layer '{layer.name}' ({layer.type})"
        missing = [bottom for bottom in layer.bottom if bottom not in produced]
        if missing:
            raise CaffeError(f"{name} reads '{missing[0]}', which no layer before it produces", **where)
        produced.update(layer.top)
        if not layer.top and layer.type != "Silence":
            raise CaffeError(f"{name} has no top blob", **where)
        if len(layer.bottom) < _min_bottoms(layer.type):
            raise CaffeError(f"{name} needs at least {_min_bottoms(layer.type)} bottom blob(s), "
                             f"has {len(layer.bottom)}", **where)
        field_name, fields = _POSITIVE.get(layer.type, (None, ()))
        params = getattr(layer, field_name) if field_name else None
        for field in fields:
            values = getattr(params, field)
            values = list(values) if not isinstance(values, int) else ([values] if params.HasField(field) else [])
            if any(v < 1 for v in values):
                raise CaffeError(f"{name}: {field_name}.{field} must be positive, got {values}", **where)


def read_caffemodel(path: PathLike):
    """The NetParameter in a binary .caffemodel, upgraded from V1 if needed."""
    from google.protobuf.message import DecodeError

    data = _read_bytes(path, "caffemodel")
    net = messages().NetParameter()
    try:
        net.ParseFromString(data)
    except DecodeError as e:
        raise CaffeError(f"not a valid binary caffemodel ({e}); the file is truncated or not a caffemodel",
                         file=os.fspath(path)) from None
    if not net.layer and not net.layers:
        raise CaffeError("the caffemodel has no layers; the file is empty, truncated or not a caffemodel",
                         file=os.fspath(path))
    return upgrade_v1(net, path)


def write_model(net, prototxt: PathLike, caffemodel: PathLike, inputs=()) -> None:
    """A NetParameter as its two files, all or nothing (``atomic.replacing``, which also
    refuses to overwrite ``inputs``): the prototxt holds its structure (blobs left out,
    V1 ``layers`` too), the caffemodel all of it."""
    from google.protobuf import text_format

    structure = messages().NetParameter()
    structure.CopyFrom(net)
    for layer in [*structure.layer, *structure.layers]:
        del layer.blobs[:]
    with atomic.replacing(prototxt, caffemodel, inputs=inputs) as (text_temp, model_temp):
        text_temp.write_text(text_format.MessageToString(structure), encoding="utf-8")
        model_temp.write_bytes(net.SerializeToString())


# -- V1 ---------------------------------------------------------------------------


def upgrade_v1(net, path: Optional[PathLike] = None):
    """Move deprecated V1 ``layers`` into ``layer`` (in place; returns ``net``)."""
    if not net.layers:
        return net
    if net.layer:
        raise CaffeError("the file has both 'layer' and deprecated 'layers' entries; Caffe refuses such files too",
                         file=None if path is None else os.fspath(path))
    v1_type = messages().V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"]
    layer_fields = messages().LayerParameter.DESCRIPTOR.fields_by_name
    for old in net.layers:
        new = net.layer.add()
        new.name = old.name
        type_name = v1_type.values_by_number[old.type].name
        if type_name not in V1_TYPES:
            raise CaffeError(f"V1 layer '{old.name}' has type {type_name}, which has no current equivalent",
                             file=None if path is None else os.fspath(path))
        new.type = V1_TYPES[type_name]
        new.bottom.extend(old.bottom)
        new.top.extend(old.top)
        new.include.extend(old.include)
        new.exclude.extend(old.exclude)
        new.loss_weight.extend(old.loss_weight)
        new.blobs.extend(old.blobs)
        for descriptor, value in old.ListFields():
            if descriptor.name.endswith("_param") and descriptor.name in layer_fields:
                getattr(new, descriptor.name).CopyFrom(value)
        for i in range(max(len(old.param), len(old.blobs_lr), len(old.weight_decay))):
            spec = new.param.add()
            if i < len(old.param):
                spec.name = old.param[i]
            if i < len(old.blobs_lr):
                spec.lr_mult = old.blobs_lr[i]
            if i < len(old.weight_decay):
                spec.decay_mult = old.weight_decay[i]
    del net.layers[:]
    return net


# -- the test-phase network ------------------------------------------------------------


def _meets(rule, phase: int) -> bool:
    """Caffe's StateMeetsRule for a state with this phase, level 0 and no stages."""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if (rule.HasField("min_level") and rule.min_level > 0) or (rule.HasField("max_level") and rule.max_level < 0):
        return False
    return not rule.stage


def in_phase(layer, phase: int) -> bool:
    """Whether Caffe instantiates ``layer`` in ``phase``."""
    if layer.include:
        return any(_meets(rule, phase) for rule in layer.include)
    return not any(_meets(rule, phase) for rule in layer.exclude)


def test_layers(net) -> List:
    """The layers Caffe instantiates for inference (phase TEST)."""
    return [layer for layer in net.layer if in_phase(layer, messages().NetState().phase)]


# -- blobs --------------------------------------------------------------------------


def blob_array(blob) -> np.ndarray:
    """A BlobProto as a float32 array, shaped by ``shape`` or the legacy 4-D dims."""
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
    if min(shape, default=0) < 0 or values.size != math.prod(shape):  # Python ints: no wrap-around
        raise CaffeError(f"a blob holds {values.size} values for its shape {shape}")
    return values.reshape(shape)


def set_blob(blob, array: np.ndarray) -> None:
    """Store ``array`` as float32 data in the blob's own form: legacy 4-D dims if it
    had them (Caffe checks the form when it loads weights), else ``shape``."""
    legacy = not blob.HasField("shape") and any((blob.num, blob.channels, blob.height, blob.width))
    blob.Clear()
    if legacy and array.ndim <= 4:
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + tuple(array.shape)
    else:
        blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(np.asarray(array, dtype=np.float32).ravel())


def blobs_by_layer(net) -> Dict[str, Sequence]:
    """Layer name -> its blobs, as Caffe's CopyTrainedLayersFrom matches them."""
    found: Dict[str, Sequence] = {}
    for layer in net.layer:
        if layer.blobs and layer.name not in found:
            found[layer.name] = layer.blobs
    return found
