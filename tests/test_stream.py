"""Detection at scale: folders, globs, videos (``detect_stream`` and ``pydarknet
detect``), drawing, and Ray Data. Every result is compared with ``pydarknet.detect`` on
the same decoded pixels, which test_inference.py ties to upstream's own output; at
another batch size or thread count, as assert_same_detections says (conftest.py)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import pydarknet
from pydarknet import cli
from pydarknet.runtime import samples

from conftest import assert_same_detections

IMAGES = ("dog.jpg", "eagle.jpg", "horses.jpg", "person.jpg")


def records(done) -> list:
    return [json.loads(line) for line in done.splitlines()]


def expected(source, channel_order="RGB"):
    return [d.to_json() for d in pydarknet.detect("yolov3-tiny", source, channel_order=channel_order)]


@pytest.fixture
def photos(tmp_path, official):
    """photos/: two images, a text file, an empty image's worth of grey, and sub/ with one more."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in IMAGES[:2]:
        shutil.copy(samples.path(name), folder / name)
    shutil.copy(samples.path(IMAGES[2]), folder / "sub" / IMAGES[2])
    (folder / "notes.txt").write_text("not an image\n")
    cv2.imwrite(str(folder / "grey.png"), np.full((40, 60, 3), 128, np.uint8))
    return folder


def test_a_folder_as_json_lines(photos, capsys):
    assert cli.main(["detect", str(photos), "--json"]) == 0
    found = records(capsys.readouterr().out)
    assert [r["source"] for r in found] == [str(photos / n) for n in ("dog.jpg", "eagle.jpg", "grey.png")]
    for record in found:
        image = pydarknet.load_image(record["source"])
        assert (record["width"], record["height"], record["frame"]) == (image.width, image.height, None)
        assert_same_detections(record["detections"], expected(record["source"]))
    assert found[2]["detections"] == []  # an image without objects still has its record
    assert cli.main(["detect", str(photos), "--json", "--recursive"]) == 0
    assert [r["source"] for r in records(capsys.readouterr().out)][-1] == str(photos / "sub" / "horses.jpg")


def test_bad_inputs_are_one_line_each_and_the_run_goes_on(photos, capsys):
    missing = photos / "missing.jpg"
    assert cli.main(["detect", str(photos / "*"), str(missing), "--json", "--batch", "2"]) == 1
    out, err = capsys.readouterr()
    found = records(out)
    assert [r["source"] for r in found] == [str(photos / n) for n in ("dog.jpg", "eagle.jpg", "grey.png", "notes.txt")] \
        + [str(photos / "sub" / "horses.jpg"), str(missing)]  # the glob's folder: its images
    failed = [r for r in found if "error" in r]  # a failed input's record: its source and the error, nothing else
    assert [sorted(r) for r in failed] == [["error", "source"]] * 2
    assert "unknown image type" in failed[0]["error"] and "no such file" in failed[1]["error"]
    assert all(r["ms"] > 0 and "detections" in r for r in found if "error" not in r)
    errors = err.splitlines()
    assert len(errors) == 2 and all(line.startswith("pydarknet: error: ") for line in errors)
    assert "notes.txt" in errors[0] and "unknown image type" in errors[0] and "missing.jpg" in errors[1]
    assert cli.main(["detect", str(photos / "notes.txt"), str(photos / "dog.jpg"), "--json", "--fail-fast"]) == 1
    assert [r["source"] for r in records(capsys.readouterr().out)] == [str(photos / "notes.txt")]


def test_batches_give_the_same_results(photos):
    one = list(pydarknet.detect_stream("yolov3-tiny", [photos], batch=1, recursive=True))
    four = list(pydarknet.detect_stream("yolov3-tiny", [photos], batch=4, recursive=True))
    assert [r.source for r in one] == [r.source for r in four]
    for a, b in zip(one, four):
        assert_same_detections(b.detections, a.detections)


def test_detect_stream_errors_raise_or_yield(photos):
    with pytest.raises(pydarknet.FileError, match="missing.jpg"):
        list(pydarknet.detect_stream("yolov3-tiny", [photos / "dog.jpg", photos / "missing.jpg"]))
    results = list(pydarknet.detect_stream("yolov3-tiny", [photos / "missing.jpg", photos / "dog.jpg"],
                                           errors="yield"))
    assert results[0].error and "no such file" in results[0].error and results[0].detections == []
    assert_same_detections(results[1].detections, expected(photos / "dog.jpg"))
    bgr = cv2.imread(str(photos / "dog.jpg"))  # OpenCV's decoder: not quite stb's pixels
    arrays = list(pydarknet.detect_stream("yolov3-tiny", [bgr], channel_order="BGR"))
    assert arrays[0].source == "<image 0>"
    assert_same_detections(arrays[0].detections, expected(bgr, channel_order="BGR"))


