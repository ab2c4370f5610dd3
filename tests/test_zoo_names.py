"""A model is named the same way everywhere: zoo names in every command and function
that takes a model, and `pydarknet zoo list` / `zoo path` to see them and their files."""

import json

import onnx
import pytest

import pydarknet
from pydarknet import cli
from pydarknet.api import zoo
from pydarknet.runtime import samples

from conftest import assert_same_detections


def test_zoo_list_and_path(official, capsys):
    cfg, weights = official
    assert cli.main(["zoo", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["name", "task", "weights", "cfg"]
    listed = {row.split()[0]: row for row in rows[1:]}
    assert sorted(listed) == sorted(zoo.MODELS)
    assert str(weights) in listed["yolov3-tiny"] and str(cfg) in listed["yolov3-tiny"]
    assert cli.main(["zoo", "path", "yolov3-tiny"]) == 0
    paths = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert paths == {"cfg": str(cfg), "weights": str(weights), "names": str(samples.upstream_path("data/coco.names"))}
    assert cli.main(["zoo", "path", "yolov3-tiny", "--file", "weights"]) == 0
    assert capsys.readouterr().out == f"{weights}\n"


def test_fold_bn_and_to_onnx_take_a_zoo_name(official, tmp_path, capsys):
    assert cli.main(["fold-bn", "yolov3-tiny", "-o", str(tmp_path / "folded" / "y"), "-q"]) == 0
    with pydarknet.Network(tmp_path / "folded" / "y.cfg", tmp_path / "folded" / "y.weights",
                           names=samples.upstream_path("data/coco.names")) as folded:
        dog = samples.path("dog.jpg")
        assert_same_detections(pydarknet.detect(folded, dog), pydarknet.detect("yolov3-tiny", dog))
    assert cli.main(["to-onnx", "yolov3-tiny", "-o", str(tmp_path / "y.onnx"), "-q"]) == 0
    exported = onnx.load(str(tmp_path / "y.onnx"))
    onnx.checker.check_model(exported)
    assert [o.name for o in exported.graph.output] == ["yolo_16", "yolo_23"]
    assert pydarknet.export_onnx("yolov3-tiny", None, tmp_path / "z.onnx") == ["yolo_16", "yolo_23"]


def test_a_cfg_without_weights_says_what_to_give(tmp_path, capsys):
    assert cli.main(["to-onnx", str(tmp_path / "my.cfg"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "give its weights file too, or a zoo model name" in capsys.readouterr().err
    assert cli.main(["fold-bn", "yolov9", "-o", str(tmp_path / "x")]) == 2
    assert "pydarknet zoo list" in capsys.readouterr().err
    with pytest.raises(ValueError, match="weights file too"):
        pydarknet.export_onnx(str(tmp_path / "my.cfg"), None, tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_a_file_named_like_a_zoo_model_is_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolov3-tiny").write_text("[net]\n")
    assert not zoo.is_zoo_name("yolov3-tiny")
    with pytest.raises(ValueError, match="weights file too"):
        zoo.model_files("yolov3-tiny")


def test_the_zoo_classifier_scores_as_the_caffe_model_does(open_nsfw, tmp_path, capsys):
    """`pydarknet classify photo.png` (the zoo's open-nsfw, converted on first use) gives
    the scores OpenCV DNN gives on the original Caffe files, for an image the published
    pipeline would crop (256 x 256: the centre 224 x 224, no resizing on either side)."""
    import cv2

    prototxt, caffemodel = open_nsfw
    person = cv2.resize(cv2.imread(str(samples.path("person.jpg"))), (256, 256))
    cv2.imwrite(str(tmp_path / "person.png"), person)
    caffe = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    caffe.setInput(cv2.dnn.blobFromImage(person[16:240, 16:240], 1.0, (224, 224), (104, 117, 123), swapRB=False))
    reference = caffe.forward()[0]
    assert cli.main(["classify", str(tmp_path / "person.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    scores = {c["label"]: c["probability"] for c in record["classes"]}
    assert scores == pytest.approx({"sfw": reference[0], "nsfw": reference[1]}, abs=1e-4)
    assert record["normalization"] == "network"  # its last layer is a softmax
    found = pydarknet.classify("open-nsfw", tmp_path / "person.png")
    assert [c.label for c in found] == ["sfw", "nsfw"] and found[0].probability == pytest.approx(reference[0], abs=1e-4)
    assert cli.main(["zoo", "path", "open-nsfw", "--file", "cfg"]) == 0
    assert capsys.readouterr().out.strip().endswith("open-nsfw.cfg")
    with pytest.raises(zoo.ZooError, match="takes no weights file"):
        zoo.files("open-nsfw", weights=str(caffemodel))
