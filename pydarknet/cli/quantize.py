"""``pydarknet quantize``: int8 parameters for a model from calibration images, for
``--precision int8``.

    pydarknet quantize --model yolov3-tiny --calibrate photos/ -o int8/yolov3-tiny
    pydarknet quantize --cfg my.cfg --weights my.weights --calibrate a.jpg b.jpg -o int8/my
    pydarknet detect --cfg int8/my.cfg --weights int8/my.weights --names my.names --precision int8 dog.jpg

The calibration images (any source detect takes; a few natural images of the kind the
model will see, 8 or more) run through the model's own preprocessing in float32; each
convolution's input steps come from them (--method). Writes OUT.cfg and OUT.weights
(the model's own, copied) and OUT.json (the model's .json, if any, with the
quantization entry), all three or none, and prints the layers that stay float32 and
why. Weights are quantized when the network loads, per output channel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..formats.quantization import DEFAULT_PERCENTILE, METHODS
from .common import input_failed, progress, subcommand


def _layers(text: str):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give layer indices, comma-separated (e.g. 0,15,22)") from None


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "quantize", "int8 parameters from calibration images", __doc__, formatter,
                     epilog="Exit status: 0 written, 2 bad input.")
    group = cmd.add_argument_group("model (a zoo name, or cfg + weights)")
    group.add_argument("--model", help="zoo model name")
    group.add_argument("--cfg", help="Darknet .cfg (with --weights)")
    group.add_argument("--weights", help="weights file (with --model: a local copy of the zoo weights)")
    cmd.add_argument("--calibrate", nargs="+", required=True, metavar="SOURCE",
                     help="calibration images: files, folders, globs or videos")
    cmd.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                     help="writes OUT.cfg, OUT.weights and OUT.json")
    cmd.add_argument("--method", choices=METHODS, default="max",
                     help="how each input's int8 range is chosen from the calibration activations")
    cmd.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                     help="with --method percentile: the share of input magnitudes (in %%) inside the int8 range")
    cmd.add_argument("--float32-layers", type=_layers, default=[], metavar="I,J,...",
                     help="convolutional layers to keep in float32")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api.quantize import quantize
    from ..api.sources import expand
    from ..api.zoo import model_files

    if bool(args.cfg) == bool(args.model):
        raise ValueError("give --model NAME or --cfg CFG --weights W")
    found = model_files(args.model or args.cfg, args.weights)
    sources = list(expand(args.calibrate))
    with progress(sources) as bar:
        calibration = quantize(found.cfg, found.weights, sources, args.output, method=args.method,
                                percentile=args.percentile, float32_layers=args.float32_layers,
                                progress=bar.update)
        for problem in calibration.problems:
            input_failed(problem, bar)
    q = calibration.quantization
    print(f"wrote {', '.join(map(str, calibration.written))}: {len(q.inputs)} int8 convolutions, {len(q.float32)} float32 "
          f"({q.method} of {q.calibration_images} calibration images)")
    for index, why in sorted(q.float32.items()):
        print(f"  layer {index} stays float32: {why}")
    return 0
