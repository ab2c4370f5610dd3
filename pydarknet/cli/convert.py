"""``pydarknet convert`` (also ``python -m pydarknet.caffe2darknet`` and ``python -m
pydarknet.onnx2darknet``): convert an ONNX or Caffe model into Darknet files.

    pydarknet convert resnet18.onnx -o out/resnet18 --verify
    pydarknet convert deploy.prototxt model.caffemodel -o out/model --verify

Writes OUT.cfg, OUT.weights and OUT.json (input shape, preprocessing, and what each
node of the original became). pydarknet applies that preprocessing whenever it runs
OUT.cfg: a prototxt's transform_param, else Caffe's BGR 0-255; ONNX files state none
(RGB 0-1). Give the model's own where the file does not: e.g. open_nsfw's is --bgr
--mean 104,117,123, torchvision's --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
--resize crop --crop-from 256.
BatchNorm is folded into the layer before it by default (--keep-bn: batch_normalize=1
layers instead). --verify runs the original on an independent runtime (onnxruntime,
OpenCV DNN for Caffe) and pydarknet on the same random inputs and fails above 1e-4
of the largest value of any compared output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import preprocessing_changes, preprocessing_options, subcommand


def _shape(text: str):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected C,H,W, e.g. 3,224,224")
    return shape


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "convert", "convert an ONNX or Caffe model into Darknet files", __doc__, formatter,
                     epilog="Exit status: 0 done, 1 --verify above tolerance, 2 bad input.")
    cmd.add_argument("model", type=Path, nargs="+", metavar="MODEL",
                     help="MODEL.onnx, or DEPLOY.prototxt MODEL.caffemodel")
    cmd.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                     help="writes OUT.cfg, OUT.weights, OUT.json")
    cmd.add_argument("--input-shape", type=_shape, metavar="C,H,W", help="input size (default: the model's)")
    bn = cmd.add_mutually_exclusive_group()
    bn.add_argument("--fold-bn", dest="fold_bn", action="store_true", default=True,
                    help="fold BatchNorm (and Caffe's Scale) into the layer before (default)")
    bn.add_argument("--keep-bn", dest="fold_bn", action="store_false",
                    help="keep them as batch_normalize=1 in that layer")
    cmd.add_argument("--verify", action="store_true", help="compare with onnxruntime / OpenCV DNN on random inputs")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    preprocessing_options(cmd, "the model")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..transforms import caffe_to_darknet, onnx_to_darknet

    out = args.output.with_suffix("") if args.output.suffix in (".cfg", ".weights", ".json") else args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {"input_shape": args.input_shape, "fold_bn": args.fold_bn, "preprocessing": preprocessing_changes(args)}
    if len(args.model) == 1 and args.model[0].suffix.lower() != ".prototxt":
        conversion = onnx_to_darknet.onnx_to_darknet(args.model[0], out, **options)
        if args.verify:
            conversion.verify = onnx_to_darknet.verify(args.model[0], conversion)
    elif len(args.model) == 2:
        conversion = caffe_to_darknet.caffe_to_darknet(*args.model, out, **options)
        if args.verify:
            conversion.verify = caffe_to_darknet.verify(*args.model, conversion)
    else:
        raise ValueError("give MODEL.onnx, or DEPLOY.prototxt and MODEL.caffemodel")
    failed = conversion.verify is not None and not conversion.verify.ok
    if not args.quiet or failed:
        print(conversion)
    return 1 if failed else 0
