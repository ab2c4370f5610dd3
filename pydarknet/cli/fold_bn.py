"""``pydarknet fold-bn`` (also ``python -m pydarknet.fold_bn``): fold batch normalization
into the layer before it.

    pydarknet fold-bn yolov3-tiny -o folded/yolov3-tiny          # a zoo model
    pydarknet fold-bn my.cfg my.weights -o folded/my
    pydarknet fold-bn deploy.prototxt model.caffemodel -o folded/model --check

Darknet models (.cfg + .weights) are folded for the runtime that will run them
(--target cpu, the default, or gpu); Caffe models (.prototxt + .caffemodel) with each
BatchNorm's own eps. --check runs the original and the folded model on the same
random inputs (Darknet: this runtime; Caffe: OpenCV DNN) and fails above 1e-4 of the
largest output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DarknetError
from ..transforms import fold_caffe, fold_darknet, folding
from .common import subcommand

DARKNET, CAFFE = "darknet", "caffe"


def model_kind(model: Path, weights: Path) -> str:
    """Darknet or Caffe, from the file names or else the model's first character."""
    if model.suffix == ".cfg" or weights.suffix == ".weights":
        return DARKNET
    if model.suffix in (".prototxt", ".pbtxt") or weights.suffix == ".caffemodel":
        return CAFFE
    try:
        with open(model, encoding="utf-8", errors="replace") as f:
            for line in f:
                stripped = line.strip()
                if stripped and stripped[0] not in "#;":
                    return DARKNET if stripped.startswith("[") else CAFFE
    except OSError:
        pass
    return DARKNET


def fold(args: argparse.Namespace, model: Path, weights: Path) -> folding.FoldReport:
    kind = model_kind(model, weights)
    if kind == DARKNET:
        out_model, out_weights = folding.output_paths(args.output, (".cfg", ".weights"))
        for path in (out_model, out_weights):
            path.parent.mkdir(parents=True, exist_ok=True)
        report = fold_darknet.fold(model, weights, out_model, out_weights,
                                   target=args.target or "cpu", keep_unfoldable=args.keep_unfoldable)
        if args.check:
            if args.target == "gpu":
                report.notes.append("--check runs the CPU runtime, whose denominator differs from the GPU's "
                                    "the model was folded for: expect small differences")
            report.check = fold_darknet.check(model, weights, out_model, out_weights)
        return report
    if args.target:
        raise DarknetError("--target is for Darknet models: a folded Caffe model uses Caffe's own formula")
    out_model, out_weights = folding.output_paths(args.output, (".prototxt", ".caffemodel"))
    for path in (out_model, out_weights):
        path.parent.mkdir(parents=True, exist_ok=True)
    report = fold_caffe.fold(model, weights, out_model, out_weights)
    if args.check:
        report.check = fold_caffe.check(model, weights, out_model, out_weights)
    return report


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "fold-bn", "fold batch normalization into the layer before it (Darknet, Caffe)",
                     __doc__, formatter, epilog="Exit status: 0 done, 1 --check above tolerance, 2 bad input.")
    cmd.add_argument("model", help="a zoo name (pydarknet zoo list), a .cfg (Darknet) or a .prototxt (Caffe)")
    cmd.add_argument("weights", nargs="?", help=".weights (Darknet) or .caffemodel (Caffe); a zoo model's own "
                                                "by default")
    cmd.add_argument("-o", "--output", nargs="+", required=True, metavar="OUT",
                     help="OUT (writes OUT.cfg + OUT.weights, or OUT.prototxt + OUT.caffemodel) or the two paths")
    cmd.add_argument("--target", choices=("cpu", "gpu"), help="Darknet runtime that will run the result (default cpu)")
    cmd.add_argument("--check", action="store_true", help="compare original and folded outputs on random inputs")
    cmd.add_argument("--keep-unfoldable", action="store_true",
                     help="Darknet: leave BN that cannot be folded (standalone [batchnorm], recurrent layers) "
                          "instead of failing")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api.zoo import model_files

    if len(args.output) > 2:
        raise ValueError("-o takes OUT or two paths")
    found = model_files(args.model, args.weights)
    report = fold(args, found.cfg, found.weights)
    if not args.quiet or (report.check and not report.check.ok):
        print(report)
    return 0 if report.check is None or report.check.ok else 1
