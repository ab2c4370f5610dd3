"""ONNX -> Darknet: an ONNX model (as PyTorch exports CNNs) as a Darknet cfg + weights
that the patched runtime runs with the same numbers.

formats/onnx_model.py reads the file into a ModelGraph; to_darknet turns that into
Darknet layers, as it does for Caffe models. ``verify`` runs the original on
onnxruntime, an independent runtime.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from ..errors import DarknetError, OnnxError, optional
from ..formats.model_graph import Shape
from ..formats.onnx_model import model_graph, onnx, read_onnx
from . import folding
from .to_darknet import Conversion, convert_graph, layer_outputs, write

PathLike = Union[str, "os.PathLike[str]"]


def onnx_to_darknet(model: PathLike, out: PathLike, *, input_shape: Optional[Shape] = None, fold_bn: bool = True,
                    preprocessing: Optional[dict] = None) -> Conversion:
    """Convert ``model`` (.onnx) and write ``out``.cfg, ``out``.weights and ``out``.json
    (input shape, preprocessing, what each node became); all three or none.
    ``input_shape``: C, H, W where the file leaves them open. ``preprocessing``: fields
    of formats.preprocessing.Preprocessing (mean, scale, channel_order, ...): ONNX files
    state none, so give the model's own (e.g. torchvision's mean and 1/std)."""
    try:
        graph = model_graph(read_onnx(model), input_shape)
        conversion = convert_graph(graph, input_shape=input_shape, fold_bn=fold_bn, preprocessing=preprocessing)
        return write(conversion, out, {"onnx": os.fspath(model)}, (model,), fold_bn)
    except DarknetError as e:
        raise e.in_file(model) from None


def verify(model: PathLike, conversion: Conversion, inputs: int = 2, seed: int = 0) -> folding.CheckResult:
    """The ONNX model on onnxruntime and the converted one on pydarknet, same random
    inputs: the network output, and every mapped tensor onnxruntime can expose."""
    onnxruntime = optional("onnxruntime", "--verify (the original on onnxruntime)", "onnxruntime")
    module = onnx()
    original = read_onnx(model)
    exposed = [name for name in conversion.tensor_layers if name != conversion.output_name]
    known = {o.name for o in original.graph.output}
    for name in exposed:  # intermediate tensors become outputs too, to compare layer by layer
        if name not in known:
            original.graph.output.append(module.helper.make_tensor_value_info(name, module.TensorProto.FLOAT, None))
    names = [conversion.output_name] + exposed
    try:  # onnxruntime's errors have no common class: whatever it raises is about the file
        session = onnxruntime.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
        # runs of the batch the file fixes (exporters often fix 1), else of one image each
        batch = session.get_inputs()[0].shape[0]
        per_run = batch if isinstance(batch, int) and batch > 0 else 1
        inputs = -(-inputs // per_run) * per_run
        x = np.random.default_rng(seed).random((inputs, *conversion.input_shape), dtype=np.float32)
        input_name = session.get_inputs()[0].name
        runs = [session.run(names, {input_name: x[i:i + per_run]}) for i in range(0, inputs, per_run)]
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise OnnxError(f"onnxruntime, the reference runtime for --verify, cannot run this model: {reason}",
                        file=os.fspath(model)) from None
    reference = [np.concatenate([run[k] for run in runs]) for k in range(len(names))]
    outputs = layer_outputs(conversion, x)
    indices = [len(conversion.layers) - 1] + [conversion.tensor_layers[name] for name in exposed]
    pairs = [(f"'{name}' (Darknet layer {i})", ref, outputs[i].reshape(ref.shape))
             for name, i, ref in zip(names, indices, reference)]
    pairs[0] = (f"the network output '{conversion.output_name}'",) + pairs[0][1:]
    runtime = f"onnxruntime {onnxruntime.__version__} vs pydarknet"
    result = folding.compare(pairs, runtime, inputs)
    result.output = folding.compare(pairs[:1], runtime, inputs)
    return result
