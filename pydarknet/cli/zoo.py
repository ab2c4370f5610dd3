"""``pydarknet zoo``: the models that every command takes by name, and their files.

    pydarknet zoo list                        # name, task, weights (fetched or not), cfg
    pydarknet zoo path yolov3-tiny            # cfg, weights and names (weights fetched first)
    pydarknet zoo path yolov3-tiny --file weights   # one path, for scripts

A zoo name stands wherever a model is taken (detect --model, classify --model, info,
fold-bn, to-onnx, and pydarknet.predict/detect/classify/export_onnx). Weights are
fetched once, verified by sha256, into the per-user cache.
"""

from __future__ import annotations

from ..api import zoo
from .common import subcommand

FILES = ("cfg", "weights", "names")


def _cmd_list(args) -> int:
    rows = [("name", "task", "weights", "cfg")]
    for name in sorted(zoo.MODELS):
        model = zoo.MODELS[name]
        cached = zoo.cached_weights(name)
        weights = str(cached) if cached else f"not fetched yet ({model.size / 1e6:.1f} MB)"
        rows.append((name, model.task, weights, str(model.cfg_path())))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(f"{text:<{width}}" for text, width in zip(row, widths)) + "  " + row[3])
    return 0


def _cmd_path(args) -> int:
    found = zoo.files(args.name)
    paths = {"cfg": found.cfg, "weights": found.weights, "names": found.names}
    if args.file:
        print(paths[args.file])
    else:
        for kind in FILES:
            print(f"{kind:<8} {paths[kind]}")
    return 0


def add_command(sub, formatter) -> None:
    cmd = subcommand(sub, "zoo", "the models known by name, and where their files are", __doc__, formatter)
    actions = cmd.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every zoo model: task, weights, cfg").set_defaults(handler=_cmd_list)
    path = actions.add_parser("path", help="the files of one model (its weights fetched if need be)")
    path.add_argument("name", choices=sorted(zoo.MODELS), metavar="NAME", help="a zoo model")
    path.add_argument("--file", choices=FILES, help="print only this file's path")
    path.set_defaults(handler=_cmd_path)
