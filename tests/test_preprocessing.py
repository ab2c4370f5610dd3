"""Converted models carry their preprocessing: the .json next to the cfg is applied by
classify, detect, Network.preprocess and the CLI; checked against independent
runtimes (onnxruntime, OpenCV DNN on the Caffe original) fed the same pixels."""

import json
import shutil

import cv2
import numpy as np
import onnxruntime
import pytest

import pydarknet
from pydarknet import PreprocessingWarning, cli
from pydarknet.errors import FileError
from pydarknet.transforms import caffe_to_darknet, onnx_to_darknet

from support.caffe_models import NetBuilder
from conftest import REPO

TORCHVISION = {"mean": [0.485, 0.456, 0.406], "scale": [1 / 0.229, 1 / 0.224, 1 / 0.225]}


@pytest.fixture
def resnet(tmp_path):
    """The ResNet-18 fixture converted with torchvision's normalization."""
    onnx_to_darknet.onnx_to_darknet(REPO / "tests/onnx/resnet18.onnx", tmp_path / "r18", preprocessing=TORCHVISION)
    (tmp_path / "r18.names").write_text("".join(f"class{i}\n" for i in range(10)))
    return tmp_path / "r18.cfg", tmp_path / "r18.weights", tmp_path / "r18.names"


def pixels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def with_softmax(path):
    """onnxruntime on the ONNX model with a Softmax node on its output: probabilities
    from the reference runtime itself."""
    import onnx

    model = onnx.load(str(path))
    logits = model.graph.output[0].name
    model.graph.node.append(onnx.helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
    model.graph.output.append(onnx.helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, None))
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_classify_applies_the_stated_preprocessing(resnet, tmp_path):
    """An image already at the input size: the torchvision normalization, computed here
    from its definition, fed to onnxruntime, gives the scores classify() reports; the
    model ends in logits, so its probabilities are onnxruntime's softmax of them."""
    image = pixels((64, 64, 3))
    x = ((image / 255.0 - TORCHVISION["mean"]) * TORCHVISION["scale"]).transpose(2, 0, 1)[None].astype(np.float32)
    logits, probabilities = (out[0] for out in with_softmax(REPO / "tests/onnx/resnet18.onnx").run(None, {"input": x}))
    with pydarknet.Network(*resnet[:2], names=resnet[2]) as net:
        assert net.preprocessing.mean == tuple(TORCHVISION["mean"]) and net.preprocessing.resize == "stretch"
        assert np.abs(net.preprocess(image) - x[0]).max() <= 1e-5  # float32 rounding of 0-1 pixels
        top = pydarknet.classify(net, image, top=10)
    by_class = sorted(top, key=lambda r: int(r.label[5:]))
    assert {r.normalization for r in top} == {"softmax"}
    scores = np.array([r.score for r in by_class])
    assert np.abs(scores - logits).max() <= 1e-4 * np.abs(logits).max()
    assert np.abs(np.array([r.probability for r in by_class]) - probabilities).max() <= 1e-5


def test_logits_are_reported_as_probabilities(resnet, tmp_path, capsys):
    """classify --json and the table on a model that ends in logits: values in [0, 1]
    whose sum is at most 1, the raw scores beside them, and a note in the table."""
    cfg, weights, names = resnet
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), pixels((64, 64, 3), seed=3))
    model = ["--cfg", str(cfg), "--weights", str(weights), "--names", str(names)]
    assert cli.main(["classify", str(image), *model, "--json", "--top", "3"]) == 0
    record = json.loads(capsys.readouterr().out)
    probabilities = [r["probability"] for r in record["classes"]]
    assert record["normalization"] == "softmax" and all(0 <= p <= 1 for p in probabilities)
    assert sum(probabilities) <= 1 and all(isinstance(r["score"], float) for r in record["classes"])
    assert cli.main(["classify", str(image), *model]) == 0
    out, err = capsys.readouterr()
    assert "ends in raw scores" in err and "-" not in "".join(line.split()[0] for line in out.splitlines()[1:])


