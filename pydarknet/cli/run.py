"""``pydarknet detect``, ``classify`` and ``info``: running models."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

from .. import limits
from .common import checked, preprocessing_changes, preprocessing_options


def _network(args, batch: int = 1):
    from ..runtime import zoo
    from ..runtime.images import PreprocessingWarning, model_preprocessing
    from ..runtime.network import Network

    if args.cfg:
        if not args.weights:
            raise ValueError("--cfg needs --weights")
        preprocessing = None if args.darknet_preprocessing else "auto"
        changes = preprocessing_changes(args)
        if changes:
            preprocessing = model_preprocessing(args.cfg, preprocessing).override(**changes)
        with warnings.catch_warnings(record=True) as caught:  # shown as the CLI shows the cfg's
            warnings.simplefilter("always", PreprocessingWarning)
            net = Network(args.cfg, args.weights, batch=batch, names=args.names, verbose=args.verbose,
                          device=args.device, preprocessing=preprocessing)
        for warning in caught:
            print(f"pydarknet: warning: {warning.message}", file=sys.stderr)
        return _warned(net)
    if args.darknet_preprocessing or preprocessing_changes(args):
        raise ValueError("preprocessing options are for converted models (--cfg); zoo models are Darknet's own")
    return _warned(zoo.load(args.model, weights=args.weights, batch=batch, verbose=args.verbose, device=args.device))


def _warned(net):
    """The network, its cfg warnings (keys nothing reads: a typo, or a feature of another
    Darknet fork) printed on stderr first."""
    for warning in net.warnings:
        print(f"pydarknet: warning: {warning}", file=sys.stderr)
    return net


def _progress(done: int, total: int) -> None:
    if total > 1 and sys.stderr.isatty():
        print(f"\r{done}/{total} images", end="\n" if done == total else "", file=sys.stderr, flush=True)


def _annotated_paths(images: Sequence[str], out: Optional[Path]) -> List[Optional[Path]]:
    """OUT/IMAGE-stem (detect_batch adds .jpg) for each image; refused before any work
    when two images would write the same file."""
    if out is None:
        return [None] * len(images)
    out.mkdir(parents=True, exist_ok=True)
    image_with_stem = {}
    for image in images:
        stem = Path(image).stem
        if stem in image_with_stem:
            raise ValueError(f"{image_with_stem[stem]} and {image} would both be annotated as {out / stem}.jpg; "
                             f"give images with different names, or one --out per run")
        image_with_stem[stem] = image
    return [out / Path(image).stem for image in images]


def cmd_detect(args) -> int:
    from ..runtime.inference import detect_batch

    net = _network(args, batch=args.batch)
    annotated = _annotated_paths(args.images, Path(args.out) if args.out else None)
    for start in range(0, len(args.images), args.batch):
        chunk = args.images[start:start + args.batch]
        targets = annotated[start:start + args.batch]
        began = time.perf_counter()
        results = detect_batch(net, chunk, thresh=args.thresh, hier_thresh=args.hier_thresh,
                               nms=args.nms, annotate=targets if args.out else None)
        elapsed_ms = (time.perf_counter() - began) * 1000 / len(chunk)
        for image, found, target in zip(chunk, results, targets):
            written = target.with_name(target.name + ".jpg") if target else None
            _print_detections(args, image, found, elapsed_ms, written)
        _progress(min(start + args.batch, len(args.images)), len(args.images))
    return 0


def _print_detections(args, image, found, elapsed_ms, written) -> None:
    if args.json:
        for d in found:
            print(json.dumps({"image": image, "label": d.label, "class_id": d.class_id,
                              "confidence": round(d.confidence, 6), "x": d.x, "y": d.y, "w": d.w, "h": d.h,
                              "x1": d.x1, "y1": d.y1, "x2": d.x2, "y2": d.y2}))
        return
    print(f"{image}: {len(found)} objects ({elapsed_ms:.0f} ms)" + (f" -> {written}" if written else ""))
    if found:
        print(f"  {'label':<16} {'conf':>7} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}")
    for d in found:
        print(f"  {d.label:<16} {d.confidence:>7.2%} {d.x1:>7.1f} {d.y1:>7.1f} {d.x2:>7.1f} {d.y2:>7.1f}")


def cmd_classify(args) -> int:
    from ..runtime.inference import classify

    if not args.cfg:
        raise ValueError("classify needs --cfg, --weights and --names (there is no zoo classifier yet)")
    net = _network(args)
    for done, image in enumerate(args.images, 1):
        results = classify(net, image, top=args.top)
        if args.json:
            print(json.dumps({"image": image, "top": [{"label": r.label, "probability": r.probability}
                                                      for r in results]}))
        else:
            print(f"{image}:")
            for result in results:
                print(f"  {result.probability:>7.2%}  {result.label}")
        _progress(done, len(args.images))
    return 0


def cmd_info(args) -> int:
    from ..runtime import zoo
    from ..runtime.network import Network

    if args.model in zoo.MODELS and not Path(args.model).exists():
        cfg = zoo.get(args.model).cfg_path()
    else:
        cfg = Path(args.model)
    net = _warned(Network(cfg, args.weights, fold_bn=False, device=args.device))  # the layers as the files have them
    print(f"{cfg}: input {'x'.join(map(str, net.input_shape))}, batch {net.batch}, {net.classes} classes, "
          f"on {_device_line(net.device)}")
    if not net.preprocessing.is_darknets:
        print(f"preprocessing: {net.preprocessing}")
    print(net.summary())
    size = 20 + 4 * net.n_params
    if args.weights:
        print(f"weights: {args.weights} loaded; its {size} bytes match the cfg exactly")
    else:
        print(f"weights: a file for this cfg has {size} bytes")
    return 0


def _device_line(device: str) -> str:
    """The device with what this machine says of it."""
    from ..runtime.devices import cuda_devices, device_index

    if device == "cpu":
        return "cpu"
    found = {d.index: d for d in cuda_devices()}.get(device_index(device))
    return f"{device} ({found.name}, compute capability {found.capability})" if found else device


def add_commands(sub, formatter) -> None:
    """detect, classify and info as subcommands of the pydarknet parser."""
    probability, count = checked(limits.probability), checked(limits.positive_int)

    def model_options(cmd, zoo_default):
        group = cmd.add_argument_group("model (a zoo name, or cfg + weights + names)")
        group.add_argument("--model", default=zoo_default, help="zoo model name")
        group.add_argument("--cfg", help="Darknet .cfg (with --weights and --names)")
        group.add_argument("--weights", help="weights file (with --model: a local copy of the zoo weights)")
        group.add_argument("--names", help=".names or .data file with the class names")
        cmd.add_argument("--json", action="store_true", help="one JSON object per line")
        cmd.add_argument("--verbose", action="store_true", help="show Darknet's own output")
        device_option(cmd)
        preprocessing_options(cmd, "the .json next to --cfg")
        cmd.add_argument("--darknet-preprocessing", action="store_true",
                         help="ignore the .json next to --cfg: Darknet's RGB 0-1 letterbox")

    def device_option(cmd):
        cmd.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (GPU builds)")

    detect = sub.add_parser("detect", help="find objects in images", formatter_class=formatter)
    detect.add_argument("images", nargs="+")
    model_options(detect, "yolov3-tiny")
    detect.add_argument("--thresh", type=probability, default=0.5, help="report boxes above this confidence")
    detect.add_argument("--hier-thresh", type=probability, default=0.5,
                        help="class-tree threshold (hierarchical models such as yolo9000)")
    detect.add_argument("--nms", type=probability, default=0.45, help="overlap (IoU) above which NMS drops a box")
    detect.add_argument("--batch", type=count, default=1, help="images per forward pass")
    detect.add_argument("--out", help="folder for annotated images (IMAGE-stem.jpg)")
    detect.set_defaults(handler=cmd_detect)

    classify = sub.add_parser("classify", help="top classes of images", formatter_class=formatter)
    classify.add_argument("images", nargs="+")
    model_options(classify, None)
    classify.add_argument("--top", type=count, default=5, help="how many classes to print")
    classify.set_defaults(handler=cmd_classify)

    info = sub.add_parser("info", help="layer table, BFLOPs and weights check of a model", formatter_class=formatter)
    info.add_argument("model", help="zoo name or cfg path")
    info.add_argument("--weights", help="check that this weights file fits the cfg")
    device_option(info)
    info.set_defaults(handler=cmd_info)
