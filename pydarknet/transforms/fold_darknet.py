"""Fold batch normalization in Darknet files: cfg + weights in, cfg + weights out.

Every [convolutional], [deconvolutional] and [connected] layer with
batch_normalize=1 gets folded weights and biases and batch_normalize=0; the rest of
the cfg stays line for line, and every other layer's floats are copied as they are.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

from .. import atomic
from ..errors import FoldError
from ..formats.darknet import FOLDABLE, Cfg, Weights, join_affine, split_affine
from ..limits import fold_target
from . import folding

PathLike = Union[str, "os.PathLike[str]"]


def fold_layer(layer, floats: np.ndarray, target: str, transposed: bool) -> np.ndarray:
    """One layer's floats with its batch normalization folded, BN values dropped."""
    inputs = layer.input_shape[0] if layer.type == "deconvolutional" else layer.inputs
    params = split_affine(layer.type, floats, layer.filters, inputs, True, transposed)
    k, params.biases = folding.fold_factors(
        params.rolling_mean, folding.darknet_denominator(params.rolling_variance, target),
        params.scales, params.biases)
    k_shape = [1] * params.weights.ndim
    k_shape[params.out_axis] = -1
    params.weights = folding.scale_weights(params.weights, k, k_shape)
    params.scales = params.rolling_mean = params.rolling_variance = None
    return join_affine(layer.type, params)


def fold(cfg_path: PathLike, weights_path: PathLike, out_cfg: PathLike, out_weights: PathLike,
         *, target: str = "cpu", keep_unfoldable: bool = False) -> folding.FoldReport:
    """Write ``out_cfg`` + ``out_weights``: the model with BN folded for ``target``
    ("cpu" or "gpu" Darknet). Layers with BN that cannot be folded (standalone
    [batchnorm], recurrent layers) raise FoldError unless ``keep_unfoldable``."""
    from ..runtime.network import Network

    fold_target(target)  # before any work
    with Network(cfg_path, batch=1) as net:  # the runtime's own reading of the cfg
        layers = net.layers
    cfg = Cfg.read(cfg_path)
    if len(cfg.layers) != len(layers):
        raise FoldError(f"the cfg has {len(cfg.layers)} layer sections but the runtime built {len(layers)} layers",
                        file=os.fspath(cfg_path))
    weights = Weights.read(weights_path, [layer.n_params for layer in layers])
    report = folding.FoldReport()
    for layer, section in zip(layers, cfg.layers):
        if not (layer.batch_normalize or layer.type == "batchnorm"):
            continue
        where = f"layer {layer.index} ({cfg.where(section)})"
        at = dict(file=os.fspath(cfg_path), line=section.line + 1, section=layer.index)
        if layer.type not in FOLDABLE:
            reason = (f"batch normalization in a [{section.name}] layer cannot be folded "
                      "(only convolutional, deconvolutional and connected layers)")
            if not keep_unfoldable:
                raise FoldError(reason + "; pass keep_unfoldable=True (--keep-unfoldable) to leave it as it is", **at)
            report.kept.append(f"{where}: {reason}")
            continue
        if layer.partial_load:
            raise FoldError("dontload, dontloadscales, numload or flipped is set, so the weights file does not "
                            "hold this layer's values as the cfg lays them out; remove the key", **at)
        weights.layers[layer.index] = fold_layer(layer, weights.layers[layer.index], target,
                                                 weights.header.transposed)
        cfg.set(section, "batch_normalize", "0")
        report.folded.append(f"{where}: {layer.filters} outputs")
    with atomic.replacing(out_cfg, out_weights, inputs=(cfg_path, weights_path)) as (cfg_temp, weights_temp):
        cfg.write(cfg_temp)
        weights.write(weights_temp)
    report.outputs = [os.fspath(out_cfg), os.fspath(out_weights)]
    return report


def check(cfg_a: PathLike, weights_a: PathLike, cfg_b: PathLike, weights_b: PathLike,
          inputs: int = 2, seed: int = 0) -> folding.CheckResult:
    """Run both models on the same random inputs with the bound runtime and compare
    every layer's output."""
    from ..runtime.network import Network

    with Network(cfg_a, weights_a, batch=inputs, fold_bn=False) as a, \
            Network(cfg_b, weights_b, batch=inputs, fold_bn=False) as b:
        x = np.random.default_rng(seed).random((inputs, *a.input_shape), dtype=np.float32)
        pairs = [(f"layer {layer.index} ({layer.type})", ref, out)
                 for layer, ref, out in zip(a.layers, a.layer_outputs(x), b.layer_outputs(x))]
    return folding.compare(pairs, "pydarknet CPU runtime", inputs)
