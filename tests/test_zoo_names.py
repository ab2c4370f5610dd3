"""A model is named the same way everywhere: zoo names in every command and function
that takes a model, and `pydarknet zoo list` / `zoo path` to see them and their files."""

import onnx
import pytest

import pydarknet
from pydarknet import cli
from pydarknet.runtime import samples, zoo

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
