"""Evaluation (issue 29): Darknet's convention checked against figures worked by hand from
AlexeyAB's validate_detector_map, COCO's against pycocotools on ``detect --coco`` output,
and the dataset rules (.data files, label paths, label files)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import pydarknet
from pydarknet.api.darknet_map import Candidates, figures
from pydarknet.formats.dataset import DataFile, Labels, label_path

from support.labelled import coco_set, darknet_set, samples_set


def labels(rows):
    rows = np.array(rows, np.float64).reshape(-1, 5)
    return Labels(rows[:, 0].astype(np.int64), rows[:, 1:].astype(np.float32))


def candidates(rows):
    rows = np.array(rows, np.float64).reshape(-1, 6)
    return Candidates(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.float32), rows[:, 2:].astype(np.float32))


# Two images, two classes. Image A: a class-0 object found twice (0.9, then 0.8: a
# duplicate) and a class-1 candidate far from its object (0.3). Image B: a class-0 object
# found at IoU 0.036 / 0.044 = 9/11 (0.6), and a class-0 miss below the threshold (0.1).
TRUTH = [labels([(0, .5, .5, .2, .2), (1, .2, .2, .1, .1)]), labels([(0, .3, .3, .2, .2)])]
FOUND = [candidates([(0, .9, .5, .5, .2, .2), (0, .8, .5, .5, .2, .2), (1, .3, .8, .8, .1, .1)]),
         candidates([(0, .6, .32, .3, .2, .2), (0, .1, .9, .9, .1, .1)])]


@pytest.mark.parametrize("points, class0", [
    # by confidence, class 0's (precision, recall): (1, 1/2) (1/2, 1/2) (2/3, 1) (2/3, 1) (1/2, 1).
    # Area: recall 0 to 1/2 at precision 1 (the best from rank 0 on), 1/2 to 1 at 2/3
    (0, 1 / 2 * 1 + 1 / 2 * 2 / 3),
    # the best precision at recall >= 0, .1, ..., 1: six times 1, five times 2/3
    (11, (6 + 5 * 2 / 3) / 11),
    # at recall >= 0, .01, ..., 1: 51 times 1, 50 times 2/3
    (101, (51 + 50 * 2 / 3) / 101),
])
def test_darknet_convention_worked_by_hand(points, class0):
    result = figures(FOUND, TRUTH, ["a", "b"], iou_thresh=0.5, thresh=0.25, points=points)
    assert result.classes[0].ap == pytest.approx(class0, abs=1e-9)
    assert result.classes[1].ap == 0  # its one candidate matched nothing
    assert result.map == pytest.approx(class0 / 2, abs=1e-9)  # over both classes
    # at 0.25: A's 0.9 is a TP, its 0.8 an FP (that object was matched earlier in the
    # image), its 0.3 an FP; B's 0.6 a TP, its 0.1 below the threshold
    assert (result.tp, result.fp, result.fn) == (2, 2, 1)
    assert [(c.tp, c.fp, c.truths) for c in result.classes] == [(2, 1, 2), (0, 1, 1)]
    assert result.precision == pytest.approx(0.5) and result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), rel=1e-6)
    # true positives' IoU (1 and 9/11) over true plus false positives
    assert result.average_iou == pytest.approx((1 + 9 / 11) / 4, rel=1e-6)


def test_darknet_convention_without_candidates_or_above_the_threshold():
    result = figures([candidates([]), candidates([(0, .1, .5, .5, .2, .2)])], TRUTH, ["a", "b"])
    assert result.map == 0 and (result.tp, result.fp, result.fn) == (0, 0, 3)
    assert math.isnan(result.precision) and result.recall == 0 and math.isnan(result.f1)
    assert result.average_iou == 0


def test_label_paths_follow_darknets_rules():
    assert label_path("data/obj/img1.jpg") == "data/obj/img1.txt"
    assert label_path("/coco/images/val2017/0001.jpg") == "/coco/labels/val2017/0001.txt"
    assert label_path("/VOC/VOC2007/JPEGImages/000005.JPEG") == "/VOC/VOC2007/labels/000005.txt"
    assert label_path("x/images/a.png") == "x/images/a.txt"  # only COCO's own folders move
    assert label_path("a.Jpg") == "a.Jpg"  # Darknet's list of suffixes, as written


def test_label_files_report_their_problems(tmp_path):
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n\n7 0.5 0.5 0.1 0.1\n1 0.5 0.5 1.5 0.1\nbad line\n1 .1 .1 .1 .1\n")
    read = Labels.read(tmp_path / "a.txt", classes=2)
    assert read.classes.tolist() == [0, 1]  # class 7 left out; reading stops at the bad line
    assert read.boxes.tolist()[1] == pytest.approx([0.5, 0.5, 1.5, 0.1])  # kept, as Darknet keeps it
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in read.problems] == ["3", "4", "5"]
    missing = Labels.read(tmp_path / "none.txt", classes=2)
    assert len(missing.classes) == 0 and "no label file" in missing.problems[0]


def test_data_files(tmp_path, monkeypatch):
    (tmp_path / "list.txt").write_text("a.jpg\n\n b.jpg \n")
    (tmp_path / "x.data").write_text("# comment\nclasses = 2\nvalid = list.txt\n")
    monkeypatch.chdir(tmp_path.parent)  # relative to the .data file's folder when not to the current one
    data = DataFile.read(tmp_path / "x.data")
    assert data.classes == 2 and data.images() == ["a.jpg", "b.jpg"]
    (tmp_path / "y.data").write_text("classes=two\n")
    with pytest.raises(pydarknet.DatasetError, match="classes=two"):
        DataFile.read(tmp_path / "y.data").classes
    with pytest.raises(pydarknet.FileError, match="valid=none.txt not found"):
        DataFile(tmp_path / "y.data", {"valid": "none.txt"}).images()
    (tmp_path / "z.data").write_text("classes\n")
    with pytest.raises(pydarknet.DatasetError, match="z.data:1: expected key = value"):
        DataFile.read(tmp_path / "z.data")


# -- a model on files: upstream's reference detections of dog.jpg as its labels -----------

@pytest.fixture
def dataset(tmp_path):
    darknet_set(tmp_path, unlabelled=["person.jpg"])
    coco_set(tmp_path)
    return tmp_path


@pytest.mark.network
def test_darknet_convention_on_files(dataset):
    result = pydarknet.evaluate("yolov3-tiny", data=dataset / "coco.data", points=11)
    assert result.images == 2 and len(result.classes) == 80
    # the model finds the three objects it was labelled with, each above 0.5
    assert result.fn == 0 and result.tp == 3 and result.recall == 1
    assert [c.truths for c in result.classes if c.truths] == [1, 1, 1]
    assert result.problems == [f"{dataset / 'labelled' / 'person.txt'}: no label file (No such file or directory): "
                               "counted as an image without objects"]
    with pytest.raises(pydarknet.DatasetError, match="classes=2, but the model has 80 classes"):
        (dataset / "two.data").write_text(f"classes=2\nvalid={dataset / 'valid.txt'}\n")
        pydarknet.evaluate("yolov3-tiny", data=dataset / "two.data")


@pytest.mark.network
def test_map_command_json_and_plot(dataset):
    done = subprocess.run([sys.executable, "-m", "pydarknet", "map", "--data", str(dataset / "coco.data"),
                           "--points", "101", "--json", "--plot", str(dataset / "pr.png")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found) == {"map", "classes", "precision", "recall", "f1", "average_iou", "tp", "fp", "fn"}
    assert 0 <= found["map"] <= 1 and len(found["classes"]) == 80 and found["tp"] == 3
    assert "person.txt: no label file" in done.stderr
    assert (dataset / "pr.png").read_bytes()[:4] == b"\x89PNG"


# -- COCO's convention ---------------------------------------------------------------------

@pytest.mark.network
def test_coco_convention_is_pycocotools_on_detect_coco(dataset):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_truth = dataset / "instances.json"
    done = subprocess.run([sys.executable, "-m", "pydarknet", "map", "--coco-gt", str(coco_truth), "--images",
                           str(dataset / "val"), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ours = json.loads(done.stdout)["coco"]
    written = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(dataset / "val" / "dog.jpg"),
                              "--thresh", "0.005", "--nms", "0.45", "--coco", str(dataset / "r.json"),
                              "--coco-gt", str(coco_truth)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    # bicycle and car are categories of it, so the note starts person, motorbike
    assert "the model's classes person, motorbike, aeroplane" in written.stderr
    assert "are not categories of the ground truth; their detections are left out" in written.stderr
    truth = COCO(str(coco_truth))
    check = COCOeval(truth, truth.loadRes(str(dataset / "r.json")), "bbox")
    check.evaluate()
    check.accumulate()
    check.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    assert list(ours) == names
    for name, theirs in zip(names, check.stats):
        assert (ours[name] is None and theirs == -1) or ours[name] == pytest.approx(theirs, abs=1e-4), name
    assert ours["AP50"] > 0.5  # the labels are the model's own boxes, from upstream's C


def test_map_command_refuses_what_it_cannot_score(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "pydarknet", "map", *args], capture_output=True, text=True)

    done = run("--model", "yolov3-tiny")
    assert done.returncode == 2 and "give --data (a .data file) or --coco-gt (with --images)" in done.stderr
    done = run("--coco-gt", str(tmp_path / "gt.json"))
    assert done.returncode == 2 and "--coco-gt needs --images" in done.stderr
    (tmp_path / "gt.json").write_text("[1, 2]")
    done = run("--coco-gt", str(tmp_path / "gt.json"), "--images", str(tmp_path), "--cfg",
               str(pydarknet.upstream_path("cfg/yolov3-tiny.cfg")), "--weights", str(tmp_path / "none.weights"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1  # one line: the weights, or the ground truth


@pytest.mark.network
def test_detect_coco_gt_refuses_images_it_does_not_have(dataset):
    done = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(dataset / "labelled" / "person.jpg"),
                           "--coco", str(dataset / "r.json"), "--coco-gt", str(dataset / "instances.json")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "1 input(s) are not images of the ground truth" in done.stderr
    assert not (dataset / "r.json").exists()


# -- against darknet detector map itself ----------------------------------------------------

# AlexeyAB's darknet (master 59596d78, CPU build) `detector map` on upstream's seven sample
# images with the labels of tests/labelled/ (see PROVENANCE.md there), both cfgs with
# letter_box=0: the mAP it printed, and TP, FP, FN at 0.25
DARKNET_DETECTOR_MAP = {
    "yolov3-tiny": ({0: 0.073363, 11: 0.074648, 101: 0.073524}, (10, 14, 7)),
    "yolov4-tiny": ({0: 0.125, 11: 0.125, 101: 0.125}, (17, 2, 0)),
}


@pytest.mark.network
@pytest.mark.parametrize("model", sorted(DARKNET_DETECTOR_MAP))
def test_darknet_convention_equals_detector_map(model, tmp_path):
    from pydarknet.api import zoo

    samples_set(tmp_path)
    files = zoo.files(model)
    cfg = tmp_path / "resized.cfg"  # darknet detector map resizes without letter_box=1
    cfg.write_text(files.cfg.read_text().replace("[net]", "[net]\nletter_box=0", 1))
    expected, counts = DARKNET_DETECTOR_MAP[model]
    with pydarknet.Network(cfg, files.weights, names=files.names) as net:
        # resized, and yolov4-tiny's nms_kind=greedynms is DIoU-NMS with beta 1
        assert net.detection_steps() == (False, 1.0 if model == "yolov4-tiny" else -1.0)
        for points, darknet in expected.items():
            result = pydarknet.evaluate(net, data=tmp_path / "coco.data", points=points)
            assert result.map == pytest.approx(darknet, abs=1e-5), points  # darknet prints 6 decimals
            assert (result.tp, result.fp, result.fn) == counts


@pytest.mark.network
@pytest.mark.parametrize("model", ["yolov3-tiny", "yolov4-tiny"])  # do_nms_sort, and greedynms (DIoU)
def test_an_onnx_export_scores_as_the_runtime(model, tmp_path):
    """to-onnx --boxes on onnxruntime, with upstream's steps after it in Python, against the
    runtime on the same labelled images (letterboxed): the same candidates, so the same
    figures; a float32 difference between the runtimes could move a candidate across a
    threshold on another machine, hence the tolerance."""
    data = samples_set(tmp_path)
    subprocess.run([sys.executable, "-m", "pydarknet", "to-onnx", model, "-o", str(tmp_path / "m.onnx"), "--boxes"],
                   check=True, capture_output=True)
    with pydarknet.zoo.load(model) as net:
        ours = pydarknet.evaluate(net, data=data)
        exported = pydarknet.evaluate(net, data=data, onnx=tmp_path / "m.onnx")
    assert exported.map == pytest.approx(ours.map, abs=1e-3) and ours.map > 0
    assert abs(exported.tp - ours.tp) + abs(exported.fp - ours.fp) <= 1
    with pytest.raises(pydarknet.OnnxError, match="export it with pydarknet to-onnx --boxes"):
        subprocess.run([sys.executable, "-m", "pydarknet", "to-onnx", model, "-o", str(tmp_path / "plain.onnx")],
                       check=True, capture_output=True)
        pydarknet.evaluate(net, data=data, onnx=tmp_path / "plain.onnx")


@pytest.mark.parametrize("truth, message", [
    ({"images": [{"id": 1}], "annotations": [], "categories": []}, r"images\[0\] lacks id or file_name"),
    ({"images": [], "annotations": [], "categories": [{"id": 1}]}, r"categories\[0\] lacks id or name"),
    ({"images": [], "categories": []}, "lists of images, annotations and categories"),
])
def test_coco_ground_truth_is_checked(tmp_path, truth, message):
    from pydarknet.api.coco import GroundTruth

    (tmp_path / "gt.json").write_text(json.dumps(truth))
    with pytest.raises(pydarknet.DatasetError, match=message):
        GroundTruth(tmp_path / "gt.json")


def test_coco_stats_without_any_detection(dataset):
    from pydarknet.api.coco import GroundTruth

    stats = GroundTruth(dataset / "instances.json").stats([])
    assert stats["AP"] == 0 and stats["AR100"] == 0 and stats["APs"] is None  # no small objects


@pytest.mark.network
def test_unreadable_images_only_are_refused(dataset, tmp_path):
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'missing.jpg'}\n")
    (tmp_path / "x.data").write_text(f"classes=80\nvalid={tmp_path / 'list.txt'}\n")
    with pytest.raises(pydarknet.DatasetError, match="none of its 1 images could be read .*missing.jpg"):
        pydarknet.evaluate("yolov3-tiny", data=tmp_path / "x.data")
    with pytest.raises(pydarknet.DatasetError, match="none of its 1 images could be read"):
        pydarknet.evaluate("yolov3-tiny", coco_gt=dataset / "instances.json", images=tmp_path)


def test_an_empty_image_list_is_refused(tmp_path):
    (tmp_path / "list.txt").write_text("\n")
    (tmp_path / "x.data").write_text(f"classes=1\nvalid={tmp_path / 'list.txt'}\n")
    with pytest.raises(pydarknet.DatasetError, match="lists no images"):
        DataFile.read(tmp_path / "x.data").images()
