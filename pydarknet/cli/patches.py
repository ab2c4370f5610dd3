"""``pydarknet patches``: our patch series on upstream Darknet (source/patches.py).

    pydarknet patches check           # apply all to pristine upstream, in memory
    pydarknet patches apply DIR       # write pristine + series to DIR (--upto NAME to stop early)
    pydarknet patches refresh NAME DIR  # rewrite patch NAME from the edited tree DIR

Works in a source checkout before anything is built (``python -m pydarknet patches``).
A patch that does not apply, a tree that differs and lint findings are failed checks
(exit status 1).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..source import patches, upstream
from .common import subcommand


def _cmd_list(args) -> int:
    for patch in patches.load_series(args.series):
        touched = ", ".join(d.path for d in patch.files)
        print(f"{patch.name}  {patch.sha256[:12]}  {patch.summary}\n    {touched}")
    return 0


def _cmd_check(args) -> int:
    series = patches.load_series(args.series)
    with tempfile.TemporaryDirectory() as work:
        files = patches.pristine_files(args.source, Path(work))
    pristine = files
    for patch in series:
        files = patches.apply_patch(files, patch)
        print(f"ok    {patch.name}")
    print(f"all {len(series)} patches apply exactly")
    found = patches.rewrites(pristine, series)
    for problem in found:
        print(problem)
    return 1 if found else 0


def _cmd_apply(args) -> int:
    target = Path(args.dir)
    # only a tree this command wrote (it has our stamp), or an empty folder, is replaced
    if target.is_symlink() or target.exists() and not (
            target.is_dir() and (not any(target.iterdir()) or (target / patches.STAMP_NAME).is_file())):
        raise patches.PatchError(f"{target} exists and is not a patched tree written by this command "
                         f"(no {patches.STAMP_NAME}); give a new or empty folder")
    series = patches.load_series(args.series)
    if args.upto:
        names = [p.name for p in series]
        if args.upto not in names:
            raise patches.PatchError(f"--upto {args.upto}: not in the series ({', '.join(names)})")
        series = series[:names.index(args.upto) + 1]
    with tempfile.TemporaryDirectory() as work:
        files = patches.apply_series(patches.pristine_files(args.source, Path(work)), series)
    stamp = patches.stamp_for(series, args.source or "resolved")
    files[patches.STAMP_NAME] = (json.dumps(stamp, indent=2) + "\n").encode()
    upstream.write_tree(files, Path(args.dir))
    print(f"wrote patched tree ({len(series)} patches) to {args.dir}")
    return 0


def _cmd_status(args) -> int:
    tree = Path(args.dir)
    series = patches.load_series(args.series)
    stamp = patches.read_stamp(tree)
    if stamp is None:
        print(f"{tree}: no {patches.STAMP_NAME}: not made by pydarknet")
    elif not patches.same_inputs(stamp, patches.stamp_for(series, "")):
        print(f"{tree}: stale: made from other upstream files or patches than the series now")
    with tempfile.TemporaryDirectory() as work:
        expected = patches.apply_series(patches.pristine_files(args.source, Path(work)), series)
    actual = upstream.read_directory(tree)
    differ = sorted(p for p in set(expected) | set(actual) if expected.get(p) != actual.get(p))
    for path in differ:
        print(f"differs: {path}")
    if stamp is not None and not differ and patches.same_inputs(stamp, patches.stamp_for(series, "")):
        print(f"{tree}: clean: upstream {upstream.COMMIT[:8]} + {len(series)} patches")
        return 0
    return 1


def _cmd_refresh(args) -> int:
    with tempfile.TemporaryDirectory() as work:
        pristine = patches.pristine_files(args.source, Path(work))
    tree = upstream.read_directory(Path(args.dir))
    tree.pop(patches.STAMP_NAME, None)
    for name in patches.refresh(args.name, tree, pristine, args.series, args.description):
        print(f"wrote {args.series / name}")
    print("next: pydarknet patches check")
    return 0


def _cmd_lint(args) -> int:
    problems = patches.lint(args.series)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"series in {args.series} is consistent")
    return 1 if problems else 0


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "patches", "list, check, apply, refresh or lint our patch series on upstream", __doc__,
                     formatter)
    cmd.add_argument("--series", type=Path, default=None,
                     help="folder with the series file (default: ./darknet_patches, else the installed copy)")
    actions = cmd.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the series in order")
    for name, text in (("check", "apply every patch to the pristine tree in memory"),
                       ("apply", "write pristine + series into DIR"),
                       ("status", "compare DIR with pristine + series")):
        action = actions.add_parser(name, help=text)
        if name != "check":
            action.add_argument("dir")
        action.add_argument("--source", help="upstream directory or tarball instead of the usual channels")
        if name == "apply":
            action.add_argument("--upto", metavar="NAME", help="stop after this patch (to edit and refresh it)")
    refresh = actions.add_parser("refresh", help="rewrite patch NAME (or add a new one) from an edited tree")
    refresh.add_argument("name", help="patch file name, e.g. 0003-checked-weights-io.patch")
    refresh.add_argument("dir", help="upstream tree with the series up to NAME (all of it for a new NAME) "
                         "plus your edits")
    refresh.add_argument("--description", help="DEP-3 Description of a new patch")
    refresh.add_argument("--source", help="upstream directory or tarball instead of the usual channels")
    actions.add_parser("lint", help="series and patch files agree; DEP-3 headers present")
    cmd.set_defaults(handler=run)


def run(args) -> int:
    args.series = args.series or patches.default_series_dir()
    handler = {"list": _cmd_list, "check": _cmd_check, "apply": _cmd_apply,
               "status": _cmd_status, "refresh": _cmd_refresh, "lint": _cmd_lint}[args.action]
    return handler(args)
