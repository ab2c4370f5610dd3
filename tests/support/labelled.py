"""Labelled sets for the evaluation tests, the docs' examples and tools/bench_map.py.
The small one: upstream's dog.jpg, labelled with the three objects upstream's C detector (yolov3-tiny, letterbox
416, thresh .5) reports in it (docs/models.md of the shared notes: dog, car, bicycle),
in Darknet's layout and as COCO ground truth. The labels are that reference output, not
anything this package computed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import pydarknet

# class x y w h, relative to the image (class ids of data/coco.names)
DOG_LABELS = "16 0.324 0.611 0.312 0.574\n2 0.745 0.209 0.279 0.171\n1 0.509 0.522 0.481 0.520\n"
# COCO's category id and name of those classes
CATEGORIES = {16: (18, "dog"), 2: (3, "car"), 1: (2, "bicycle")}


def _data_file(root: Path, images: Sequence[Path]) -> Path:
    """root/valid.txt listing ``images`` and root/coco.data naming it (80 COCO classes)."""
    (root / "valid.txt").write_text("".join(f"{image}\n" for image in images))
    coco_names = pydarknet.upstream_path("data/coco.names")
    (root / "coco.data").write_text(f"classes=80\nvalid={root / 'valid.txt'}\nnames={coco_names}\n")
    return root / "coco.data"


def darknet_set(root: Path, unlabelled: Sequence[str] = ()) -> Path:
    """root/labelled/ with dog.jpg and its labels (and ``unlabelled`` sample images
    without), root/valid.txt listing them, and root/coco.data; returns the .data file."""
    images = root / "labelled"
    images.mkdir(parents=True, exist_ok=True)
    names = ["dog.jpg", *unlabelled]
    for name in names:
        shutil.copy(pydarknet.samples.path(name), images / name)
    (images / "dog.txt").write_text(DOG_LABELS)
    return _data_file(root, [images / name for name in names])


def samples_set(root: Path) -> Path:
    """root/img/ with upstream's seven sample images and the labels of tests/labelled/
    (AlexeyAB's yolov4-tiny detections: PROVENANCE.md there), root/valid.txt and
    root/coco.data; returns the .data file."""
    images = root / "img"
    images.mkdir(parents=True, exist_ok=True)
    for label in sorted((Path(__file__).resolve().parent.parent / "labelled").glob("*.txt")):
        shutil.copy(label, images / label.name)
        shutil.copy(pydarknet.samples.path(label.stem + ".jpg"), images / (label.stem + ".jpg"))
    return _data_file(root, sorted(images.glob("*.jpg")))


def coco_set(root: Path) -> Path:
    """root/val/dog.jpg and root/instances.json, its ground truth in pixels; returns the
    ground truth's path."""
    from PIL import Image

    (root / "val").mkdir(parents=True, exist_ok=True)
    shutil.copy(pydarknet.samples.path("dog.jpg"), root / "val" / "dog.jpg")
    width, height = Image.open(root / "val" / "dog.jpg").size
    annotations = []
    for number, line in enumerate(DOG_LABELS.splitlines(), 1):
        c, x, y, w, h = line.split()
        x, y, w, h = float(x) * width, float(y) * height, float(w) * width, float(h) * height
        annotations.append({"id": number, "image_id": 42, "category_id": CATEGORIES[int(c)][0], "iscrowd": 0,
                            "bbox": [x - w / 2, y - h / 2, w, h], "area": w * h})
    truth = {"images": [{"id": 42, "file_name": "dog.jpg", "width": width, "height": height}],
             "annotations": annotations,
             "categories": [{"id": i, "name": name} for i, name in CATEGORIES.values()]}
    (root / "instances.json").write_text(json.dumps(truth))
    return root / "instances.json"
