"""The ``pydarknet`` command: detect | classify | info | fold-bn | convert | to-onnx | map | zoo | patches.

One convention for all of them: a user error (bad input, a missing file, a model that
does not fit) is one line on stderr, ``pydarknet: error: ...``, and exit status 2; a
failed check (``--check``, ``--verify``, ``patches check``) exits 1; ``--debug`` shows
the traceback instead. A closed output pipe (``| head``) ends the command quietly;
Ctrl-C ends it with one line and exit status 130.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from ..errors import DarknetError, DependencyError
from ..api.zoo import ZooError
from ..source.patches import PatchError
from ..source.upstream import UpstreamError
from . import convert, detect, evaluate, fold_bn, patches, quantize, run, to_onnx, zoo
from .common import close_stdout

USER_ERRORS = (DarknetError, DependencyError, ZooError, UpstreamError, OSError, ValueError, TypeError)


class _ShownDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default, where it has one worth showing."""

    def _get_help_string(self, action):
        # a flag's default is said by its help (--fold-bn's "(default)"), not as True/False
        if action.default in (None, False) or action.default is argparse.SUPPRESS or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    formatter = _ShownDefaults
    parser = argparse.ArgumentParser(prog="pydarknet", description="Darknet models from the command line.")
    parser.add_argument("--version", action="version", version=f"pydarknet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    detect.add_command(sub, formatter)
    run.add_commands(sub, formatter)
    fold_bn.add_command(sub, formatter)
    convert.add_command(sub, formatter)
    to_onnx.add_command(sub, formatter)
    evaluate.add_command(sub, formatter)
    quantize.add_command(sub, formatter)
    zoo.add_command(sub, formatter)
    patches.add_command(sub, formatter)
    parser.commands = sub.choices  # name -> its parser, for parse()
    return parser


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line, options allowed between the sources (``detect a.jpg --json
    b.jpg``): a subcommand's arguments are parsed again intermixed when the first
    parse leaves some over."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    start = argv.index(args.command) + 1
    try:
        return parser.commands[args.command].parse_intermixed_args(argv[start:], argparse.Namespace(
            debug=args.debug, command=args.command))
    except TypeError:  # a subcommand with subcommands of its own cannot be intermixed
        parser.error(f"unrecognized arguments: {' '.join(extra)}")


def command(name: str) -> Callable[[Optional[Sequence[str]]], int]:
    """The ``main`` of a ``python -m pydarknet.MODULE`` shim: ``pydarknet NAME ...``."""
    def run(argv: Optional[Sequence[str]] = None) -> int:
        return main([name, *(sys.argv[1:] if argv is None else argv)])
    run.__doc__ = f"pydarknet {name}, with ``argv`` (default: the process's arguments)."
    return run


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, the shell's status for SIGINT
        print(f"pydarknet: interrupted{' ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `| head`: the reader is gone; end quietly
        close_stdout()  # nothing left to flush at exit
        return 0
    except PatchError as exc:  # a patch that does not apply: the check failed
        return _report(args, exc, 1)
    except USER_ERRORS as exc:
        return _report(args, exc, 2)


def _report(args, exc: Exception, status: int) -> int:
    if args.debug:
        raise exc
    print(f"pydarknet: error: {exc}", file=sys.stderr)
    return status
