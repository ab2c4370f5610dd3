"""The defects found in the converters, preprocessing files, the ONNX exporter and the
model zoo (red-team scripts 33-42 and 50): each surface raises its own typed error naming
the user's file and the node or key, allocates within a budget, reads what the runtime
reads, and never passes a check it did not pass."""

import dataclasses
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import threading

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import pydarknet
from pydarknet.errors import CfgError, FileError, OnnxError
from pydarknet.formats.preprocessing import Preprocessing
from pydarknet.api import zoo
from pydarknet.transforms import onnx_to_darknet

SMALL_CFG = "[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=2\nsize=1\nstride=1\nactivation=linear\n"


def onnx_model(nodes, inputs, output, initializers, path):
    graph = helper.make_graph(nodes, "t", inputs, [output], initializers)
    graph.output[0].type.tensor_type.shape.SetInParent()  # a shape, if of unknown rank
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def image_input(size=8):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])


def conv(name="conv1", bias=None):
    inputs = ["x", "W"] + (["B"] if bias is not None else [])
    return helper.make_node("Conv", inputs, ["y"], pads=[1, 1, 1, 1], name=name)


# -- ONNX import --------------------------------------------------------------------


def test_a_bias_of_the_wrong_length_names_the_node_and_the_file(tmp_path):
    """A Gemm bias of 7 values for 5 outputs was numpy's bare ValueError; a Conv's was
    found only by the runtime loading a half-written temporary file, which it named."""
    gemm = onnx_model([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                       helper.make_node("Gemm", ["f", "G", "GB"], ["y"], transB=1, name="fc")],
                      [image_input(4)], helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5]),
                      [numpy_helper.from_array(np.ones((5, 48), np.float32), "G"),
                       numpy_helper.from_array(np.ones(7, np.float32), "GB")], tmp_path / "gemm.onnx")
    with pytest.raises(OnnxError, match=r"gemm\.onnx: Gemm 'fc': 7 bias values for 5 outputs"):
        onnx_to_darknet.onnx_to_darknet(gemm, tmp_path / "out")
    convolution = onnx_model([conv(bias=True)], [image_input()],
                             helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                             [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W"),
                              numpy_helper.from_array(np.ones(9, np.float32), "B")], tmp_path / "conv.onnx")
    with pytest.raises(OnnxError, match=r"conv\.onnx: Conv 'conv1': 9 bias values for 4 outputs"):
        onnx_to_darknet.onnx_to_darknet(convolution, tmp_path / "out")
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".*tmp"))


def test_a_model_too_large_for_darknet_names_the_model_not_a_temporary_file(tmp_path):
    model = onnx_model([conv()], [image_input(100_000)], helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                       [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W")], tmp_path / "huge.onnx")
    with pytest.raises(pydarknet.ConversionError) as caught:
        onnx_to_darknet.onnx_to_darknet(model, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'huge.onnx'}: ") and ".tmp" not in message
    assert "3x100000x100000" in message and "limit" in message


def external_model(tmp_path, location, data: np.ndarray):
    """models/m.onnx whose weight W is stored in ``location`` (relative to models/)."""
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    weight = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "W")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(data.nbytes))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([conv()], "t", [image_input()], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                              [1, 4, 8, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (folder / "m.onnx").write_bytes(model.SerializeToString())
    return folder / "m.onnx"


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, how):
    """Whatever onnx version is installed (before 1.16 its loader follows '../')."""
    secret = np.arange(108, dtype=np.float32)
    secret.tofile(tmp_path / "secret.bin")
    location = {"dotdot": "sub/../../secret.bin", "absolute": str(tmp_path / "secret.bin"), "symlink": "link.bin"}[how]
    model = external_model(tmp_path, location, secret)
    if how == "symlink":
        os.symlink(tmp_path / "secret.bin", tmp_path / "models" / "link.bin")
    with pytest.raises(OnnxError, match="outside the model's folder"):
        onnx_to_darknet.onnx_to_darknet(model, tmp_path / "out")
    assert not (tmp_path / "out.weights").exists()


def test_external_data_beside_the_model_is_read(tmp_path):
    weights = np.random.default_rng(0).standard_normal(108).astype(np.float32)
    model = external_model(tmp_path, "weights.bin", weights)
    weights.tofile(tmp_path / "models" / "weights.bin")
    onnx_to_darknet.onnx_to_darknet(model, tmp_path / "out")
    stored = np.fromfile(tmp_path / "out.weights", dtype=np.float32)
    assert np.allclose(stored[-108:], weights)


def test_constant_folding_allocates_within_the_models_own_data(tmp_path):
    """A 664-byte file with a dead ConstantOfShape([64, 1024, 1024]) cost GBs of memory."""
    bomb = onnx_model([helper.make_node("ConstantOfShape", ["shape"], ["bomb"],
                                        value=numpy_helper.from_array(np.array([1.0], np.float32))), conv()],
                      [image_input()], helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]),
                      [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W"),
                       numpy_helper.from_array(np.array([64, 1024, 1024], np.int64), "shape")], tmp_path / "bomb.onnx")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(OnnxError, match=r"ConstantOfShape 'bomb' would make a constant of about 512 MB"):
        onnx_to_darknet.onnx_to_darknet(bomb, tmp_path / "out")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 << 10  # KB: nothing like 256 MB


