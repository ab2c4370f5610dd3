"""What ``pydarknet detect`` reads and writes, however the sources look (red-team
scripts 43-49 and 51): every input once, none written over, no two results under one
name, names it cannot print, Ctrl-C and a closed stdout keeping what was found, COCO
ids that map back to their files, and Ray batches with bad rows. A property test runs
it over random source trees."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pydarknet
from pydarknet import cli
from pydarknet.runtime import samples

from conftest import assert_same_detections

DETECTOR = ("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=18\nsize=1\nstride=1\n"
            "activation=linear\n\n[yolo]\nmask=0,1,2\nanchors=10,14,23,27,37,58\nclasses=1\nnum=3\n")


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """A tiny [yolo] detector with random weights: it finds boxes in anything, quickly."""
    folder = tmp_path_factory.mktemp("detector")
    (folder / "t.cfg").write_text(DETECTOR)
    (folder / "t.names").write_text("thing\n")
    with pydarknet.Network(folder / "t.cfg") as net:
        net.save_weights(folder / "t.weights")
    return ["--cfg", str(folder / "t.cfg"), "--weights", str(folder / "t.weights"), "--names", str(folder / "t.names")]


@pytest.fixture(scope="module")
def jpeg():
    """A small JPEG (a quarter of dog.jpg), as bytes."""
    image = cv2.imread(str(samples.path("dog.jpg")))
    return cv2.imencode(".jpg", cv2.resize(image, (96, 72)))[1].tobytes()


def detect(detector, *args, cwd=None):
    """``pydarknet detect`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["detect", *map(str, args), *detector])
    return status, out.getvalue(), err.getvalue()


def detect_process(detector, *args, cwd):
    """``pydarknet detect`` in a child that takes Ctrl-C (a runner may start us with
    SIGINT ignored, which children inherit)."""
    return subprocess.Popen([sys.executable, "-m", "pydarknet", "detect", *map(str, args), *detector], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def snapshot(folder: Path) -> dict:
    """Every file below ``folder`` (links not followed) -> its bytes."""
    found = {}
    for here, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(here, name)
            if not os.path.islink(path):
                found[path] = Path(path).read_bytes()
    return found


def test_out_onto_the_input_folder_is_refused_before_any_work(detector, jpeg, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "dog.jpg").write_bytes(jpeg)
    status, out, err = detect(detector, photos, "--out", photos)
    assert status == 2 and "would replace the input" in err and out == ""
    assert (photos / "dog.jpg").read_bytes() == jpeg and sorted(os.listdir(photos)) == ["dog.jpg"]


def test_a_frame_and_an_image_never_share_an_annotated_name(detector, jpeg, tmp_path):
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, image.shape[1::-1])
    for _ in range(2):
        writer.write(image)
    writer.release()
    (tmp_path / "clip-000000.jpg").write_bytes(jpeg)
    status, _, err = detect(detector, tmp_path / "clip.avi", tmp_path / "clip-000000.jpg", "--out", tmp_path / "o")
    assert status == 2 and "clip-000000.jpg and the frames of" in err and list((tmp_path / "o").iterdir()) == []


def test_symlink_loops_are_followed_once(detector, jpeg, tmp_path):
    (tmp_path / "two" / "d").mkdir(parents=True)
    (tmp_path / "two" / "dog.jpg").write_bytes(jpeg)
    os.symlink("..", tmp_path / "two" / "d" / "x")
    os.symlink("..", tmp_path / "two" / "d" / "y")
    for source in (tmp_path / "two", tmp_path / "two" / "**" / "*.jpg"):
        status, out, _ = detect(detector, source, "--recursive", "--json")
        assert status == 0 and [json.loads(line)["source"] for line in out.splitlines()] == \
            [str(tmp_path / "two" / "dog.jpg")]


def test_names_that_are_not_utf8_are_printed_escaped_and_the_run_goes_on(detector, jpeg, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for name in (b"a.jpg", b"b\xff.jpg", b"c.jpg"):
        (folder / os.fsdecode(name)).write_bytes(jpeg)
    done = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(folder), "--json", *detector],
                          capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0
    sources = [json.loads(line.decode("utf-8"))["source"] for line in done.stdout.splitlines()]
    assert sources == [str(folder / n) for n in ("a.jpg", "b\\xff.jpg", "c.jpg")]
    table = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(folder), *detector],
                           capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert table.returncode == 0 and table.stdout.decode("utf-8").count("objects") == 3


def many(folder: Path, jpeg: bytes, count: int) -> None:
    folder.mkdir()
    (folder / "img_1.jpg").write_bytes(jpeg)
    for i in range(2, count + 1):
        os.link(folder / "img_1.jpg", folder / f"img_{i}.jpg")


def test_ctrl_c_keeps_what_was_found(detector, jpeg, tmp_path):
    many(tmp_path / "many", jpeg, 3000)
    process = detect_process(detector, "many", "--json", "--coco", "results.json", "--thresh", "0.01",
                             cwd=tmp_path)
    for _ in range(20):  # under way
        process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("pydarknet: interrupted after ")
    images = json.loads((tmp_path / "results.images.json").read_text())
    assert len(images) >= 20 and json.loads((tmp_path / "results.json").read_text())
    assert all(image["id"] == int(Path(image["file_name"]).stem[4:]) for image in images)  # img_N: N


def test_a_closed_stdout_still_writes_what_was_asked(detector, jpeg, tmp_path):
    many(tmp_path / "photos", jpeg, 8)
    process = detect_process(detector, "photos", "--coco", "r.json", "--out", "drawn", cwd=tmp_path)
    process.stdout.readline()
    process.stdout.close()  # as `| head -1`
    err = process.stderr.read()
    assert process.wait(timeout=60) == 0 and err == ""
    assert len(json.loads((tmp_path / "r.images.json").read_text())) == 8  # the run went on for the files
    assert len(list((tmp_path / "drawn").iterdir())) == 8


def test_coco_image_ids_are_unique_and_map_back_to_files(detector, jpeg, tmp_path):
    for name in ("a.jpg", "photo_1.jpg", "COCO_val2014_000000000042.jpg"):
        (tmp_path / name).write_bytes(jpeg)
    status, _, _ = detect(detector, tmp_path / "a.jpg", tmp_path / "photo_1.jpg", "--thresh", "0.01",
                          "--coco", tmp_path / "r.json")
    images = json.loads((tmp_path / "r.images.json").read_text())
    assert status == 0 and [(i["id"], Path(i["file_name"]).name) for i in images] == [(1, "a.jpg"),
                                                                                       (2, "photo_1.jpg")]
    assert {r["image_id"] for r in json.loads((tmp_path / "r.json").read_text())} == {1, 2}
    # every input named as COCO names its files: their numbers
    detect(detector, tmp_path / "photo_1.jpg", tmp_path / "COCO_val2014_000000000042.jpg", "--coco", tmp_path / "c.json")
    assert [i["id"] for i in json.loads((tmp_path / "c.images.json").read_text())] == [1, 42]


def test_coco_output_in_a_missing_folder_is_refused_before_any_work(detector, jpeg, tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg)
    status, out, err = detect(detector, tmp_path / "a.jpg", "--json", "--coco", tmp_path / "nodir" / "c.json")
    assert status == 2 and out == "" and "does not exist" in err


def test_ray_rows_that_are_not_images_get_an_error_and_the_rest_detections(detector, jpeg):
    import pydarknet.ray

    cfg, weights, names = detector[1], detector[3], detector[5]
    good = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    rows = [good, None, np.zeros((40, 40, 2), np.uint8), np.zeros((40, 40, 3)), np.zeros((0, 0, 3), np.uint8), good]
    column = np.empty(len(rows), dtype=object)
    column[:] = rows
    detector = pydarknet.ray.Detector((cfg, weights, names), threads=1, batch=2, thresh=0.01)
    out = detector({"image": column, "id": np.arange(6)})
    assert list(out["id"]) == list(range(6))
    assert [e is None for e in out["error"]] == [True, False, False, False, False, True]
    expected = pydarknet.detect((cfg, weights, names), good, thresh=0.01)
    assert expected and list(out["detections"][0]) == list(out["detections"][5])
    assert_same_detections(out["detections"][0], expected, thresh=0.01)
    assert all(list(out["detections"][i]) == [] for i in range(1, 5))


# -- random source trees --------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "dog", "IMG_0001", "x y", "ünï", "b\udcff", "photo_1", "clip-000000"])
TREES = st.recursive(st.dictionaries(NAMES, st.just(None), max_size=3),
                     lambda children: st.dictionaries(NAMES, children, max_size=3), max_leaves=8)


def build(folder: Path, tree: dict, jpeg: bytes, links: list) -> None:
    """Folders (dict values) and images (None values, NAME.jpg); ``links`` collects the
    folders, for symbolic links back up the tree."""
    folder.mkdir(parents=True, exist_ok=True)
    links.append(folder)
    for name, child in tree.items():
        if child is None:
            (folder / f"{name}.jpg").write_bytes(jpeg)
        else:
            build(folder / f"{name}.d", child, jpeg, links)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=TREES, link_ups=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=3),
       out_at=st.one_of(st.none(), st.just(-1), st.integers(0, 20)))
@example(tree={"a": {"a": None}, "b": {"a": None}}, link_ups=[], out_at=1)  # refused for two reasons at once
@example(tree={"a": None, "s": {"b": None}}, link_ups=[(1, 0)], out_at=-1)  # a loop, --out inside
def test_any_source_tree_gives_one_result_per_image_and_keeps_the_inputs(detector, jpeg, tree, link_ups, out_at):
    """``out_at``: --out outside the tree (None), a new folder inside it (-1), or one of
    its folders, images and all."""
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        folders: list = []
        build(root, tree, jpeg, folders)
        for i, (source, target) in enumerate(link_ups):  # links to folders, loops included
            os.symlink(folders[target % len(folders)], folders[source % len(folders)] / f"link{i}")
        images = sorted({os.path.realpath(os.path.join(here, f)) for here, _, files in os.walk(root)
                         for f in files if f.endswith(".jpg")})
        before = snapshot(root)
        out = Path(work) / "annotated" if out_at is None else root / "annotated" if out_at == -1 else \
            folders[out_at % len(folders)]
        status, printed, err = detect(detector, root, "--recursive", "--json", "--out", out)
        assert all(Path(path).read_bytes() == data for path, data in before.items())  # inputs untouched
        stems = [Path(p).stem for p in images]
        refusals = [reason for reason, holds in (
            ("would both be written", len(set(stems)) < len(stems)),  # two images, one annotated name
            ("would replace the input", any(Path(p).parent == Path(os.path.realpath(out)) for p in images)),
        ) if holds]
        if refusals:  # before any work, for one of the reasons
            assert status == 2 and any(reason in err for reason in refusals) and printed == ""
            assert snapshot(root) == before
            return
        assert status == 0, err
        sources = [json.loads(line)["source"] for line in printed.splitlines()]
        assert sorted(os.path.realpath(s.replace("\\xff", "\udcff")) for s in sources) == images  # each once
        assert sorted(p.stem for p in out.iterdir() if p.suffix == ".jpg" and str(p) not in before) == \
            sorted(stems)  # nothing lost


@pytest.mark.parametrize("pattern", ["**/*.jpg", "**/a*.jpg", "sub/**/*.png", "**/.hidden/*.jpg", "*/*.jpg"])
def test_recursive_globs_match_what_glob_matches_without_links(tmp_path, pattern):
    """The loop-safe '**' finds what Python's glob finds in a tree without links."""
    import glob

    from pydarknet.api.sources import expand

    for name in ("a.jpg", "b.png", "sub/a1.jpg", "sub/deep/b2.png", "sub/deep/a3.jpg", ".hidden/a4.jpg",
                 "sub/.x.jpg", "other/c.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    full = str(tmp_path / pattern)
    assert list(expand([full], recursive=True)) == sorted(glob.glob(full, recursive=True))


def test_the_progress_bar_counts_towards_the_total(detector, jpeg, tmp_path):
    """On a terminal, detect over images draws a bar with the total (and so the time
    left): 'N/3'. Not on a pipe, and without a total where a video's frames are unknown."""
    import fcntl
    import pty
    import struct
    import termios

    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(jpeg)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 wide
    done = subprocess.Popen([sys.executable, "-m", "pydarknet", "detect", "a.jpg", "b.jpg", "c.jpg", "--json",
                             *detector], cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert done.wait(timeout=60) == 0 and len(done.stdout.read().splitlines()) == 3
    assert b"/3 [" in drawn, drawn


def test_classes_and_yolo_label_files(official, tmp_path):
    """--classes dog --save-txt labels: only dogs, in every output, and a YOLO row per
    dog whose box is the reported one relative to the image."""
    dog = samples.path("dog.jpg")
    status, printed, err = detect([], dog, "--json", "--classes", "dog", "--save-txt", tmp_path / "labels",
                                  "--coco", tmp_path / "c.json")
    assert status == 0, err
    found = json.loads(printed)["detections"]
    assert [d["label"] for d in found] == ["dog"]
    assert {r["category_id"] for r in json.loads((tmp_path / "c.json").read_text())} == {18}  # COCO's dog
    rows = [line.split() for line in (tmp_path / "labels" / "dog.txt").read_text().splitlines()]
    assert len(rows) == 1 and rows[0][0] == "16"  # dog's class in coco.names
    cx, cy, w, h, confidence = map(float, rows[0][1:])
    width, height = 768, 576
    d = found[0]
    x1, y1, x2, y2 = max(d["x1"], 0), max(d["y1"], 0), min(d["x2"], width), min(d["y2"], height)
    assert (cx, cy, w, h) == pytest.approx(((x1 + x2) / 2 / width, (y1 + y2) / 2 / height,
                                            (x2 - x1) / width, (y2 - y1) / height), abs=1e-6)
    assert confidence == pytest.approx(d["confidence"], abs=1e-6) and 0 < confidence <= 1
    unknown = detect([], dog, "--classes", "dogg")
    assert unknown[0] == 2 and "no class 'dogg'" in unknown[2]
    # --out draws the kept detections only, labelled with their confidence by --labels conf
    assert detect([], dog, "--classes", "dog", "--out", tmp_path / "o", "--labels", "conf")[0] == 0
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "o" / "dog.jpg")), cv2.COLOR_BGR2RGB).astype(int)
    everything = pydarknet.detect("yolov3-tiny", dog)
    dogs = [d for d in everything if d.label == "dog"]
    only_dogs = np.abs(written - pydarknet.draw(dog, dogs, labels="conf")).mean()
    assert only_dogs < 3 and only_dogs < np.abs(written - pydarknet.draw(dog, everything, labels="conf")).mean()
    assert only_dogs < np.abs(written - pydarknet.draw(dog, dogs, labels="name")).mean()


def test_label_styles(official):
    """--labels / draw(labels=...): "none" draws the boxes only, "conf" longer labels
    than "name" (the confidence after it), all over the same boxes."""
    dog = samples.path("dog.jpg")
    result = next(pydarknet.predict("yolov3-tiny", dog))
    original = pydarknet.load_image(dog).to_uint8()
    changed = {style: (result.draw(labels=style) != original).any(axis=2).sum() for style in ("none", "name", "conf")}
    assert 0 < changed["none"] < changed["name"] < changed["conf"]
    boxes_only = result.draw(labels="none")
    assert np.array_equal(boxes_only, pydarknet.draw(dog, result.detections, labels="none"))
    with pytest.raises(ValueError, match="labels must be one of"):
        result.draw(labels="score")
