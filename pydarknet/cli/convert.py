"""``pydarknet convert`` (also ``python -m pydarknet.caffe2darknet``): convert a Caffe
model into Darknet files.

    pydarknet convert deploy.prototxt model.caffemodel -o out/model --verify

Writes OUT.cfg, OUT.weights and OUT.json (input shape, the preprocessing the
prototxt states, and what each Caffe layer became). BatchNorm is folded into the
layer before it by default (--keep-bn: batch_normalize=1 layers instead). --verify
runs the Caffe model on OpenCV DNN and the converted one on pydarknet with the same
random inputs and fails above 1e-4 of the largest output value.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..transforms import caffe_to_darknet
from .common import subcommand


def _shape(text: str):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected C,H,W, e.g. 3,224,224")
    return shape


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "convert", "convert a Caffe model into Darknet files", __doc__, formatter,
                     epilog="Exit status: 0 done, 1 --verify above tolerance, 2 bad input.")
    cmd.add_argument("prototxt", type=Path)
    cmd.add_argument("caffemodel", type=Path)
    cmd.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                     help="writes OUT.cfg, OUT.weights, OUT.json")
    cmd.add_argument("--input-shape", type=_shape, metavar="C,H,W", help="input size (default: the prototxt's)")
    bn = cmd.add_mutually_exclusive_group()
    bn.add_argument("--fold-bn", dest="fold_bn", action="store_true", default=True,
                    help="fold BatchNorm/Scale into the layer before (default)")
    bn.add_argument("--keep-bn", dest="fold_bn", action="store_false",
                    help="keep them as batch_normalize=1 in that layer")
    cmd.add_argument("--verify", action="store_true", help="compare with OpenCV DNN on random inputs")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out = args.output.with_suffix("") if args.output.suffix in (".cfg", ".weights", ".json") else args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    conversion = caffe_to_darknet.caffe_to_darknet(args.prototxt, args.caffemodel, out,
                                                   input_shape=args.input_shape, fold_bn=args.fold_bn)
    if args.verify:
        conversion.verify = caffe_to_darknet.verify(args.prototxt, args.caffemodel, *conversion.outputs[:2], conversion)
    failed = conversion.verify is not None and not conversion.verify.ok
    if not args.quiet or failed:
        print(conversion)
    return 1 if failed else 0