@pytest.fixture
def clip(tmp_path):
    """A 6-frame MJPG video of the sample images, and its frames as OpenCV decodes them."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    for name in IMAGES + IMAGES[:2]:
        writer.write(cv2.resize(cv2.imread(str(samples.path(name))), (320, 240)))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 6
    return path, frames


def test_a_video_frame_by_frame(clip, tmp_path, capsys, official):
    path, frames = clip
    assert cli.main(["detect", str(path), "--json", "--batch", "3", "--out", str(tmp_path / "drawn")]) == 0
    found = records(capsys.readouterr().out)
    assert [(r["source"], r["frame"], r["width"], r["height"]) for r in found] == \
        [(str(path), i, 320, 240) for i in range(6)]
    for record, frame in zip(found, frames):
        assert_same_detections(record["detections"], expected(frame, channel_order="BGR"))
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [f"clip-{i:06d}.jpg" for i in range(6)]


def test_unopenable_videos_and_cameras_are_input_errors(tmp_path, capsys, official):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert cli.main(["detect", str(tmp_path / "broken.mp4"), "99", str(samples.path("eagle.jpg")), "--json"]) == 1
    out, err = capsys.readouterr()
    assert [(r["source"], "error" in r) for r in records(out)] == [
        (str(tmp_path / "broken.mp4"), True), ("99", True), (str(samples.path("eagle.jpg")), False)]
    mine = [line for line in err.splitlines() if line.startswith("pydarknet: error:")]
    assert len(mine) == 2 and "broken.mp4" in mine[0] and "99" in mine[1]


def test_coco_results_and_threads(photos, tmp_path, capsys):
    coco_named = tmp_path / "coco"
    coco_named.mkdir()
    shutil.copy(samples.path("dog.jpg"), coco_named / "COCO_val2014_000000000042.jpg")
    shutil.copy(samples.path("eagle.jpg"), coco_named / "eagle.jpg")
    assert cli.main(["detect", str(coco_named), "--coco", str(tmp_path / "results.json"), "--threads", "1"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    images = json.loads((tmp_path / "results.images.json").read_text())
    # eagle.jpg has no number in its name: every image is numbered by its position
    assert [(i["id"], Path(i["file_name"]).name) for i in images] == [(1, "COCO_val2014_000000000042.jpg"),
                                                                      (2, "eagle.jpg")]
    dog = [r for r in results if r["image_id"] == 1]
    assert {r["category_id"] for r in dog} == {2, 3, 8, 18}  # bicycle, car, truck, dog in COCO's ids
    (coco_named / "eagle.jpg").rename(coco_named / "eagle_7.jpg")  # now every name has its number
    assert cli.main(["detect", str(coco_named), "--coco", str(tmp_path / "results.json")]) == 0
    assert {r["image_id"] for r in json.loads((tmp_path / "results.json").read_text())} == {42, 7}
    for r in results:
        x, y, w, h = r["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and 0 < r["score"] <= 1
    assert "dog.jpg" not in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(photos):
    done = subprocess.run(f"{sys.executable} -m pydarknet detect {photos} --recursive --json | head -1",
                          shell=True, capture_output=True, text=True, executable="/bin/bash")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1 and done.stderr == "", done.stderr


def test_draw_is_upstreams_drawing(tmp_path, official):
    dog = samples.path("dog.jpg")
    found = pydarknet.detect_batch("yolov3-tiny", [dog], annotate=[str(tmp_path / "upstream")])[0]
    drawn = pydarknet.draw(dog, found)
    original = pydarknet.load_image(dog).to_uint8()
    assert drawn.shape == original.shape and drawn.dtype == np.uint8
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "upstream.jpg")), cv2.COLOR_BGR2RGB)
    changed = np.abs(drawn.astype(int) - original).max(axis=2) > 0
    assert 0.01 < changed.mean() < 0.5  # boxes and labels, not the whole image
    # the JPEG upstream wrote differs from the drawn pixels by its compression only
    assert np.abs(written.astype(int) - drawn).mean() < 3
    assert np.abs(written.astype(int) - original).mean() > np.abs(written.astype(int) - drawn).mean()
    bgr = pydarknet.draw(np.ascontiguousarray(original[:, :, ::-1]), found, channel_order="BGR")
    assert np.array_equal(bgr, drawn[:, :, ::-1])
    assert np.array_equal(pydarknet.draw(dog, []), original)


def test_ray_detector_on_a_local_cluster(photos, official):
    ray = pytest.importorskip("ray")
    import logging

    import pydarknet.ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        images = ray.data.read_images(str(photos), mode="RGB", include_paths=True, file_extensions=["jpg", "png"])
        found = images.map_batches(pydarknet.ray.Detector, fn_constructor_kwargs={"model": "yolov3-tiny"},
                                   compute=ray.data.ActorPoolStrategy(size=2), batch_size=2,
                                   num_cpus=0.5).take_all()
    finally:
        ray.shutdown()
    names = ("dog.jpg", "eagle.jpg", "grey.png", "sub/horses.jpg")  # read_images: subfolders too
    assert sorted(row["path"] for row in found) == sorted(str(photos / n) for n in names)
    for row in found:  # the same pixels (PIL decoded them) through pydarknet.detect
        assert_same_detections(row["detections"], expected(row["image"]))


def test_ray_detector_outside_ray_keeps_other_columns(official):
    import pydarknet.ray

    detector = pydarknet.ray.Detector("yolov3-tiny", threads=1, batch=2)
    dog = pydarknet.load_image(samples.path("dog.jpg")).to_uint8()
    out = detector({"image": np.stack([dog, dog]), "id": np.array([7, 8])})
    assert list(out["id"]) == [7, 8]
    assert_same_detections(out["detections"][0], expected(dog))
    with pytest.raises(KeyError, match="no 'img' column"):
        pydarknet.ray.Detector("yolov3-tiny", threads=1, column="img")({"image": np.stack([dog])})
