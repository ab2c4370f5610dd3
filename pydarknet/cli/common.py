"""What the pydarknet subcommands share: a subparser described by its module's
docstring, and argument types from limits' checks."""

from __future__ import annotations

import argparse

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
    group.add_argument("--resize", choices=("letterbox", "stretch"), help="how images are sized to the input")


def preprocessing_changes(args) -> dict:
    """The fields the preprocessing options give (only those given)."""
    scale = [1.0 / v if v else float("inf") for v in args.std] if args.std else args.scale
    changes = {"mean": args.mean, "scale": scale, "channel_order": args.channel_order,
               "pixel_range": args.pixel_range, "resize": args.resize}
    return {k: v for k, v in changes.items() if v is not None}
