"""Regenerate one patch of the series from an edited upstream tree.

    python -m pydarknet patches apply --upto 0003-foo.patch /tmp/tree   # or a new name:
    python -m pydarknet patches apply /tmp/tree                          # whole series
    ... edit /tmp/tree ...
    python tools/refresh_patch.py 0003-foo.patch /tmp/tree
    python tools/refresh_patch.py 0005-new.patch /tmp/tree --description "Summary
     longer text, lines indented by one space"

TREE must hold the series up to and including NAME (for a new NAME: the whole series),
plus your edits. The patch becomes the difference between pristine upstream with the
patches before NAME and TREE. An existing patch keeps its DEP-3 header with
Last-Update set to today; a new one is appended to the series. Run
``python -m pydarknet patches check`` afterwards: later patches must still apply.
"""

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pydarknet.source import patches, upstream  # noqa: E402  (no extension needed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", help="patch file name, e.g. 0003-checked-weights-io.patch")
    parser.add_argument("tree", type=Path, help="edited upstream tree")
    parser.add_argument("--description", help="DEP-3 Description for a new patch")
    parser.add_argument("--series", type=Path, default=ROOT / "darknet_patches")
    args = parser.parse_args()

    names = patches.series_names(args.series)
    series = patches.load_series(args.series)
    new = args.name not in names
    if new and not patches.PATCH_NAME.fullmatch(args.name):
        parser.error(f"{args.name}: a new patch is named NNNN-lowercase-words.patch")
    if new and not args.description:
        parser.error("a new patch needs --description")
    before_patches = series if new else series[:names.index(args.name)]

    with tempfile.TemporaryDirectory() as work:
        pristine, _ = upstream.resolve(Path(work), lambda msg: None)
    before = patches.apply_series(pristine, before_patches)
    after = upstream.read_directory(args.tree)

    today = datetime.date.today().isoformat()
    if new:
        header = (f"Description: {args.description}\nAuthor: pydarknet developers\n"
                  f"Forwarded: not-needed (upstream is no longer maintained)\nLast-Update: {today}\n")
    else:
        header = "\n".join(f"Last-Update: {today}" if l.startswith("Last-Update:") else l
                           for l in patches.header_text((args.series / args.name).read_bytes()).splitlines())
    data = patches.make_patch(header, before, after)
    patches.parse_patch(args.name, data)  # what we write must read back
    (args.series / args.name).write_bytes(data)
    if new:
        with open(args.series / "series", "a") as series_file:
            series_file.write(args.name + "\n")
    print(f"wrote {args.series / args.name} ({len(data)} bytes)")

    # Later patches whose context only moved are re-diffed to their new line numbers;
    # one whose context changed fails here and must be refreshed by hand.
    tree = after
    for later in series[len(before_patches) + (0 if new else 1):]:
        moved = patches.apply_patch(tree, later, allow_offset=True)
        rebased = patches.make_patch(patches.header_text(later.data), tree, moved)
        if rebased != later.data:
            (args.series / later.name).write_bytes(rebased)
            print(f"rebased {later.name} onto the new line numbers")
        tree = moved
    return 0


if __name__ == "__main__":
    sys.exit(main())
