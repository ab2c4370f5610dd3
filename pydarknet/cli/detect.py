"""``pydarknet detect``: find objects in images, folders, globs, videos, cameras and
streams.

    pydarknet detect dog.jpg photos/ 'shots/*.png' --json > found.jsonl
    pydarknet detect photos/ --recursive --batch 8 --threads 2 --coco results.json
    pydarknet detect clip.mp4 --out annotated/     # annotated/clip-000000.jpg, ...
    pydarknet detect 0                             # the first camera; rtsp://... a stream

A SOURCE is an image file, a folder (its images and videos; --recursive: with its
subfolders), a glob pattern, a video file, a camera index or a stream URL (videos,
cameras and streams need OpenCV: pip install "pydarknet[video]"). --json writes JSON
Lines, one record per image or frame, also for those with no detections: source,
frame (null for images), width, height and detections (label, class_id, confidence,
x, y, w, h with x/y the centre, x1, y1, x2, y2, in pixels). --coco FILE writes the
detections in COCO's results format (upstream's: category ids mapped to COCO's 91 for
models with COCO's 80 classes, boxes clipped to the image, image_id the number at the
end of the file name, else the input's position). A bad input is one line on stderr
and the run goes on (--fail-fast stops there); images and frames run --batch at a time
while the next ones are decoded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional

from .. import atomic, limits
from .common import (checked, input_failed, input_name, model_options, network, print_record, progress,
                     sources_options, subcommand)

# upstream's coco_ids (examples/detector.c): COCO's category id of each of its 80 classes
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def add_command(sub, formatter) -> None:
    probability, count = checked(limits.probability), checked(limits.positive_int)
    cmd = subcommand(sub, "detect", "find objects in images, folders, videos and streams", __doc__, formatter,
                     epilog="Exit status: 0 done, 1 some input failed, 2 bad arguments or model.")
    sources_options(cmd)
    model_options(cmd, "yolov3-tiny")
    cmd.add_argument("--json", action="store_true", help="JSON Lines: one record per image or frame")
    cmd.add_argument("--coco", type=Path, metavar="FILE", help="also write the detections in COCO results format")
    cmd.add_argument("--thresh", type=probability, default=0.5, help="report boxes above this confidence")
    cmd.add_argument("--hier-thresh", type=probability, default=0.5,
                     help="class-tree threshold (hierarchical models such as yolo9000)")
    cmd.add_argument("--nms", type=probability, default=0.45, help="overlap (IoU) above which NMS drops a box")
    cmd.add_argument("--batch", type=count, default=1, help="images per forward pass")
    cmd.add_argument("--threads", type=count, help="threads per forward pass")
    cmd.add_argument("--out", type=Path, help="folder for annotated images (SOURCE-stem.jpg, -FRAME.jpg)")
    cmd.add_argument("--fail-fast", action="store_true", help="stop at the first input that fails")
    cmd.set_defaults(handler=run)


def _annotation_names(sources: List, out: Optional[Path]):
    """OUT/stem for images, OUT/stem-FRAME for frames; refused before any work when two
    inputs would write the same file."""
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    seen: Dict[str, str] = {}
    for source in sources:
        stem = _stem(source)
        if stem in seen and seen[stem] != str(source):
            raise ValueError(f"{seen[stem]} and {source} would both be annotated as {out / stem}*.jpg; "
                             "give inputs with different names, or one --out per run")
        seen[stem] = str(source)
    return lambda r: out / (_stem(r.source) if r.frame is None else f"{_stem(r.source)}-{r.frame:06d}")


def _stem(source) -> str:
    """What an input's annotated files are named after."""
    return Path(str(source)).stem or "camera"


def _image_id(source: str, position: int) -> int:
    """As upstream's get_coco_image_id: the number after the name's last '_' (COCO's
    file names), else the input's position (from 1)."""
    found = re.search(r"(?:^|_)(\d+)$", Path(source).stem)
    return int(found.group(1)) if found else position


def _coco_records(result, position: int, category) -> List[dict]:
    records = []
    for d in result.detections:
        x1, y1 = max(d.x1, 0.0), max(d.y1, 0.0)
        x2, y2 = min(d.x2, float(result.width)), min(d.y2, float(result.height))
        records.append({"image_id": _image_id(result.source, position) if result.frame is None else position,
                        "category_id": category(d.class_id), "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": round(d.confidence, 6)})
    return records


def _print_table(result, written: Optional[Path]) -> None:
    name = input_name(result.source, result.frame)
    print(f"{name}: {len(result.detections)} objects" + (f" -> {written}" if written else ""))
    if result.detections:
        print(f"  {'label':<16} {'conf':>7} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}")
    for d in result.detections:
        print(f"  {d.label:<16} {d.confidence:>7.2%} {d.x1:>7.1f} {d.y1:>7.1f} {d.x2:>7.1f} {d.y2:>7.1f}")


def run(args) -> int:
    from .. import set_num_threads
    from ..runtime.samples import upstream_path
    from ..runtime.stream import detect_stream, expand

    if args.threads:
        set_num_threads(args.threads)
    sources = list(expand(args.sources, args.recursive))
    annotate = _annotation_names(sources, args.out)
    net = network(args, batch=args.batch)
    coco = net.labels == upstream_path("data/coco.names").read_text().split("\n")[:80]
    category = (lambda c: COCO_IDS[c]) if coco else (lambda c: c)
    records, failed = [], 0
    bar = progress()
    for position, result in enumerate(detect_stream(net, sources, batch=args.batch, thresh=args.thresh,
                                                    hier_thresh=args.hier_thresh, nms=args.nms,
                                                    errors="yield", annotate=annotate), 1):
        bar.update()
        if result.error is not None:
            failed += 1
            input_failed(result.error, bar)
            if args.fail_fast:
                break
            continue
        if args.coco:
            records += _coco_records(result, position, category)
        if args.json:
            print_record(result.to_json())
        else:
            target = annotate(result) if annotate else None
            _print_table(result, target.with_name(target.name + ".jpg") if target else None)
    bar.close()
    if args.coco:
        with atomic.replacing(args.coco) as (temp,):
            temp.write_text(json.dumps(records) + "\n", encoding="utf-8")
    return 1 if failed else 0
