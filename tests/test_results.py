"""pydarknet.predict and its one Result type: every source, detectors and classifiers,
failed inputs, drawing and JSON."""

import json

import numpy as np
import pytest

import pydarknet
from pydarknet import cli
from pydarknet.runtime import samples

from conftest import assert_same_detections


def test_predict_gives_one_result_per_image_with_its_time(official, tmp_path):
    dog, eagle = samples.path("dog.jpg"), samples.path("eagle.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    results = list(pydarknet.predict("yolov3-tiny", [dog, broken, eagle], batch=2))
    assert [r.source for r in results] == [str(dog), str(broken), str(eagle)]
    first, failed, last = results
    assert (first.width, first.height, first.frame, first.classes, first.error) == (768, 576, None, None, None)
    assert_same_detections(first.detections, pydarknet.detect("yolov3-tiny", dog))
    assert_same_detections(last.detections, pydarknet.detect("yolov3-tiny", eagle))
    assert first.ms > 0 and last.ms > 0
    assert "broken.jpg" in failed.error and failed.detections == [] and failed.ms == 0
    assert failed.to_json() == {"source": str(broken), "error": failed.error}
    record = first.to_json()
    assert list(record) == ["source", "frame", "width", "height", "ms", "detections"]
    assert record["detections"] == [d.to_json() for d in first.detections]
    json.dumps(record)
    with pytest.raises(pydarknet.ImageError, match="broken.jpg"):
        list(pydarknet.predict("yolov3-tiny", [dog, broken], errors="raise"))
    assert pydarknet.FrameResult is pydarknet.Result


def test_one_image_object_and_arrays(official):
    dog = samples.path("dog.jpg")
    pixels = pydarknet.load_image(dog).to_uint8()
    (result,) = pydarknet.predict("yolov3-tiny", pixels)
    assert result.source == "<image 0>" and (result.width, result.height) == (768, 576)
    assert_same_detections(result.detections, pydarknet.detect("yolov3-tiny", dog))


def test_predict_on_a_classifier_gives_its_classes(tiny_cfg, tiny_weights):
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pydarknet.Network(tiny_cfg, tiny_weights, names=list("abcde"), fold_bn=False) as net:
        (result,) = pydarknet.predict(net, [image], top=3)
        assert result.detections is None and result.classes == pydarknet.classify(net, image, top=3)
        record = result.to_json()
        assert record["classes"] == [c.to_json() for c in result.classes] and record["ms"] >= 0
        with pytest.raises(ValueError, match="no boxes to draw"):
            result.draw()
        with pytest.raises(ValueError, match="is a classifier"):
            next(pydarknet.detect_stream(net, [image]))


def test_draw_and_save(official, tmp_path):
    dog = samples.path("dog.jpg")
    (result,) = pydarknet.predict("yolov3-tiny", dog)
    drawn = result.draw()
    assert np.array_equal(drawn, pydarknet.draw(dog, result.detections))
    assert np.array_equal(result.draw(channel_order="BGR"), drawn[:, :, ::-1])
    saved = result.save(tmp_path / "dog.jpg", labels="conf")
    assert saved == tmp_path / "dog.jpg" and [p.name for p in tmp_path.iterdir()] == ["dog.jpg"]
    assert np.abs(pydarknet.load_image(saved).to_uint8().astype(int) - result.draw(labels="conf")).mean() < 3
    failed = pydarknet.Result("x.jpg", None, 0, 0, detections=[], error="x.jpg: no such file")
    with pytest.raises(ValueError, match="nothing to draw"):
        failed.draw()


def test_cli_table_prints_each_images_time(official, capsys):
    assert cli.main(["detect", str(samples.path("dog.jpg"))]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{samples.path('dog.jpg')}: 5 objects (") and first.endswith(" ms)")


def test_cli_json_coco_and_a_broken_input(official, tmp_path, monkeypatch, capsys):
    """detect a.jpg --json photo_1.jpg broken.jpg --coco c.json: a record per image, an
    error record for the broken one, exit 1, and two COCO image ids."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jpg").write_bytes(samples.path("dog.jpg").read_bytes())
    (tmp_path / "photo_1.jpg").write_bytes(samples.path("eagle.jpg").read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert cli.main(["detect", "a.jpg", "--json", "photo_1.jpg", "broken.jpg", "--coco", "c.json"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in records] == ["a.jpg", "photo_1.jpg", "broken.jpg"]
    assert [len(r["detections"]) for r in records[:2]] == [5, 1]
    assert records[2] == {"source": "broken.jpg", "error": "cannot load image broken.jpg: unknown image type"}
    coco = json.loads((tmp_path / "c.json").read_text())
    images = json.loads((tmp_path / "c.images.json").read_text())
    assert [(i["id"], i["file_name"]) for i in images] == [(1, "a.jpg"), (2, "photo_1.jpg")]
    assert sorted({r["image_id"] for r in coco}) == [1, 2] and len(coco) == 6