def test_a_network_that_ends_in_probabilities_keeps_them(tiny_cfg, tiny_weights):
    """The tiny net ends in [softmax]: its outputs are reported as they are."""
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        image = pixels((16, 16, 3))
        top = pydarknet.classify(net, image, top=5)
        raw = net.predict(net.preprocess(image))
    assert {r.normalization for r in top} == {"network"}
    assert sorted(r.probability for r in top) == pytest.approx(sorted(raw.tolist()))
    assert [r.probability for r in top] == [r.score for r in top]
    label, probability = top[0]  # unpacks as the (label, probability) pair it was
    assert (label, probability) == (top[0].label, top[0].probability)


def test_running_without_it_warns(resnet):
    with pytest.warns(PreprocessingWarning, match="r18.json states the preprocessing RGB, 0-1, mean"):
        net = pydarknet.Network(*resnet[:2], preprocessing=None)
    assert net.preprocessing.is_darknets
    net.close()


def test_preprocessing_fields_resize_and_channel_order(resnet):
    """BGR reads image channel 2 - k; pixel_range 255 scales; 'letterbox' is upstream's
    own sizing (the C path without preprocessing), 'stretch' is not."""
    image = pixels((40, 80, 3), seed=1)
    with pytest.warns(PreprocessingWarning), pydarknet.Network(*resnet[:2], preprocessing=None) as darknet:
        upstream = darknet.preprocess(image)
    letterbox = pydarknet.Preprocessing(channel_order="BGR", pixel_range=255, resize="letterbox")
    with pydarknet.Network(*resnet[:2], preprocessing=letterbox) as net:
        assert np.array_equal(net.preprocess(image[:, :, ::-1]), (upstream * np.float64(255)).astype(np.float32))
    with pydarknet.Network(*resnet[:2], preprocessing={"resize": "stretch"}) as net:
        stretched = net.preprocess(image)
    assert stretched.shape == upstream.shape and not np.allclose(stretched, upstream)
    assert upstream[:, 0].max() == pytest.approx(0.5)  # the letterbox's grey border


def test_detect_applies_it_too(official, tmp_path):
    """yolov3-tiny with a .json stating BGR input: detect() on a BGR-swapped image
    finds exactly what upstream's own path finds on the original."""
    cfg = tmp_path / "bgr.cfg"
    shutil.copy(official[0], cfg)
    (tmp_path / "bgr.json").write_text(json.dumps({"preprocessing": {"channel_order": "BGR"}}))
    dog = pydarknet.load_image(pydarknet.upstream_path("data/dog.jpg")).to_uint8()
    names = pydarknet.upstream_path("data/coco.names")
    expected = pydarknet.detect((official[0], official[1], names), dog)
    with pydarknet.Network(cfg, official[1], names=names) as net:
        assert net.preprocessing.channel_order == "BGR"
        assert pydarknet.detect(net, np.ascontiguousarray(dog[:, :, ::-1])) == expected
    assert len(expected) >= 3


@pytest.mark.parametrize("text,message", [
    ("{not json", "cannot read the model description"),
    ('{"preprocessing": {"resize": "zoom"}}', "resize must be one of"),
    ('{"preprocessing": {"mean": [1, 2]}}', "mean must be one finite number or three"),
    ('{"preprocessing": [1]}', "expected an object"),
])
def test_a_broken_json_names_the_file(resnet, text, message):
    resnet[0].with_suffix(".json").write_text(text)
    with pytest.raises(FileError, match=f"r18.json.*{message}"):
        pydarknet.Network(*resnet[:2])


