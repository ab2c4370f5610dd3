"""int8 inference (csrc/backend/onednn.c, onednn_pool.c): ``pydarknet quantize`` and
``Network(..., precision="int8")``, against the same model in float32 on upstream's
own forward functions (the reference: every int8 layer differs from it by the
rounding to int8 steps, nothing else), and the detections and mAP of the official
yolov3-tiny against float32's."""

import json

import numpy as np
import pytest

import pydarknet
from pydarknet.api.quantize import calibrate, quantize
from pydarknet.cli import main as cli
from pydarknet.errors import FileError
from pydarknet.formats.darknet import Weights
from pydarknet.formats.quantization import Quantization
from pydarknet.runtime import samples
from conftest import iou, random_input, write_model

ONEDNN = pydarknet.build_info()["features"].get("backend") == "onednn"
pytestmark = pytest.mark.skipif(not ONEDNN, reason="int8 runs on oneDNN (a build without it)")

CALIBRATION = [str(samples.path(n)) for n in ("eagle.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg")]
HELD_OUT = [str(samples.path(n)) for n in ("dog.jpg", "person.jpg", "scream.jpg")]

# conv -> maxpool -> conv -> conv (1x1) -> conv -> [route to 3] -> conv: int8 steps
# pass from 0 through the maxpool to 2, and from 2 to 3; 3's output is read by the
# route too, so it is written as float32 (and 4 quantizes it again)
CFG = """[net]
width=64
height=64
channels=3

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=16
size=1
stride=1
pad=0
activation=relu

[convolutional]
filters=32
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-2

[convolutional]
filters=8
size=1
stride=1
pad=0
activation=linear
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    cfg, weights = write_model(folder, CFG, seed=3)
    found = quantize(cfg, weights, CALIBRATION, folder / "int8")
    return cfg, weights, found.written, found


def relative_rms(got, want):
    return float(np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)))


def test_int8_layers_follow_float32_within_their_steps(model):
    cfg, weights, (out_cfg, out_weights, _), found = model
    x = np.stack([pydarknet.Network(cfg, weights).preprocess(p) for p in HELD_OUT])
    with pydarknet.Network(out_cfg, out_weights, precision="int8", batch=3) as net, \
            pydarknet.Network(cfg, weights, backend="upstream", batch=3) as reference:
        assert net.int8_layers == 5 and [layer.index for layer in net.layers if layer.int8] == [0, 1, 2, 3, 4, 6]
        assert sorted(found.quantization.inputs) == [0, 2, 3, 4, 6] and found.quantization.float32 == {}
        got, want = net.layer_outputs(x), reference.layer_outputs(x)
    # an int8 step is 1/255 (u8) or 1/127 (s8) of the largest input seen in calibration,
    # a weight's 1/127 of its filter's largest (1/63 for u8 inputs without VNNI), and
    # the errors compound layer by layer: measured 1.0-2.7 % rms with VNNI, 1.3-4.4 % on
    # AVX2; exactly equal would mean int8 never ran
    for index in (0, 1, 2, 3, 4, 6):
        error = relative_rms(got[index], want[index])
        assert 0 < error < 0.06, f"layer {index}: relative rms {error:.4f}"


def test_steps_passed_between_layers_are_those_a_quantizing_reorder_makes(model, tmp_path):
    """Layer 3 reads layer 2's int8 steps straight from layer 2's convolution (which
    also writes their float32 values, for the route). Layer 3 alone in a network of its
    own, given those values, quantizes them with its reorder: the same steps, so the
    same output (there float32; in the network, steps of layer 4's input, as layer 3
    passes them on in turn). And the values lie on layer 3's steps."""
    _, _, (out_cfg, out_weights, out_json), found = model
    scale, signed = found.quantization.inputs[3]
    x = random_input((1, 3, 64, 64), seed=4)
    with pydarknet.Network(out_cfg, out_weights, precision="int8") as net:
        outputs = net.layer_outputs(x)
    with pydarknet.Network(out_cfg) as unfolded:  # the file's layout: layer 2's BN too
        n_params = [layer.n_params for layer in unfolded.layers]
    steps = outputs[2] / scale
    assert np.abs(steps - np.rint(steps)).max() < 1e-3 and signed == (outputs[2].min() < 0)
    alone = Weights.read(out_weights, n_params)
    alone.layers = [alone.layers[3]]
    alone.write(tmp_path / "alone.weights")
    section = out_cfg.read_text().split("[convolutional]")[3]  # layer 3's, after [net], 0, [maxpool] and 2
    (tmp_path / "alone.cfg").write_text("[net]\nwidth=32\nheight=32\nchannels=32\n\n[convolutional]" + section)
    (tmp_path / "alone.json").write_text(json.dumps({"quantization": Quantization(
        "max", 1, {0: (scale, signed)}).to_json()}))
    with pydarknet.Network(tmp_path / "alone.cfg", tmp_path / "alone.weights", precision="int8") as layer3:
        assert layer3.layers[0].filters == 16 and layer3.layers[0].size == 1
        alone_output = layer3.predict(outputs[2])
    scale4, signed4 = found.quantization.inputs[4]
    low, high = (-127, 127) if signed4 else (0, 255)
    # round to nearest even as oneDNN does; y / scale may land on the other side of a
    # half step in float32 (one output in a thousand at most)
    requantized = np.clip(np.rint(alone_output / scale4), low, high) * scale4
    assert np.mean(np.abs(requantized - outputs[3]) > scale4 / 2) < 1e-3
    assert np.abs(requantized - outputs[3]).max() <= scale4 * 1.01


