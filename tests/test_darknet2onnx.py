"""Darknet -> ONNX (transforms/darknet_to_onnx.py, ``pydarknet to-onnx``): each export
passes ONNX's checker and runs on onnxruntime with pydarknet's own outputs, at batch 1
and 2 (a dynamic batch dimension), within 1e-4 of each output's range."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pydarknet
from conftest import write_random_weights
from pydarknet.runtime import zoo
from pydarknet.transforms import darknet_to_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def model_files(name, tmp_path):
    """Official weights for the zoo models, random well-scaled ones for the others."""
    if name in zoo.MODELS:
        return zoo.get(name).cfg_path(), zoo.weights_path(name)
    cfg = pydarknet.upstream_path(f"cfg/{name}.cfg")
    with pydarknet.Network(cfg) as net:
        return cfg, write_random_weights(net, tmp_path / f"{name}.weights", seed=3, gain=0.7)


@pytest.mark.parametrize("name, outputs", [
    ("yolov3-tiny", ["yolo_16", "yolo_23"]), ("yolov4-tiny", ["yolo_30", "yolo_37"]),
    ("darknet19", ["softmax_25"]), ("resnet18", ["softmax_28"]), ("yolov2-tiny", ["region_15"]),
])
def test_export_equals_pydarknet_on_onnxruntime(tmp_path, name, outputs):
    cfg, weights = model_files(name, tmp_path)
    path = tmp_path / f"{name}.onnx"
    assert darknet_to_onnx.export(cfg, weights, path) == outputs
    model = onnx.load(path)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    differences = darknet_to_onnx.verify(cfg, weights, path, batches=(1, 2))
    assert len(differences) == 2 * len(outputs) and max(differences.values()) <= 1e-4, differences


def test_fixed_batch_and_the_api(tmp_path):
    cfg, weights = model_files("yolov3-tiny", tmp_path)
    with pydarknet.Network(cfg, weights) as net:
        assert pydarknet.export_onnx(net, None, tmp_path / "fixed.onnx", batch=2) == ["yolo_16", "yolo_23"]
    model = onnx.load(tmp_path / "fixed.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert max(darknet_to_onnx.verify(cfg, weights, tmp_path / "fixed.onnx", batches=(2,)).values()) <= 1e-4


def test_unexportable_layers_are_listed_and_nothing_is_written(tmp_path):
    cfg = tmp_path / "odd.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n"
                   "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=ramp\n\n"
                   "[local]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=leaky\n")
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / "odd.weights")
    out = tmp_path / "odd.onnx"
    with pytest.raises(pydarknet.ConversionError) as raised:
        darknet_to_onnx.export(cfg, weights, out)
    message = str(raised.value)
    assert "layer 0" in message and "activation=ramp" in message and "layer 1" in message and "[local]" in message
    assert not out.exists()


def test_command_line_verifies_and_follows_the_error_convention(tmp_path):
    cfg, weights = model_files("yolov2-tiny", tmp_path)
    done = subprocess.run([sys.executable, "-m", "pydarknet.darknet2onnx", str(cfg), str(weights),
                           "-o", str(tmp_path / "m.onnx"), "--verify"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "region_15 @ 1" in done.stdout and "region_15 @ 2" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "pydarknet", "to-onnx", str(cfg), str(tmp_path / "no.weights"),
                              "-o", str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("pydarknet: error: ")
