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