def test_a_smaller_last_batch_gives_the_same_results(model):
    _, _, (out_cfg, out_weights, _), _ = model
    x = random_input((3, 3, 64, 64), seed=5)
    with pydarknet.Network(out_cfg, out_weights, precision="int8", batch=2) as two, \
            pydarknet.Network(out_cfg, out_weights, precision="int8") as one:
        # integer sums are exact; the float32 scaling after them may round otherwise
        np.testing.assert_allclose(two.predict(x), one.predict(x), rtol=0, atol=1e-5)


def test_quantize_command_writes_a_model_that_also_runs_in_float32(model, tmp_path, capsys):
    cfg, weights, _, _ = model
    cfg.with_suffix(".json").write_text(json.dumps({"preprocessing": {"channel_order": "BGR"}, "notes": ["kept"]}))
    try:
        status = cli(["quantize", "--cfg", str(cfg), "--weights", str(weights), "--calibrate", *CALIBRATION,
                      "-o", str(tmp_path / "q"), "--float32-layers", "6"])
    finally:
        cfg.with_suffix(".json").unlink()
    assert status == 0
    printed = capsys.readouterr().out
    assert "4 int8 convolutions, 1 float32 (max of 4 calibration images)" in printed
    assert "layer 6 stays float32: asked for" in printed
    written = json.loads((tmp_path / "q.json").read_text())
    assert written["preprocessing"] == {"channel_order": "BGR"} and written["notes"] == ["kept"]
    assert [row["layer"] for row in written["quantization"]["layers"]] == [0, 2, 3, 4]
    assert (tmp_path / "q.weights").read_bytes() == weights.read_bytes()
    with pydarknet.Network(tmp_path / "q.cfg", tmp_path / "q.weights", precision="int8") as net:
        assert net.int8_layers == 4 and not net.layers[6].int8 and net.preprocessing.channel_order == "BGR"
    assert cli(["quantize", "--cfg", str(cfg), "--weights", str(weights), "--calibrate", *CALIBRATION,
                "-o", str(tmp_path / "r"), "--float32-layers", "1"]) == 2
    assert "layer 1 is not a convolutional layer" in capsys.readouterr().err