# -- preprocessing files ------------------------------------------------------------


@pytest.fixture
def small_model(tmp_path):
    (tmp_path / "m.cfg").write_text(SMALL_CFG)
    with pydarknet.Network(tmp_path / "m.cfg") as net:
        net.save_weights(tmp_path / "m.weights")
    return tmp_path / "m.cfg", tmp_path / "m.weights"


@pytest.mark.parametrize("text,message", [
    ('{"preprocessing": ' + "[" * 100000 + "]" * 100000 + "}", "cannot read the model description"),
    ('{"preprocessing": {"mean": 1' + "0" * 5000 + "}}", "cannot read the model description"),
    ('{"preprocessing": {"scale": 1e39}}', "finite float32"),
    ('{"preprocessing": {"pixel_range": 1e200}}', "finite float32"),
    ('{"preprocessing": {"scale": 1e-50}}', "below float32's normal range"),
    ('{"preprocessing": {"scale": 1e30, "mean": 1e10}}', "beyond float32"),
    ('{"preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}', "unknown key(s) 'std'"),
    ('{"preprocessing": {"channel-order": "BGR"}}', "'channel-order': channel_order"),
])
def test_preprocessing_files_are_read_strictly(small_model, text, message):
    """Deep nesting, huge numbers, values float32 cannot hold and unknown keys: each a
    FileError naming the .json and the key, never a bare error or a silent default."""
    cfg, weights = small_model
    cfg.with_suffix(".json").write_text(text)
    with pytest.raises(FileError, match=re.escape(message)) as caught:
        pydarknet.Network(cfg, weights)
    assert caught.value.file == str(cfg.with_suffix(".json"))


def test_every_key_written_is_read_back():
    written = Preprocessing(channel_order="BGR", pixel_range=255.0, mean=(1, 2, 3), scale=0.5, resize="crop",
                            crop_from=256, stated_by="a test").to_json()
    assert Preprocessing.from_json(json.loads(json.dumps(written))).to_json() == written


# -- ONNX export --------------------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\x1c", "\x1d", "\x1e", "\x85", "\v", "\f", "\u2029"])
def test_the_exporter_reads_the_cfg_as_darknet_does(tmp_path, separator):
    """A comment line holding a character str.splitlines() splits at: to Darknet's C reader
    (which splits at '\\n' only) the key after it is part of the comment."""
    cfg = tmp_path / "s.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\n"
                   "activation=leaky\n\n[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=linear\n\n"
                   f"[shortcut]\nfrom=-2\n# tried earlier{separator}alpha=0.5\nactivation=linear\n", encoding="utf-8")
    with pydarknet.Network(cfg) as net:
        net.save_weights(tmp_path / "s.weights")
    pydarknet.export_onnx(cfg, tmp_path / "s.weights", tmp_path / "s.onnx")
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    with pydarknet.Network(cfg, tmp_path / "s.weights") as net:
        ours = net.predict(x).reshape(1, 4, 8, 8)
    session = onnxruntime.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x})[0] - ours).max() <= 1e-5 * np.abs(ours).max()