def test_caffe_prototxt_states_or_options_give_it(tmp_path):
    b = NetBuilder(shape=(3, 4, 4))
    b.conv("conv", "data", "conv", 2)
    prototxt, caffemodel = b.write(tmp_path)
    conversion = caffe_to_darknet.caffe_to_darknet(prototxt, caffemodel, tmp_path / "plain")
    assert conversion.preprocessing.channel_order == "BGR" and conversion.preprocessing.pixel_range == 255
    assert "states no mean or scale" in conversion.preprocessing.stated_by
    data_layer = ('layer {\n  name: "d" type: "Data" top: "x" include { phase: TRAIN } '
                  "transform_param { scale: 0.5 mean_value: 104 mean_value: 117 mean_value: 123 }\n}\n")
    text = prototxt.read_text().replace("layer {", data_layer + "layer {", 1)
    prototxt.write_text(text)
    stated = caffe_to_darknet.caffe_to_darknet(prototxt, caffemodel, tmp_path / "stated").preprocessing
    assert stated.mean == (104, 117, 123) and stated.scale == (0.5, 0.5, 0.5)
    assert "transform_param" in stated.stated_by
    assert cli.main(["convert", str(prototxt), str(caffemodel), "-o", str(tmp_path / "given"), "--rgb",
                     "--mean", "1", "--scale", "2,3,4", "-q"]) == 0
    given = json.loads((tmp_path / "given.json").read_text())["preprocessing"]
    assert given["channel_order"] == "RGB" and given["mean"] == [1, 1, 1] and given["scale"] == [2, 3, 4]


def test_open_nsfw_classify_gives_the_caffe_models_score(open_nsfw, tmp_path, capsys):
    """The issue's case: open_nsfw converted with its published preprocessing (BGR,
    0-255, mean 104,117,123) scores an image as OpenCV DNN scores it on the original
    Caffe files. The image is person.jpg as the published pipeline crops it (256x256,
    JPEG, centre 224x224), stored losslessly so both runtimes read the same pixels."""
    prototxt, caffemodel = open_nsfw
    assert cli.main(["convert", str(prototxt), str(caffemodel), "-o", str(tmp_path / "nsfw"), "--bgr",
                     "--mean", "104,117,123", "-q"]) == 0
    (tmp_path / "nsfw.names").write_text("sfw\nnsfw\n")
    person = cv2.resize(cv2.imread(str(pydarknet.upstream_path("data/person.jpg"))), (256, 256))
    person = cv2.imdecode(cv2.imencode(".jpg", person)[1], cv2.IMREAD_COLOR)[16:240, 16:240]
    cv2.imwrite(str(tmp_path / "person.png"), person)

    caffe = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    caffe.setInput(cv2.dnn.blobFromImage(person, 1.0, (224, 224), (104, 117, 123), swapRB=False, crop=False))
    reference = caffe.forward()[0]

    model = ["--cfg", str(tmp_path / "nsfw.cfg"), "--weights", str(tmp_path / "nsfw.weights"),
             "--names", str(tmp_path / "nsfw.names"), "--json"]
    capsys.readouterr()
    assert cli.main(["classify", str(tmp_path / "person.png"), *model]) == 0
    scores = {r["label"]: r["probability"] for r in json.loads(capsys.readouterr().out)["classes"]}
    assert abs(scores["nsfw"] - reference[1]) <= 1e-4 and abs(scores["sfw"] - reference[0]) <= 1e-4

    # Darknet's RGB 0-1 letterbox (what classify did before) is far off, and says so
    assert cli.main(["classify", str(tmp_path / "person.png"), *model, "--darknet-preprocessing"]) == 0
    captured = capsys.readouterr()
    wrong = {r["label"]: r["probability"] for r in json.loads(captured.out)["classes"]}
    assert abs(wrong["nsfw"] - reference[1]) > 1e-2 and "warning: " in captured.err
    assert "nsfw.json states the preprocessing BGR, 0-255, mean (104, 117, 123)" in captured.err


