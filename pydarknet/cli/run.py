"""``pydarknet classify`` and ``info``: running and inspecting models (``detect`` is in
detect.py)."""

from __future__ import annotations

from pathlib import Path

from .. import limits
from .common import (checked, device_option, input_failed, input_name, model_options, network, note,
                     print_record, progress, sources_options, warned)


def cmd_classify(args) -> int:
    """Each image or frame of the sources (as detect takes them): its top classes. A bad
    input is one line on stderr (and a {"source", "error"} record with --json) and the
    run goes on (exit status 1)."""
    from ..api.inference import normalization
    from ..api.sources import expand
    from ..api.stream import predict
    from ..errors import printable

    net = network(args)
    if normalization(net) == "softmax" and not args.json:
        note(f"{net.cfg_path.name} ends in raw scores, not probabilities: the percentages are their softmax")
    failed = 0
    sources = list(expand(args.sources, args.recursive))
    bar = progress(sources)
    for result in predict(net, sources, top=args.top):
        bar.update()
        if result.error is not None:
            failed += 1
            input_failed(printable(result.error), bar)
        if args.json:
            print_record(result.to_json())
        elif result.error is None:
            print(f"{printable(input_name(result.source, result.frame))}: ({result.ms:.0f} ms)")
            for found in result.classes:
                print(f"  {found.probability:>7.2%}  {found.label}")
    bar.close()
    return 1 if failed else 0


def cmd_info(args) -> int:
    from ..api import zoo
    from ..runtime.network import Network

    cfg = zoo.cfg_file(args.model) if zoo.is_zoo_name(args.model) else Path(args.model)
    net = warned(Network(cfg, args.weights, fold_bn=False, device=args.device))  # the layers as the files have them
    print(f"{cfg}: input {'x'.join(map(str, net.input_shape))}, batch {net.batch}, {net.classes} classes, "
          f"on {_device_line(net.device)}")
    if not net.preprocessing.is_darknets:
        print(f"preprocessing: {net.preprocessing}")
    print(net.summary())
    size = 20 + 4 * net.n_params
    if args.weights:
        print(f"weights: {args.weights} loaded; its {size} bytes match the cfg exactly")
    else:
        print(f"weights: a file for this cfg has {size} bytes")
    return 0


def _device_line(device: str) -> str:
    """The device with what this machine says of it."""
    from ..runtime.devices import cuda_devices, device_index

    if device == "cpu":
        return "cpu"
    found = {d.index: d for d in cuda_devices()}.get(device_index(device))
    return f"{device} ({found.name}, compute capability {found.capability})" if found else device


def add_commands(sub, formatter) -> None:
    """classify and info as subcommands of the pydarknet parser."""
    classify = sub.add_parser("classify", help="top classes of images", formatter_class=formatter,
                              epilog="Exit status: 0 done, 1 some input failed, 2 bad arguments or model.")
    sources_options(classify)
    model_options(classify, "open-nsfw")
    classify.add_argument("--json", action="store_true",
                          help="JSON Lines: source, frame, width, height, ms, normalization, classes (label, "
                               "probability, score)")
    classify.add_argument("--top", type=checked(limits.positive_int), default=5, help="how many classes to print")
    classify.set_defaults(handler=cmd_classify)

    info = sub.add_parser("info", help="layer table, BFLOPs and weights check of a model", formatter_class=formatter)
    info.add_argument("model", help="zoo name or cfg path")
    info.add_argument("--weights", help="check that this weights file fits the cfg")
    device_option(info)
    info.set_defaults(handler=cmd_info)