def test_percentile_calibration_saturates_only_the_largest_inputs(model):
    cfg, weights, _, found = model
    with pydarknet.Network(cfg, weights) as net:
        clipped = calibrate(net, CALIBRATION, method="percentile", percentile=99.9).quantization
    for index, (scale, signed) in clipped.inputs.items():
        largest, largest_signed = found.quantization.inputs[index]
        assert signed == largest_signed and 0 < scale < largest, index
    assert clipped.method == "percentile 99.9"


def test_int8_without_its_parameters_or_off_onednn_is_refused(model, tmp_path):
    cfg, weights, (out_cfg, out_weights, out_json), _ = model
    with pytest.raises(ValueError, match="states no quantization parameters.*pydarknet quantize"):
        pydarknet.Network(cfg, weights, precision="int8")
    with pytest.raises(ValueError, match="precision='int16': choose one of float32, int8"):
        pydarknet.Network(out_cfg, out_weights, precision="int16")
    with pytest.raises(ValueError, match="oneDNN backend, not cpu with backend='cpu'"):
        pydarknet.Network(out_cfg, out_weights, precision="int8", backend="cpu")
    entry = json.loads(out_json.read_text())
    stale = dict(entry, quantization=dict(entry["quantization"], layers=[
        {"layer": 1, "input_scale": 0.1, "signed": False}]))
    broken = dict(entry, quantization=dict(entry["quantization"], layers=[
        {"layer": 0, "input_scale": -1, "signed": False}]))
    for name, description, message in (("stale", stale, "layer 1 int8, but in this network that layer is a "
                                                         "maxpool layer"),
                                        ("broken", broken, r"layers\[0\].*'input_scale' a positive finite number")):
        (tmp_path / f"{name}.cfg").write_text(out_cfg.read_text())
        (tmp_path / f"{name}.json").write_text(json.dumps(description))
        with pytest.raises(FileError, match=message) as raised:
            pydarknet.Network(tmp_path / f"{name}.cfg", out_weights, precision="int8")
        assert raised.value.file == str(tmp_path / f"{name}.json")


def test_build_info_names_the_kernels_onednn_picks():
    kernels = pydarknet.build_info()["onednn_kernels"]
    assert kernels["isa"] and "none" not in (kernels["int8"], kernels["float32"]), kernels


def box_f1(found, reference):
    """F1 of ``found`` against ``reference``: pairs of the same class with IoU >= 0.5,
    each reference box matched once."""
    matched, unused = 0, list(reference)
    for d in found:
        pair = next((r for r in unused if r.class_id == d.class_id and iou(d.box, r.box) >= 0.5), None)
        if pair is not None:
            unused.remove(pair)
            matched += 1
    precision, recall = matched / max(len(found), 1), matched / max(len(reference), 1)
    return 2 * precision * recall / (precision + recall) if matched else float(not found and not reference)


def test_yolov3_tiny_in_int8_finds_what_float32_finds(official, tmp_path):
    from support.labelled import samples_set

    cfg, weights = official
    out_cfg, out_weights, _ = quantize(cfg, weights, CALIBRATION, tmp_path / "yolov3-tiny").written
    names = pydarknet.upstream_path("data/coco.names")
    with pydarknet.Network(cfg, weights, names=names) as float32, \
            pydarknet.Network(out_cfg, out_weights, names=names, precision="int8") as int8:
        found = [pydarknet.detect(int8, image, thresh=0.25) for image in HELD_OUT]
        reference = [pydarknet.detect(float32, image, thresh=0.25) for image in HELD_OUT]
        assert box_f1([d for ds in found for d in ds], [d for ds in reference for d in ds]) >= 0.9
        data = samples_set(tmp_path / "set")
        drop = pydarknet.evaluate(float32, data=data).map - pydarknet.evaluate(int8, data=data).map
    assert abs(drop) <= 0.01, f"mAP {drop:+.4f} below float32's"
