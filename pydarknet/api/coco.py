"""COCO's results format and COCO's evaluation: what ``detect --coco`` writes, and the 12
bbox statistics pycocotools computes from those records against ground truth."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import DatasetError, FileError, optional, printable

if TYPE_CHECKING:  # a Result is all records() takes; importing it would load the extension
    from ..runtime.results import Result

# upstream's coco_ids (examples/detector.c): COCO's category id of each of its 80 classes
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
# COCOeval.stats, in its order
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def records(result: "Result", image_id: int, category: Callable[[int], Optional[int]]) -> List[dict]:
    """A Result's detections as COCO results: one per box and class whose category is not
    None, the box clipped to the image, [x, y, width, height] in pixels, the score to 6
    decimals."""
    found = []
    for d in result.detections:
        if category(d.class_id) is None:
            continue
        x1, y1 = max(d.x1, 0.0), max(d.y1, 0.0)
        x2, y2 = min(d.x2, float(result.width)), min(d.y2, float(result.height))
        found.append({"image_id": image_id, "category_id": category(d.class_id),
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "score": round(d.confidence, 6)})
    return found


class GroundTruth:
    """COCO ground truth (instances.json): its images and its categories by name."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        pycocotools = optional("pycocotools.coco", "COCO evaluation", '"pydarknet[eval]"')
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it loads
                self.coco = pycocotools.COCO(os.fspath(self.path))
        except OSError as exc:
            raise FileError(f"cannot read: {exc.strerror or exc}", file=str(self.path)) from exc
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise DatasetError(f"not COCO ground truth ({type(exc).__name__}: {exc})", file=str(self.path)) from None
        dataset = self.coco.dataset
        if not all(isinstance(dataset.get(key), list) for key in ("images", "annotations", "categories")):
            raise DatasetError("not COCO ground truth: it needs lists of images, annotations and categories",
                               file=str(self.path))
        for key, fields in (("images", ("id", "file_name")), ("categories", ("id", "name"))):
            bad = next((i for i, entry in enumerate(dataset[key])
                        if not isinstance(entry, dict) or any(field not in entry for field in fields)), None)
            if bad is not None:
                raise DatasetError(f"{key}[{bad}] lacks {' or '.join(fields)}", file=str(self.path))
        self.images = sorted(dataset["images"], key=lambda image: image["id"])

    def categories(self, names: Sequence[str]) -> Tuple[Dict[int, int], Optional[str]]:
        """The model's classes that are ground-truth categories (class -> category id, by
        name), and a note naming those that are not (None if there are none)."""
        by_name = {c["name"]: c["id"] for c in self.coco.dataset["categories"]}
        mapped = {i: by_name[name] for i, name in enumerate(names) if name in by_name}
        if not mapped:
            raise DatasetError(f"no class of the model ({', '.join(names[:5])}, ...) is a category of the ground "
                               "truth: class names are matched to categories by name", file=str(self.path))
        unmatched = [name for name in names if name not in by_name]
        note = (f"{printable(str(self.path))}: the model's classes {', '.join(unmatched[:10])}"
                f"{', ...' if len(unmatched) > 10 else ''} are not categories of the ground truth; their "
                "detections are left out") if unmatched else None
        return mapped, note

    def ids_of(self, sources: Sequence) -> Dict[str, int]:
        """The image id of each source, by its file name (COCO's file_name is the base
        name); DatasetError names the sources the ground truth does not have."""
        by_name = {Path(image["file_name"]).name: image["id"] for image in self.images}
        missing = [str(s) for s in sources if Path(str(s)).name not in by_name]
        if missing:
            raise DatasetError(f"{len(missing)} input(s) are not images of the ground truth: "
                               f"{', '.join(map(printable, missing[:5]))}{', ...' if len(missing) > 5 else ''}",
                               file=str(self.path))
        return {str(s): by_name[Path(str(s)).name] for s in sources}

    def stats(self, found: List[dict], image_ids: Optional[List[int]] = None) -> Dict[str, Optional[float]]:
        """pycocotools' 12 bbox statistics of ``found`` (COCO results), over ``image_ids``
        (default: every image of the ground truth); None where there is nothing to
        measure (no object of that size)."""
        cocoeval = optional("pycocotools.cocoeval", "COCO evaluation", '"pydarknet[eval]"')
        with contextlib.redirect_stdout(io.StringIO()):
            if found:
                results = self.coco.loadRes(json.loads(json.dumps(found)))
            else:  # loadRes() cannot take none: the same empty results, made directly
                results = type(self.coco)()
                results.dataset = {"images": self.coco.dataset["images"], "annotations": [],
                                   "categories": self.coco.dataset["categories"]}
                results.createIndex()
            check = cocoeval.COCOeval(self.coco, results, "bbox")
            if image_ids is not None:
                check.params.imgIds = image_ids
            check.evaluate()
            check.accumulate()
            check.summarize()
        # pycocotools writes -1 where the ground truth has no object of that size
        return {name: None if value < 0 else float(value) for name, value in zip(STATS, check.stats)}
