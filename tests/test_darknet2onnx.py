"""Darknet -> ONNX (transforms/darknet_to_onnx.py, ``pydarknet to-onnx``): each export
passes ONNX's checker and runs on onnxruntime with pydarknet's own outputs, at batch 1
and 2 (a dynamic batch dimension), within 1e-4 of each output's range."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pydarknet
from conftest import write_random_weights
from pydarknet.api import zoo
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
    pytest.param("yolov3-tiny", ["yolo_16", "yolo_23"], marks=pytest.mark.network),
    pytest.param("yolov4-tiny", ["yolo_30", "yolo_37"], marks=pytest.mark.network),
    ("darknet19", ["softmax_25"]), ("resnet18", ["softmax_28"]), ("yolov2-tiny", ["region_15"]),
])
def test_export_equals_pydarknet_on_onnxruntime(tmp_path, name, outputs):
    cfg, weights = model_files(name, tmp_path)
    path = tmp_path / f"{name}.onnx"
    assert darknet_to_onnx.export(cfg, weights, path) == outputs
    model = onnx.load(path)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    check = darknet_to_onnx.verify(cfg, weights, path, batches=(1, 2))
    assert check.compared == 2 * len(outputs) and check.inputs == 3 and check.runtime == "onnxruntime"
    assert check.ok and check.relative <= 1e-4, check


@pytest.mark.network
def test_fixed_batch_and_the_api(tmp_path):
    cfg, weights = model_files("yolov3-tiny", tmp_path)
    with pydarknet.Network(cfg, weights) as net:
        assert pydarknet.export_onnx(net, None, tmp_path / "fixed.onnx", batch=2) == ["yolo_16", "yolo_23"]
    model = onnx.load(tmp_path / "fixed.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert darknet_to_onnx.verify(cfg, weights, tmp_path / "fixed.onnx", batches=(2,)).ok


def test_deconvolution_reorg_and_softmax_groups(tmp_path):
    """Upstream's reorg (its memory reinterpretation), deconvolution's output size and
    softmax over groups, on a small network, and yolov2 (reorg before its region)."""
    cfg = tmp_path / "mix.cfg"
    cfg.write_text("[net]\nwidth=16\nheight=12\nchannels=3\n\n"
                   "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\npad=1\nactivation=leaky\n\n"
                   "[reorg]\nstride=2\n\n"
                   "[deconvolutional]\nbatch_normalize=1\nfilters=6\nsize=3\nstride=2\npad=1\nactivation=relu\n\n"
                   "[deconvolutional]\nfilters=4\nsize=2\nstride=2\nactivation=linear\n\n[softmax]\ngroups=4\n")
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / "mix.weights", seed=2)
    darknet_to_onnx.export(cfg, weights, tmp_path / "mix.onnx")
    assert darknet_to_onnx.verify(cfg, weights, tmp_path / "mix.onnx").ok
    cfg, weights = model_files("yolov2", tmp_path)
    darknet_to_onnx.export(cfg, weights, tmp_path / "yolov2.onnx")
    assert darknet_to_onnx.verify(cfg, weights, tmp_path / "yolov2.onnx", batches=(1,)).ok


@pytest.mark.network
@pytest.mark.parametrize("name", ["yolov3-tiny", "yolov4-tiny"])
def test_decoded_boxes_are_detects(tmp_path, name):
    """--boxes: on a 416x416 image (letterboxing is then nothing), every detection of
    pydarknet.detect() is a row of the decoded output: same box and score."""
    import cv2
    import numpy as np
    import onnxruntime

    from pydarknet.runtime import samples

    cfg, weights = model_files(name, tmp_path)
    names = darknet_to_onnx.export(cfg, weights, tmp_path / "boxes.onnx", boxes=True)
    assert names[-2:] == ["boxes", "scores"]
    session = onnxruntime.InferenceSession(str(tmp_path / "boxes.onnx"), providers=["CPUExecutionProvider"])
    net = pydarknet.Network(cfg, weights)
    for image_name in ("dog.jpg", "person.jpg", "horses.jpg"):
        image = cv2.resize(cv2.imread(str(samples.path(image_name))), (416, 416), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        x = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None].copy()
        outputs = dict(zip(names, session.run(None, {"input": x})))
        boxes, scores = outputs["boxes"][0], outputs["scores"][0]
        found = pydarknet.detect(net, rgb)
        assert found, image_name
        for d in found:
            row = np.argmin(np.abs(boxes - np.array(d.box)).sum(axis=1) + np.abs(scores[:, d.class_id] - d.confidence))
            assert abs(scores[row, d.class_id] - d.confidence) < 1e-4 and np.allclose(boxes[row], d.box, atol=0.01)


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
    assert "check (onnxruntime, 3 random inputs, 2 outputs compared): largest difference in region_15 (batch" \
        in done.stdout and done.stdout.rstrip().endswith(": ok")
    missing = subprocess.run([sys.executable, "-m", "pydarknet", "to-onnx", str(cfg), str(tmp_path / "no.weights"),
                              "-o", str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("pydarknet: error: ")


def test_every_layer_that_cannot_be_exported_is_listed(tmp_path):
    """Layers without an exporter, and exporters that refuse a form, are each named with
    their cfg line in one ConversionError; nothing is written."""
    cfg = tmp_path / "mixed.cfg"
    cfg.write_text("[net]\nwidth=16\nheight=16\nchannels=3\n\n"
                   "[convolutional]\nfilters=4\nsize=3\nbinary=1\nactivation=relu\n\n"
                   "[local]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n\n"
                   "[upsample]\nstride=2\n")
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / "mixed.weights")
    with pytest.raises(pydarknet.ConversionError) as failed:
        darknet_to_onnx.export(cfg, weights, tmp_path / "mixed.onnx")
    lines = str(failed.value).splitlines()
    assert "cannot be exported to ONNX exactly" in lines[0] and len(lines) == 3
    assert "layer 0" in lines[1] and "mixed.cfg:6" in lines[1] and "binary/xnor convolutions" in lines[1]
    assert "layer 1" in lines[2] and "mixed.cfg:12" in lines[2] and "[local] has no ONNX export" in lines[2]
    assert not (tmp_path / "mixed.onnx").exists()
