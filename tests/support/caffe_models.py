"""Caffe models written from Python (a fixture maker for the tests and benchmarks):
a prototxt and a caffemodel with random blobs and non-trivial BN statistics, built
with pydarknet's compiled caffe.proto. What they are checked on is OpenCV DNN."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from pydarknet.formats.caffe import blob_array, messages, read_caffemodel, set_blob, write_model


class NetBuilder:
    """Adds layers in order; tracks each blob's (C, H, W) to size the weights."""

    def __init__(self, shape: Tuple[int, int, int] = (4, 6, 6), seed: int = 0, input_style: str = "input_shape"):
        self.net = messages().NetParameter(name="test")
        self.rng = np.random.default_rng(seed)
        self.shapes: Dict[str, Tuple[int, ...]] = {"data": shape}
        if input_style == "input_shape":
            self.net.input.append("data")
            self.net.input_shape.add().dim.extend([1, *shape])
        elif input_style == "input_dim":
            self.net.input.append("data")
            self.net.input_dim.extend([1, *shape])
        else:
            layer = self.layer("input", "Input", [], ["data"])
            layer.input_param.shape.add().dim.extend([1, *shape])

    def layer(self, name: str, kind: str, bottoms: Sequence[str], tops: Sequence[str]):
        layer = self.net.layer.add(name=name, type=kind)
        layer.bottom.extend(bottoms)
        layer.top.extend(tops)
        return layer

    def blob(self, layer, array: np.ndarray, legacy: bool = False) -> None:
        blob = layer.blobs.add()
        array = np.asarray(array, dtype=np.float32)
        if legacy:  # num, channels, height, width, right-aligned
            dims = (1,) * (4 - array.ndim) + array.shape
            blob.num, blob.channels, blob.height, blob.width = dims
        else:
            blob.shape.dim.extend(array.shape)
        blob.data.extend(array.ravel().tolist())

    def conv(self, name, bottom, top, num_output, kernel=3, group=1, bias=True, deconv=False, legacy=False,
             pad=None, stride=1):
        c, h, w = self.shapes[bottom]
        pad = kernel // 2 if pad is None else pad
        layer = self.layer(name, "Deconvolution" if deconv else "Convolution", [bottom], [top])
        p = layer.convolution_param
        p.num_output, p.pad[:], p.kernel_size[:] = num_output, [pad], [kernel]
        if stride != 1:
            p.stride[:] = [stride]
        if group != 1:
            p.group = group
        if not bias:
            p.bias_term = False
        shape = (c, num_output // group, kernel, kernel) if deconv else (num_output, c // group, kernel, kernel)
        self.blob(layer, self.rng.normal(0, (2 / (c * kernel * kernel / group)) ** 0.5, shape), legacy)
        if bias:
            self.blob(layer, self.rng.normal(0, 0.1, num_output), legacy)
        if deconv:
            self.shapes[top] = (num_output, stride * (h - 1) + kernel - 2 * pad, stride * (w - 1) + kernel - 2 * pad)
        else:
            self.shapes[top] = (num_output, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)
        return layer

    def inner_product(self, name, bottom, top, num_output, bias=True, transpose=False, legacy=False):
        k = int(np.prod(self.shapes[bottom]))
        layer = self.layer(name, "InnerProduct", [bottom], [top])
        layer.inner_product_param.num_output = num_output
        if not bias:
            layer.inner_product_param.bias_term = False
        if transpose:
            layer.inner_product_param.transpose = True
        weights = self.rng.normal(0, (1 / k) ** 0.5, (num_output, k))
        self.blob(layer, weights.T if transpose else weights, legacy)
        if bias:
            self.blob(layer, self.rng.normal(0, 0.1, num_output), legacy)
        self.shapes[top] = (num_output,)
        return layer

    def batch_norm(self, name, bottom, top, eps: Optional[float] = None, factor: float = 999.982, legacy=False):
        c = self.shapes[bottom][0]
        layer = self.layer(name, "BatchNorm", [bottom], [top])
        if eps is not None:
            layer.batch_norm_param.eps = eps
        # Caffe stores accumulated sums: mean * factor, var * factor, and the factor.
        self.blob(layer, self.rng.normal(0, 0.2, c) * factor, legacy)
        self.blob(layer, self.rng.uniform(0.2, 2.0, c) * factor, legacy)
        self.blob(layer, [factor], legacy)
        self.shapes[top] = self.shapes[bottom]
        return layer

    def scale(self, name, bottom, top, bias=True, legacy=False):
        c = self.shapes[bottom][0]
        layer = self.layer(name, "Scale", [bottom], [top])
        if bias:
            layer.scale_param.bias_term = True
        self.blob(layer, self.rng.uniform(0.5, 1.5, c), legacy)
        if bias:
            self.blob(layer, self.rng.normal(0, 0.2, c), legacy)
        self.shapes[top] = self.shapes[bottom]
        return layer

    def simple(self, name, kind, bottoms, top, **fields):
        layer = self.layer(name, kind, bottoms, [top])
        for key, value in fields.items():
            param, attr = key.split("__")
            setattr(getattr(layer, param), attr, value)
        self.shapes[top] = self.shapes[bottoms[0]]
        if kind == "Pooling":
            c, h, w = self.shapes[bottoms[0]]
            self.shapes[top] = (c, (h + 1) // 2, (w + 1) // 2)
        return layer

    def write(self, directory: Path, stem: str = "model") -> Tuple[Path, Path]:
        prototxt, caffemodel = directory / f"{stem}.prototxt", directory / f"{stem}.caffemodel"
        write_model(self.net, prototxt, caffemodel)
        return prototxt, caffemodel


def as_v1(builder: NetBuilder):
    """The builder's network in the deprecated V1 form (enum types, blobs_lr)."""
    V1 = messages().V1LayerParameter
    types = {"Convolution": V1.CONVOLUTION, "InnerProduct": V1.INNER_PRODUCT, "ReLU": V1.RELU,
             "Pooling": V1.POOLING, "Softmax": V1.SOFTMAX}
    net = messages().NetParameter()
    net.CopyFrom(builder.net)
    del net.layer[:]
    for layer in builder.net.layer:
        old = net.layers.add(name=layer.name, type=types[layer.type])
        old.bottom.extend(layer.bottom)
        old.top.extend(layer.top)
        old.blobs.extend(layer.blobs)
        old.blobs_lr.extend([1.0, 2.0][:len(layer.blobs)])
        for field, value in layer.ListFields():
            if field.name.endswith("_param"):
                getattr(old, field.name).CopyFrom(value)
    return net


def untransposed(prototxt, caffemodel, stem):
    """The same network with InnerProduct weights stored (N, K): OpenCV DNN 4.x
    ignores `transpose: true` (it reads the blob as (N, K) anyway), so a transposed
    model is checked in this equivalent form."""
    net = read_caffemodel(caffemodel)  # the builder's caffemodel holds the whole network
    for layer in net.layer:
        if layer.type == "InnerProduct" and layer.inner_product_param.transpose:
            layer.inner_product_param.transpose = False
            if layer.blobs:
                set_blob(layer.blobs[0], blob_array(layer.blobs[0]).T.copy())
    out = prototxt.with_name(stem + ".prototxt"), caffemodel.with_name(stem + ".caffemodel")
    write_model(net, *out)
    return out


def resnet18(width=8, classes=1000, size=64):
    """ResNet-18's topology (the failing case from the field) at a small width:
    conv 7x7/2 + BN + Scale + ReLU, max pool 3x3/2, 4 stages of 2 basic blocks with
    projection shortcuts, global average pool, Flatten, InnerProduct."""
    b = NetBuilder(shape=(3, size, size), seed=7)
    b.conv("conv1", "data", "conv1", width, kernel=7, bias=False, stride=2)

    def bn_relu(name, blob, relu=True):
        b.batch_norm(f"bn_{name}", blob, blob)
        b.scale(f"scale_{name}", blob, blob)
        if relu:
            b.simple(f"relu_{name}", "ReLU", [blob], blob)

    bn_relu("conv1", "conv1")
    b.simple("pool1", "Pooling", ["conv1"], "pool1", pooling_param__kernel_size=3, pooling_param__stride=2)
    blob, channels = "pool1", width
    for stage in range(4):
        for block in range(2):
            name = f"res{stage + 2}{'ab'[block]}"
            out_channels, stride = width * 2 ** stage, 2 if stage and not block else 1
            shortcut = blob
            if stride == 2 or out_channels != channels:
                b.conv(f"{name}_branch1", blob, f"{name}_branch1", out_channels, kernel=1, bias=False, stride=stride)
                bn_relu(f"{name}_branch1", f"{name}_branch1", relu=False)
                shortcut = f"{name}_branch1"
            b.conv(f"{name}_branch2a", blob, f"{name}_branch2a", out_channels, bias=False, stride=stride)
            bn_relu(f"{name}_branch2a", f"{name}_branch2a")
            b.conv(f"{name}_branch2b", f"{name}_branch2a", f"{name}_branch2b", out_channels, bias=False)
            bn_relu(f"{name}_branch2b", f"{name}_branch2b", relu=False)
            b.simple(name, "Eltwise", [shortcut, f"{name}_branch2b"], name)
            b.simple(f"{name}_relu", "ReLU", [name], name)
            blob, channels = name, out_channels
    b.simple("pool5", "Pooling", [blob], "pool5", pooling_param__pool=1,  # AVE
             pooling_param__global_pooling=True)
    b.shapes["pool5"] = (channels, 1, 1)
    b.simple("flatten", "Flatten", ["pool5"], "flatten")
    b.shapes["flatten"] = (channels,)
    b.inner_product("fc1000", "flatten", "fc1000", classes)
    return b
