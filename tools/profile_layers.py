"""Where a forward pass spends its time: each layer's median wall time.

    python tools/profile_layers.py CFG [WEIGHTS] [--batch 1] [--runs 20] [--threads N]
    python tools/profile_layers.py --resnet18 ...      # the ResNet-18 of bench_cpu.py
    ... --backend cpu|upstream / --no-winograd         # other paths (Network's backend, winograd)
    ... --compare cpu                                  # and beside it, per layer, another backend
    ... --precision int8 / --compare int8              # int8 (quantized on upstream's samples
                                                       # where the cfg's .json has no parameters)
    python tools/profile_layers.py --peak              # GFLOP/s (GOP/s) of large 3x3 layers

Prints one row per layer (type, output shape, kernel, path: oneDNN (int8 where it
computes in int8, with oneDNN's name of its implementation), Winograd tile or
im2col + GEMM, BFLOPs per image,
ms per image, GFLOP/s, share of the pass) and the totals per layer type, from
``Network.layer_times()`` on random input. With ``--compare``, a second network on
another backend takes turns with the first (rounds of a few passes each, so a slow
spell of a shared machine hits both) and each layer shows both times.
(Not a test: numbers depend on the machine.)
"""

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "tests")]

import pydarknet  # noqa: E402
from bench_cpu import resnet18_files  # noqa: E402
from bench_forward import random_batch  # noqa: E402


def layer_path(layer: pydarknet.Layer) -> str:
    """How a layer runs: "int8" (oneDNN), "onednn", "F4"/"F2" (Winograd tile) or "gemm"."""
    if layer.int8:
        return "int8"
    if layer.type != "convolutional":
        return ""
    return "onednn" if layer.onednn else f"F{layer.winograd}" if layer.winograd else "gemm"


def profile(net: pydarknet.Network, runs: int) -> None:
    seconds = net.layer_times(random_batch(net), runs)
    total = sum(seconds)
    print(f"{net.cfg_path.name}: batch {net.batch}, {pydarknet.get_num_threads()} threads, "
          f"median of {runs} passes, {total / net.batch * 1000:.2f} ms per image in the layers")
    print(f"{'layer':>5} {'type':<14} {'output':<15} {'kernel':<9} {'path':<5} {'implementation':<28} "
          f"{'BFLOPs':>7} {'ms':>7} {'GFLOP/s':>8} {'share':>6}")
    by_type = defaultdict(float)
    for layer, s in zip(net.layers, seconds):
        ms = s / net.batch * 1000
        kernel = f"{layer.size}x{layer.size}/{layer.stride}" if layer.type == "convolutional" else ""
        path = layer_path(layer)
        rate = f"{layer.bflops / ms * 1000:.0f}" if layer.bflops and ms > 0 else ""
        print(f"{layer.index:>5} {layer.type:<14} {'x'.join(map(str, layer.output_shape)):<15} {kernel:<9} "
              f"{path:<5} {layer.kernel:<28} {layer.bflops:>7.3f} {ms:>7.3f} {rate:>8} {s / total:>6.1%}")
        by_type[f"{layer.type} ({path})" if path else layer.type] += s
    print("per type: " + ", ".join(f"{kind} {s / net.batch * 1000:.2f} ms ({s / total:.0%})"
                                   for kind, s in sorted(by_type.items(), key=lambda item: -item[1])))


