"""What the pydarknet subcommands share: a subparser described by its module's
docstring, argument types from limits' checks, the model, preprocessing and source
options, and the output of commands that run over many inputs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from .. import limits


def subcommand(sub, name: str, help: str, doc: str, formatter, epilog: str = None) -> argparse.ArgumentParser:
    """A subparser whose description is the first paragraph of ``doc`` after its
    ``name: `` prefix (the module docstrings of cli/ begin that way)."""
    return sub.add_parser(name, help=help, formatter_class=formatter, epilog=epilog,
                          description=doc.split("\n\n")[0].split(": ", 1)[1].strip())


def checked(check):
    """An argparse type from one of limits' checks (which raise ValueError)."""
    def parse(text: str):
        try:
            return check(float(text) if check is limits.probability else int(text), "value")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    parse.__name__ = check.__name__
    return parse


def _numbers(text: str):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or three, comma-separated (e.g. 104,117,123)")
    return values


def preprocessing_options(cmd, applies_to: str) -> None:
    """--mean, --scale/--std, --bgr/--rgb, --pixel-range, --resize: fields of the
    preprocessing that replace what ``applies_to`` states."""
    group = cmd.add_argument_group(f"preprocessing (replaces what {applies_to} states)")
    group.add_argument("--mean", type=_numbers, metavar="M[,M,M]", help="subtracted per channel, in pixel-range units")
    scale = group.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=_numbers, metavar="S[,S,S]", help="multiplied per channel after the mean")
    scale.add_argument("--std", type=_numbers, metavar="S[,S,S]", help="divided per channel after the mean (1/scale)")
    order = group.add_mutually_exclusive_group()
    order.add_argument("--bgr", dest="channel_order", action="store_const", const="BGR", help="BGR channel order")
    order.add_argument("--rgb", dest="channel_order", action="store_const", const="RGB", help="RGB channel order")
    group.add_argument("--pixel-range", type=float, metavar="R", help="what a full-intensity pixel is: 1 or 255")
    group.add_argument("--resize", choices=("letterbox", "stretch", "crop"), help="how images are sized to the input")
    group.add_argument("--crop-from", type=int, metavar="N",
                       help="with --resize crop: the shorter side before the centre crop (e.g. 256 for 224)")


def preprocessing_changes(args) -> dict:
    """The fields the preprocessing options give (only those given)."""
    scale = [1.0 / v if v else float("inf") for v in args.std] if args.std else args.scale
    changes = {"mean": args.mean, "scale": scale, "channel_order": args.channel_order,
               "pixel_range": args.pixel_range, "resize": args.resize, "crop_from": args.crop_from}
    return {k: v for k, v in changes.items() if v is not None}


def device_option(cmd) -> None:
    cmd.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (GPU builds)")


def model_options(cmd, zoo_default) -> None:
    """--model, or --cfg/--weights/--names; --verbose, --device and the preprocessing."""
    group = cmd.add_argument_group("model (a zoo name, or cfg + weights + names)")
    group.add_argument("--model", default=zoo_default, help="zoo model name")
    group.add_argument("--cfg", help="Darknet .cfg (with --weights and --names)")
    group.add_argument("--weights", help="weights file (with --model: a local copy of the zoo weights)")
    group.add_argument("--names", help=".names or .data file with the class names")
    cmd.add_argument("--verbose", action="store_true", help="show Darknet's own output")
    device_option(cmd)
    cmd.add_argument("--precision", choices=("float32", "int8"), default="float32",
                     help="what the CPU convolutions compute in; int8 needs a model written by pydarknet quantize")
    preprocessing_options(cmd, "the .json next to --cfg")
    cmd.add_argument("--darknet-preprocessing", action="store_true",
                     help="ignore the .json next to --cfg: Darknet's RGB 0-1 letterbox")


def network(args, batch: int = 1):
    """The network the model options name (a zoo name, or --cfg/--weights/--names with
    the preprocessing options), its warnings printed on stderr."""
    from ..api import zoo
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
                          device=args.device, preprocessing=preprocessing, precision=args.precision)
        for warning in caught:
            print(f"pydarknet: warning: {warning.message}", file=sys.stderr)
        return warned(net)
    if args.darknet_preprocessing or preprocessing_changes(args):
        raise ValueError("preprocessing options are for converted models (--cfg); zoo models come with their own")
    return warned(zoo.load(args.model, weights=args.weights, batch=batch, verbose=args.verbose, device=args.device,
                           precision=args.precision))


def note(message: str) -> None:
    """Something the user should know about the results: one line on stderr."""
    print(f"pydarknet: note: {message}", file=sys.stderr)


def warned(net):
    """The network, its cfg warnings (keys nothing reads: a typo, or a feature of another
    Darknet fork) printed on stderr first."""
    for warning in net.warnings:
        print(f"pydarknet: warning: {warning}", file=sys.stderr)
    return net


def sources_options(cmd) -> None:
    """SOURCE... and --recursive, as ``api.sources.expand`` takes them."""
    cmd.add_argument("sources", nargs="+", metavar="SOURCE",
                     help="an image, folder, glob, video, camera index or stream URL")
    cmd.add_argument("--recursive", action="store_true", help="folders and ** globs with their subfolders")


def progress(sources=None):
    """A progress bar over images on stderr, drawn only when stderr is a terminal; with
    a total and the time left where ``sources`` (expanded) are images only (a video's
    frames are not counted before they are read)."""
    from tqdm import tqdm

    from ..api.sources import is_video_name

    total = None
    if sources is not None and not any(is_video_name(str(s)) for s in sources if isinstance(s, (str, int))):
        total = len(sources)
    return tqdm(total=total, unit="image", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)


def input_failed(error, bar) -> None:
    """A bad input: one line on stderr (the run goes on)."""
    bar.clear()
    print(f"pydarknet: error: {error}", file=sys.stderr)


def input_name(source: str, frame) -> str:
    """How the tables name an image (its source) or a video frame (source#frame)."""
    return source if frame is None else f"{source}#{frame}"


def print_record(record: dict) -> None:
    """One JSON Lines record, flushed at once for a reader at the other end of a pipe."""
    print(json.dumps(record), flush=not sys.stdout.isatty())


def close_stdout() -> None:
    """The reader of our output is gone: what is still printed goes nowhere."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
