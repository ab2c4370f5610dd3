"""``pydarknet map``: a detector's mean average precision on labelled images, in
Darknet's convention or COCO's.

    pydarknet map --data obj.data --cfg my.cfg --weights my.weights      # as darknet detector map
    pydarknet map --data obj.data --model yolov4-tiny --points 101 --json
    pydarknet map --coco-gt instances_val2017.json --images val2017/ --model yolov3-tiny

Darknet's convention (--data) is what AlexeyAB's ``darknet detector map`` computes: the
images of the .data file's valid= list, each with its label file (class x y w h per line,
relative to the image) found by Darknet's rules; candidates are every box and class above
0.005 after the model's NMS (0.45); AP per class at --iou-thresh over --points (0: the area
under the PR curve, 11: VOC2007, 101: COCO-style), the mean over all the model's classes;
precision, recall, F1, TP, FP, FN and average IoU at --thresh. COCO's convention
(--coco-gt with --images) scores the records ``detect --thresh 0.005 --nms 0.45 --coco``
writes with pycocotools (pip install "pydarknet[eval]"): its 12 bbox statistics, the
model's classes matched to the ground truth's categories by name. --onnx FILE scores an
export of the model (``to-onnx --boxes``) run by onnxruntime, on the same images prepared
the same way, with upstream's box correction and NMS after it. Problems with the data
(missing label files, bad lines, unknown classes, undecodable images) are one line each
on stderr, and the evaluation goes on. --json prints one object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import limits
from ..errors import optional
from .common import checked, model_options, network, progress, subcommand


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "map", "mean average precision on labelled images (Darknet's or COCO's convention)",
                     __doc__, formatter, epilog="Exit status: 0 done, 2 bad arguments, model or data.")
    data = cmd.add_argument_group("data (one of)")
    data.add_argument("--data", type=Path, help="a Darknet .data file (classes, valid, names)")
    data.add_argument("--coco-gt", type=Path, metavar="JSON", help="COCO ground truth (instances.json)")
    data.add_argument("--images", type=Path, metavar="DIR", help="the folder of --coco-gt's images")
    model_options(cmd, "yolov3-tiny")
    cmd.add_argument("--points", type=int, choices=(0, 11, 101), default=0,
                     help="AP over the area under the PR curve (0), or at 11 or 101 recall points")
    cmd.add_argument("--iou-thresh", type=checked(limits.probability), default=0.5,
                     help="the IoU above which a detection matches a label")
    cmd.add_argument("--thresh", type=checked(limits.probability), default=0.25,
                     help="the confidence of the precision, recall, F1 and average IoU figures")
    cmd.add_argument("--batch", type=checked(limits.positive_int), default=1, help="images per forward pass")
    cmd.add_argument("--onnx", type=Path, metavar="MODEL.onnx",
                     help="score this export of the model (to-onnx --boxes) on onnxruntime instead (with --data)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.add_argument("--plot", type=Path, metavar="PNG", help="draw the PR curve of each class (needs matplotlib)")
    cmd.set_defaults(handler=run)


def _plot(evaluation, path: Path) -> None:
    from .. import atomic

    pyplot = optional("matplotlib.pyplot", "--plot", "matplotlib")
    figure, axes = pyplot.subplots(figsize=(7, 6))
    for c in evaluation.classes:
        if c.truths:
            axes.plot(c.recall, c.precision, label=f"{c.name} ({c.ap:.2f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title=f"mAP@{evaluation.iou_thresh:g} = {evaluation.map:.4f}")
    if len(axes.lines) <= 20:
        axes.legend(fontsize="small")
    with atomic.replacing(path) as (temp,):
        figure.savefig(temp, format="png", dpi=100)
    pyplot.close(figure)


def run(args) -> int:
    from ..api.evaluation import coco_evaluation, darknet_evaluation

    if (args.data is None) == (args.coco_gt is None):
        raise ValueError("give --data (a .data file) or --coco-gt (with --images)")
    if args.coco_gt and not args.images:
        raise ValueError("--coco-gt needs --images, the folder of its images")
    if args.onnx and not args.data:
        raise ValueError("--onnx scores an export in Darknet's convention: it needs --data")
    if args.plot and not args.data:
        raise ValueError("--plot draws Darknet's PR curves: it needs --data")
    net = network(args, batch=args.batch)
    bar = progress()
    try:
        if args.data:
            evaluation = darknet_evaluation(net, args.data, points=args.points, iou_thresh=args.iou_thresh,
                                            thresh=args.thresh, onnx=args.onnx, progress=bar.update)
        else:
            evaluation = coco_evaluation(net, args.coco_gt, args.images, progress=bar.update)
    finally:
        bar.close()
    for problem in evaluation.problems:
        print(f"pydarknet: warning: {problem}", file=sys.stderr)
    if args.plot:
        _plot(evaluation, args.plot)
    print(json.dumps(evaluation.to_json()) if args.json else evaluation)
    return 0
