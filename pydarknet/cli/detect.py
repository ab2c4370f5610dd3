"""``pydarknet detect``: find objects in images, folders, globs, videos, cameras and
streams.

    pydarknet detect dog.jpg photos/ 'shots/*.png' --json > found.jsonl
    pydarknet detect photos/ --recursive --batch 8 --threads 2 --coco results.json
    pydarknet detect clip.mp4 --out annotated/ --labels conf  # annotated/clip-000000.jpg, ...
    pydarknet detect 0                             # the first camera; rtsp://... a stream
    pydarknet detect photos/ --classes dog,cat --save-txt labels/   # YOLO label files

A SOURCE is an image file, a folder (its images and videos; --recursive: with its
subfolders), a glob pattern, a video file, a camera index or a stream URL (videos,
cameras and streams need OpenCV: pip install "pydarknet[video]"). --json writes JSON
Lines, one record per image or frame, also for those with no detections: source,
frame (null for images), width, height, ms (the network's time for it) and detections
(label, class_id, confidence, x, y, w, h with x/y the centre, x1, y1, x2, y2, in
pixels); a failed input is {"source": ..., "error": ...}. --coco FILE writes the
detections in COCO's results format (upstream's: category ids mapped to COCO's 91 for
models with COCO's 80 classes, boxes clipped to the image; image_id the number at the
end of each file name where every input has a distinct one, as COCO's own files do,
else the position of the image or frame, from 1; with --coco-gt GT.json, ids and
categories are the ground truth's, by file and class name, and a class that is not one
of its categories is left out, said on stderr) and, beside it, FILE.images.json
mapping each image_id to its file and frame. A bad input is one line on stderr and the
run goes on (--fail-fast stops there); images and frames run --batch at a time while
the next ones are decoded. Nothing is written over an input. Ctrl-C stops the run
(exit 130) and a reader that closes the output (| head) stops the printing; either
way --coco holds what was found until then, and --out the images drawn.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

from .. import atomic, limits
from ..limits import LABEL_STYLES
from ..api.coco import COCO_IDS, GroundTruth, records as coco_records
from ..api.sources import is_video_name
from ..errors import printable
from .common import (checked, close_stdout, input_failed, input_name, model_options, network, note,
                     print_record, progress, sources_options, subcommand)

def add_command(sub, formatter) -> None:
    probability, count = checked(limits.probability), checked(limits.positive_int)
    cmd = subcommand(sub, "detect", "find objects in images, folders, videos and streams", __doc__, formatter,
                     epilog="Exit status: 0 done, 1 some input failed, 2 bad arguments or model.")
    sources_options(cmd)
    model_options(cmd, "yolov3-tiny")
    cmd.add_argument("--json", action="store_true", help="JSON Lines: one record per image or frame")
    cmd.add_argument("--coco", type=Path, metavar="FILE", help="also write the detections in COCO results format")
    cmd.add_argument("--coco-gt", type=Path, metavar="JSON",
                     help="with --coco: image and category ids from this ground truth (by file and class name)")
    cmd.add_argument("--thresh", type=probability, default=0.5, help="report boxes above this confidence")
    cmd.add_argument("--hier-thresh", type=probability, default=0.5,
                     help="class-tree threshold (hierarchical models such as yolo9000)")
    cmd.add_argument("--nms", type=probability, default=0.45, help="overlap (IoU) above which NMS drops a box")
    cmd.add_argument("--batch", type=count, default=1, help="images per forward pass")
    cmd.add_argument("--threads", type=count, help="threads per forward pass")
    cmd.add_argument("--out", type=Path, help="folder for annotated images (SOURCE-stem.jpg, -FRAME.jpg)")
    cmd.add_argument("--labels", choices=LABEL_STYLES, default="name",
                     help="what --out writes beside each box: the class name, name and confidence, or nothing")
    cmd.add_argument("--save-txt", type=Path, metavar="DIR",
                     help="YOLO label files DIR/STEM.txt (frames STEM-FRAME.txt): class cx cy w h confidence, "
                          "relative to the image")
    cmd.add_argument("--classes", type=_names, metavar="NAME[,NAME]", help="keep only these classes")
    cmd.add_argument("--fail-fast", action="store_true", help="stop at the first input that fails")
    cmd.set_defaults(handler=run)


def _names(text: str) -> List[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give class names separated by commas")
    return names


def _output_names(sources: List, out: Optional[Path], suffix: str):
    """OUT/stem + suffix for images, OUT/stem-FRAME + suffix for video frames; refused
    before any work when two inputs would write the same file or an
    output would replace an input (``--out`` onto the photos' own folder)."""
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    images: Dict[str, str] = {}
    videos: Dict[str, str] = {}
    inputs = {atomic.same_file(s): s for s in map(str, sources) if os.path.isfile(s)}
    for source in map(str, sources):
        stem = _stem(source)
        kind = videos if is_video_name(source) else images
        other = images.get(stem) or videos.get(stem)
        if other is not None and other != source:
            raise ValueError(f"{printable(other)} and {printable(source)} would both be written as "
                             f"{printable(str(out / stem))}*{suffix}; give inputs with different names, or one "
                             "output folder per run")
        kind[stem] = source
        if kind is images and atomic.same_file(out / f"{stem}{suffix}") in inputs:
            raise ValueError(f"{printable(str(out))}: the output for {printable(source)} would replace the input "
                             f"{printable(inputs[atomic.same_file(out / f'{stem}{suffix}')])}; give another folder")
    for stem, source in images.items():  # an image named like a frame of a video
        match = re.fullmatch(r"(.*)-\d{6,}", stem)
        if match and match.group(1) in videos:
            raise ValueError(f"{printable(source)} and the frames of {printable(videos[match.group(1)])} would both "
                             f"be written as {printable(str(out / stem))}{suffix}; give inputs with different names")
    return lambda r: out / ((_stem(r.source) if r.frame is None else f"{_stem(r.source)}-{r.frame:06d}") + suffix)


def _stem(source) -> str:
    """What an input's annotated files are named after."""
    return Path(str(source)).stem or "camera"


def _numbered_ids(sources: List) -> Optional[Dict[str, int]]:
    """COCO image ids from the number after the last '_' of each file name (COCO's own
    names, as upstream's get_coco_image_id), where every input is an image named so and
    no two share a number; else None: ids are then the images' and frames' positions."""
    ids = {}
    for source in map(str, sources):
        found = re.search(r"(?:^|_)(\d+)$", Path(source).stem)
        if found is None or is_video_name(source):
            return None
        ids[source] = int(found.group(1))
    return ids if len(set(ids.values())) == len(ids) else None


class _Coco:
    """--coco FILE: the results of every image and frame, and FILE's images beside it
    (FILE with suffix .images.json: id, file_name, frame, width, height), written
    together, also when the run stops early."""

    def __init__(self, path: Path, sources: List, ground_truth: Optional[Path] = None):
        """Checked before any work: the folder is there, neither file is an input, and
        every input is an image of ``ground_truth`` where one is given."""
        if not path.parent.is_dir():
            raise ValueError(f"--coco {printable(str(path))}: the folder {printable(str(path.parent))} does not exist")
        self.inputs = [s for s in map(str, sources) if os.path.isfile(s)]
        self.files = (path, path.with_suffix(".images.json"))
        atomic.check_outputs(self.files, self.inputs)
        self.truth = GroundTruth(ground_truth) if ground_truth else None
        self.numbered = self.truth.ids_of(sources) if self.truth else _numbered_ids(sources)
        self.category = lambda c: c
        self.records: List[dict] = []
        self.images: List[dict] = []

    def for_model(self, net) -> "_Coco":
        """Category ids: the ground truth's, by name; else COCO's 91 for a model with
        COCO's 80 classes."""
        from ..runtime.samples import upstream_path

        if self.truth:
            mapped, left_out = self.truth.categories(net.labels)
            self.category = mapped.get
            if left_out:
                note(left_out)  # their detections are not written, as map leaves them out
        elif net.labels == upstream_path("data/coco.names").read_text().split("\n")[:80]:
            self.category = lambda c: COCO_IDS[c]
        return self

    def add(self, result) -> None:
        image_id = self.numbered[result.source] if self.numbered else len(self.images) + 1
        self.images.append({"id": image_id, "file_name": printable(result.source), "frame": result.frame,
                            "width": result.width, "height": result.height})
        self.records += coco_records(result, image_id, self.category)

    def write(self) -> None:
        with atomic.replacing(*self.files, inputs=self.inputs) as (results, images):
            results.write_text(json.dumps(self.records) + "\n", encoding="utf-8")
            images.write_text(json.dumps(self.images) + "\n", encoding="utf-8")


def _write_labels(path: Path, result) -> None:
    """One YOLO row per detection: class, box centre and size relative to the image
    (the box clipped to it first), confidence."""
    rows = []
    for d in result.detections:
        x1, y1 = max(d.x1, 0.0), max(d.y1, 0.0)
        x2, y2 = min(d.x2, float(result.width)), min(d.y2, float(result.height))
        rows.append(f"{d.class_id} {(x1 + x2) / 2 / result.width:.6f} {(y1 + y2) / 2 / result.height:.6f} "
                    f"{(x2 - x1) / result.width:.6f} {(y2 - y1) / result.height:.6f} {d.confidence:.6f}\n")
    with atomic.replacing(path) as (temp,):
        temp.write_text("".join(rows), encoding="utf-8")


def _kept(classes: Optional[List[str]], labels: List[str]):
    """A filter of results to ``classes`` (all where None), checked against the model's."""
    if classes is None:
        return lambda result: result
    unknown = [name for name in classes if name not in labels]
    if unknown:
        raise ValueError(f"--classes: the model has no class {', '.join(map(repr, unknown))} (it has "
                         f"{', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''})")
    keep = set(classes)
    return lambda result: dataclasses.replace(result, detections=[d for d in result.detections if d.label in keep])


def _print_table(result, written: Optional[Path]) -> None:
    name = printable(input_name(result.source, result.frame))
    print(f"{name}: {len(result.detections)} objects ({result.ms:.0f} ms)"
          + (f" -> {printable(str(written))}" if written else ""))
    if result.detections:
        print(f"  {'label':<16} {'conf':>7} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}")
    for d in result.detections:
        print(f"  {d.label:<16} {d.confidence:>7.2%} {d.x1:>7.1f} {d.y1:>7.1f} {d.x2:>7.1f} {d.y2:>7.1f}")


def run(args) -> int:
    from .. import set_num_threads
    from ..api.sources import expand
    from ..api.stream import detect_stream

    if args.threads:
        set_num_threads(args.threads)
    sources = list(expand(args.sources, args.recursive))
    annotate = _output_names(sources, args.out, ".jpg")
    labels = _output_names(sources, args.save_txt, ".txt")
    if args.coco_gt and not args.coco:
        raise ValueError("--coco-gt sets the ids of --coco's records: give --coco FILE too")
    coco = _Coco(args.coco, sources, args.coco_gt) if args.coco else None
    net = network(args, batch=args.batch)
    coco = coco.for_model(net) if coco else None
    kept = _kept(args.classes, net.labels)
    failed, done = 0, 0
    stdout_open = True
    bar = progress(sources)
    results = detect_stream(net, sources, batch=args.batch, thresh=args.thresh, hier_thresh=args.hier_thresh,
                            nms=args.nms, errors="yield")
    try:
        for result in results:
            bar.update()
            done += 1
            written = None
            if result.error is not None:
                failed += 1
                input_failed(printable(result.error), bar)
            else:
                result = kept(result)
                if coco:
                    coco.add(result)
                if labels:
                    _write_labels(labels(result), result)
                if annotate:
                    written = result.save(annotate(result), labels=args.labels)
            if stdout_open and (args.json or result.error is None):
                try:
                    print_record(result.to_json()) if args.json else _print_table(result, written)
                except BrokenPipeError:  # `| head`: the reader is gone; the files asked for still get written
                    stdout_open = False
                    close_stdout()
                    if not (coco or annotate or labels):
                        break
            if result.error is not None and args.fail_fast:
                break
    except KeyboardInterrupt:
        bar.close()
        if coco:
            coco.write()
        raise KeyboardInterrupt(f"after {done} images and frames"
                                + (f"; {printable(str(args.coco))} holds their detections" if coco else "")) from None
    finally:
        results.close()
    bar.close()
    if coco:
        coco.write()
    return 1 if failed else 0