def interleaved_layer_times(nets, runs: int, rounds: int = 5):
    """Each network's per-layer median seconds, the networks taking turns."""
    x = random_batch(nets[0])
    samples = [[] for _ in nets]
    for _ in range(rounds):
        for net, times in zip(nets, samples):
            times.append(net.layer_times(x, max(1, runs // rounds)))
    return [[float(v) for v in np.median(np.array(times), axis=0)] for times in samples]


def compare(a: pydarknet.Network, b: pydarknet.Network, runs: int) -> None:
    ta, tb = interleaved_layer_times([a, b], runs)
    names = [f"{net.backend}{' int8' if net.precision == 'int8' else ''}" for net in (a, b)]
    print(f"{a.cfg_path.name}: batch {a.batch}, {pydarknet.get_num_threads()} threads, ms per image, "
          f"{names[0]} vs {names[1]} taking turns: {sum(ta) / a.batch * 1000:.2f} vs {sum(tb) / b.batch * 1000:.2f}")
    print(f"{'layer':>5} {'type':<14} {'output':<15} {'path':<7} {'ms':>7} {'path':<7} {'ms':>7} {'ratio':>6}")
    for la, lb, sa, sb in zip(a.layers, b.layers, ta, tb):
        ratio = f"{sa / sb:.2f}" if sb > 0 else ""
        print(f"{la.index:>5} {la.type:<14} {'x'.join(map(str, la.output_shape)):<15} {layer_path(la):<7} "
              f"{sa / a.batch * 1000:>7.3f} {layer_path(lb):<7} {sb / b.batch * 1000:>7.3f} {ratio:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cfg", nargs="?")
    parser.add_argument("weights", nargs="?")
    parser.add_argument("--resnet18", action="store_true", help="profile bench_cpu.py's ResNet-18")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--backend", choices=("upstream", "cpu", "onednn"), help="default: the build's best")
    parser.add_argument("--no-winograd", dest="winograd", action="store_false", help="no Winograd convolutions")
    parser.add_argument("--compare", choices=("upstream", "cpu", "onednn", "int8"),
                        help="a second backend (or int8), per layer")
    parser.add_argument("--precision", choices=("float32", "int8"), default="float32")
    parser.add_argument("--peak", action="store_true", help="measure the peak of large 3x3 layers instead")
    args = parser.parse_args()
    pydarknet.set_num_threads(args.threads)
    if args.peak:
        return peak(args.runs)
    if bool(args.cfg) == args.resnet18:
        parser.error("give either CFG [WEIGHTS] or --resnet18")
    with tempfile.TemporaryDirectory() as tmp:
        cfg, weights = (args.cfg, args.weights) if args.cfg else resnet18_files(Path(tmp))[2:]
        int8_cfg, int8_weights = int8_files(cfg, weights, Path(tmp)) if "int8" in (args.compare, args.precision) \
            else (None, None)
        first = (int8_cfg, int8_weights, "int8") if args.precision == "int8" else (cfg, weights, "float32")
        with pydarknet.Network(first[0], first[1], batch=args.batch, backend=args.backend, winograd=args.winograd,
                               precision=first[2]) as net:
            if args.compare:
                other_files = (int8_cfg, int8_weights) if args.compare == "int8" else (cfg, weights)
                with pydarknet.Network(*other_files, batch=args.batch, winograd=args.winograd,
                                       backend=None if args.compare == "int8" else args.compare,
                                       precision="int8" if args.compare == "int8" else "float32") as other:
                    compare(net, other, args.runs)
            else:
                profile(net, args.runs)


def int8_files(cfg, weights, work: Path):
    """The model with int8 parameters: its own, or calibrated on upstream's samples."""
    from pydarknet.formats import quantization

    if quantization.stated(cfg) is not None:
        return cfg, weights
    images = [str(pydarknet.samples.path(name)) for name in pydarknet.samples.names()]
    return pydarknet.quantize(cfg, weights, images, work / "int8").written[:2]


PEAK_CFG = "[net]\nwidth=26\nheight=26\nchannels=256\n" + \
    "[convolutional]\nfilters=256\nsize=3\nstride=1\npad=1\nactivation=relu\n" * 4


def peak(runs: int) -> None:
    """GFLOP/s of four 256-channel 3x3 layers on 26x26 maps in float32 (oneDNN's direct
    convolution, no Winograd) and int8 (GOP/s): what oneDNN reaches on this CPU where
    nothing else costs, the roofline's ceiling."""
    from support.random_weights import write_random_weights
    from pydarknet.formats.quantization import Quantization

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "peak.cfg"
        cfg.write_text(PEAK_CFG)
        with pydarknet.Network(cfg) as net:
            weights = write_random_weights(net, Path(tmp) / "peak.weights")
        steps = Quantization("max", 1, {i: (0.01, False) for i in range(4)})  # relu inputs: u8
        cfg.with_suffix(".json").write_text(__import__("json").dumps({"quantization": steps.to_json()}))
        for precision in ("float32", "int8"):
            with pydarknet.Network(cfg, weights, precision=precision, winograd=False) as net:
                seconds = net.layer_times(random_batch(net), runs)
                rates = [layer.bflops / s for layer, s in zip(net.layers, seconds)]
                print(f"{precision}: {max(rates):.0f} GFLOP/s at best, {np.median(rates):.0f} median "
                      f"({net.layers[1].kernel}, {pydarknet.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
