"""python -m pydarknet.caffe2darknet: convert a Caffe model into Darknet files.

    python -m pydarknet.caffe2darknet deploy.prototxt model.caffemodel -o out/model --verify

Writes OUT.cfg, OUT.weights and OUT.json (input shape, the preprocessing the
prototxt states, and what each Caffe layer became). BatchNorm is folded into the
layer before it by default (--keep-bn: batch_normalize=1 layers instead). --verify
runs the Caffe model on OpenCV DNN and the converted one on pydarknet with the same
random inputs and fails above 1e-4 of the largest output value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from . import convert
from .errors import DarknetError


def _shape(text: str):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected C,H,W, e.g. 3,224,224")
    return shape


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pydarknet.caffe2darknet", description=__doc__.split("\n")[0],
                                     epilog="Exit status: 0 done, 1 --verify above tolerance, 2 bad input.")
    parser.add_argument("prototxt", type=Path)
    parser.add_argument("caffemodel", type=Path)
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                        help="writes OUT.cfg, OUT.weights, OUT.json")
    parser.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                        help="input size (default: the prototxt's)")
    bn = parser.add_mutually_exclusive_group()
    bn.add_argument("--fold-bn", dest="fold_bn", action="store_true", default=True,
                    help="fold BatchNorm/Scale into the layer before (default)")
    bn.add_argument("--keep-bn", dest="fold_bn", action="store_false",
                    help="keep them as batch_normalize=1 in that layer")
    parser.add_argument("--verify", action="store_true", help="compare with OpenCV DNN on random inputs")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    out = args.output.with_suffix("") if args.output.suffix in (".cfg", ".weights", ".json") else args.output
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        conversion = convert.caffe_to_darknet(args.prototxt, args.caffemodel, out,
                                              input_shape=args.input_shape, fold_bn=args.fold_bn)
        if args.verify:
            conversion.verify = convert.verify(args.prototxt, args.caffemodel, *conversion.outputs[:2], conversion)
    except (DarknetError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = conversion.verify is not None and not conversion.verify.ok
    if not args.quiet or failed:
        print(conversion)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