def test_cli_shows_and_overrides_it(resnet, tmp_path, capsys):
    cfg, weights, names = resnet
    assert cli.main(["info", str(cfg)]) == 0
    assert "preprocessing: RGB, 0-1, mean (0.485, 0.456, 0.406)" in capsys.readouterr().out
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), pixels((64, 64, 3), seed=2))
    model = ["--cfg", str(cfg), "--weights", str(weights), "--names", str(names), "--json", "--top", "10"]
    assert cli.main(["classify", str(image), *model, "--mean", "0.5", "--bgr"]) == 0
    got = {r["label"]: r["probability"] for r in json.loads(capsys.readouterr().out)["classes"]}
    override = {"mean": [0.5] * 3, "channel_order": "BGR", "scale": TORCHVISION["scale"]}
    with pydarknet.Network(cfg, weights, names=names, preprocessing={**override, "resize": "stretch"}) as net:
        expected = dict(pydarknet.classify(net, image, top=10))
    assert got == pytest.approx(expected, abs=1e-6)
    assert cli.main(["detect", str(image), "--mean", "1"]) == 2
    assert "preprocessing options are for converted models" in capsys.readouterr().err


def test_crop_resizes_the_shorter_side_then_cuts_the_centre(resnet, official):
    """Where no resizing is needed (the shorter side already is crop_from, or covers
    the input), the input is exactly the image's centre."""
    for shape, crop_from, (top, left) in (((80, 100, 3), 80, (8, 18)), ((64, 128, 3), 0, (0, 32))):
        image = pixels(shape, seed=4)
        with pydarknet.Network(*resnet[:2], preprocessing={"resize": "crop", "crop_from": crop_from}) as net:
            got = net.preprocess(image)
        centre = pydarknet.load_image(image).array[:, top:top + 64, left:left + 64]
        assert np.array_equal(got, centre)
    with pydarknet.Network(*resnet[:2], preprocessing={"resize": "crop", "crop_from": 100}) as net:
        assert net.preprocess(pixels((80, 100, 3))).shape == (3, 64, 64)
        assert "crop from 100" in str(net.preprocessing)
    with pytest.raises(ValueError, match="crop_from must be"):
        pydarknet.Preprocessing(resize="crop", crop_from=-1)
    with pydarknet.Network(*resnet[:2], preprocessing={"resize": "crop", "crop_from": 1 << 20}) as net:
        with pytest.raises(pydarknet.ImageError, match="more than the limit of 89478485 pixels"):
            net.preprocess(pixels((5, 7, 3)))  # 1048576 x 1468006 pixels: refused, not allocated
    with pydarknet.Network(*official, preprocessing={"resize": "crop"}) as detector:
        with pytest.raises(ValueError, match="'crop' preprocessing is for classifiers"):
            pydarknet.detect(detector, pixels((50, 50, 3)))


def test_classify_takes_sources_as_detect_does(resnet, tmp_path, capsys):
    cfg, weights, names = resnet
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"p{i}.png"), pixels((64, 64, 3), seed=10 + i))
    (folder / "broken.png").write_bytes(b"not a png")
    model = ["--cfg", str(cfg), "--weights", str(weights), "--names", str(names), "--json", "--top", "3"]
    assert cli.main(["classify", str(folder), *model]) == 1  # the broken one failed, the others ran
    out, err = capsys.readouterr()
    found = [json.loads(line) for line in out.splitlines()]
    assert [r["source"] for r in found] == [str(folder / n) for n in ("broken.png", "p0.png", "p1.png")]
    assert sorted(found[0]) == ["error", "source"] and "broken.png" in found[0]["error"]
    with pydarknet.Network(cfg, weights, names=names) as net:
        expected = [r.label for r in pydarknet.classify(net, folder / "p1.png", top=3)]
    assert [t["label"] for t in found[2]["classes"]] == expected and found[2]["frame"] is None
    assert len(err.splitlines()) == 1 and "broken.png" in err and err.startswith("pydarknet: error:")