def test_a_nul_byte_in_a_cfg_is_refused_by_line(tmp_path):
    from pydarknet.formats.darknet import Cfg

    (tmp_path / "n.cfg").write_bytes(b"[net]\nwidth=8\nheight=8\nchannels=3\n\n[maxpool]\nsize=2\x00\nstride=2\n")
    with pytest.raises(CfgError, match="NUL byte") as caught:
        Cfg.read(tmp_path / "n.cfg")
    assert caught.value.line == 7


def test_verify_fails_on_nan(tmp_path):
    """tanh of large values is NaN in upstream's formula and +-1 in onnxruntime: --verify
    said "nan of the range", exit 0."""
    (tmp_path / "t.cfg").write_text("[net]\nwidth=4\nheight=4\nchannels=3\n\n"
                                    "[convolutional]\nfilters=2\nsize=1\nstride=1\nactivation=tanh\n")
    with pydarknet.Network(tmp_path / "t.cfg") as net:
        net.save_weights(tmp_path / "t.weights")
    raw = (tmp_path / "t.weights").read_bytes()
    floats = np.frombuffer(raw[20:], np.float32).copy()
    floats[2:] = 300.0
    (tmp_path / "t.weights").write_bytes(raw[:20] + floats.tobytes())
    done = subprocess.run([sys.executable, "-m", "pydarknet", "to-onnx", str(tmp_path / "t.cfg"),
                           str(tmp_path / "t.weights"), "-o", str(tmp_path / "t.onnx"), "--verify"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "nan of its largest value: ABOVE the tolerance 0.0001" in done.stdout, done.stdout


def test_a_cost_layer_exports_as_predict_returns(tmp_path):
    """[cost] after the last layer: the output is the layer before it (the checker used
    to raise onnx's bare InferenceError)."""
    (tmp_path / "w.cfg").write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=1\nsize=3\n"
                                    "stride=1\npad=1\nactivation=logistic\n\n[cost]\n")
    with pydarknet.Network(tmp_path / "w.cfg") as net:
        net.save_weights(tmp_path / "w.weights")
        x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
        ours = net.predict(x)
    assert pydarknet.export_onnx(tmp_path / "w.cfg", tmp_path / "w.weights", tmp_path / "w.onnx") == \
        ["convolutional_0"]
    session = onnxruntime.InferenceSession(str(tmp_path / "w.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x})[0].ravel() - ours.ravel()).max() <= 1e-6


# -- the zoo ------------------------------------------------------------------------


def test_threads_fetching_one_zoo_model_all_get_it(tmp_path, monkeypatch):
    """Four threads of one process, first use: each gets the verified file (they shared
    one staging file, and three failed)."""
    data = os.urandom(1 << 20)
    (tmp_path / "source.weights").write_bytes(data)
    model = dataclasses.replace(zoo.MODELS["yolov3-tiny"], url=(tmp_path / "source.weights").as_uri(),
                                sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    monkeypatch.setitem(zoo.MODELS, "yolov3-tiny", model)
    monkeypatch.setattr(zoo, "weights_dir", lambda: tmp_path / "cache")
    barrier, results = threading.Barrier(4), []

    def fetch():
        barrier.wait()
        try:
            results.append(zoo.weights_path("yolov3-tiny"))
        except Exception as e:  # noqa: BLE001 - recorded, the assertion names it
            results.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "cache" / "yolov3-tiny.weights"] * 4
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["yolov3-tiny.weights"]
