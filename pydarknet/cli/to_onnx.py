"""``pydarknet to-onnx`` (also ``python -m pydarknet.darknet2onnx``): export a Darknet
model to ONNX.

    pydarknet to-onnx yolov3-tiny -o yolov3-tiny.onnx --verify     # a zoo model
    pydarknet to-onnx my.cfg my.weights -o my.onnx

The graph is built with the onnx package's helpers, batch normalization folded, the
batch dimension dynamic unless --batch fixes it; ONNX's checker runs on every export.
One output per [yolo]/[region] layer (else the last layer), named after it, holding the
tensor the runtime holds there; --boxes adds the [yolo] heads decoded (boxes and
per-class scores, before NMS). --verify runs the file on onnxruntime against pydarknet
on random inputs and fails above 1e-4 of an output's largest value, or on a NaN.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import limits
from ..transforms import darknet_to_onnx
from .common import checked, subcommand


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "to-onnx", "export a Darknet model to ONNX", __doc__, formatter,
                     epilog="Exit status: 0 done, 1 --verify above tolerance, 2 bad input.")
    cmd.add_argument("model", help="a zoo name (pydarknet zoo list) or a Darknet .cfg")
    cmd.add_argument("weights", nargs="?", help="the .weights (a zoo model's own by default)")
    cmd.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.onnx")
    cmd.add_argument("--opset", type=checked(limits.positive_int), default=darknet_to_onnx.DEFAULT_OPSET,
                     help="ONNX opset")
    cmd.add_argument("--batch", type=checked(limits.positive_int), help="a fixed batch size (default: dynamic)")
    cmd.add_argument("--boxes", action="store_true",
                     help="also the [yolo] heads decoded, before NMS: boxes (x1, y1, x2, y2 in input pixels), scores")
    cmd.add_argument("--verify", action="store_true", help="compare with pydarknet on onnxruntime")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api.zoo import model_files

    found = model_files(args.model, args.weights)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    outputs = darknet_to_onnx.export(found.cfg, found.weights, args.output, opset=args.opset, batch=args.batch,
                                     boxes=args.boxes)
    if not args.quiet:
        print(f"wrote {args.output}: outputs {', '.join(outputs)}")
    if not args.verify:
        return 0
    check = darknet_to_onnx.verify(found.cfg, found.weights, args.output,
                                   batches=(args.batch,) if args.batch else (1, 2))
    if not args.quiet or not check.ok:
        print(check)
    return 0 if check.ok else 1
