"""Where a forward pass spends its time: each layer's median wall time.

    python tools/profile_layers.py CFG [WEIGHTS] [--batch 1] [--runs 20] [--threads N]
    python tools/profile_layers.py --resnet18 ...      # the ResNet-18 of bench_cpu.py
    ... --no-onednn / --no-winograd                    # without those paths (im2col + GEMM instead)

Prints one row per layer (type, output shape, kernel, path: oneDNN, Winograd tile or
im2col + GEMM, BFLOPs per image,
ms per image, GFLOP/s, share of the pass) and the totals per layer type, from
``Network.layer_times()`` on random input. (Not a test: numbers depend on the machine.)
"""

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

import pydarknet  # noqa: E402
from bench_cpu import resnet18_files  # noqa: E402
from bench_forward import random_batch  # noqa: E402


def layer_path(layer: pydarknet.Layer) -> str:
    """How a convolution runs: "onednn", "F4"/"F2" (Winograd tile) or "gemm"."""
    if layer.type != "convolutional":
        return ""
    return "onednn" if layer.onednn else f"F{layer.winograd}" if layer.winograd else "gemm"


def profile(net: pydarknet.Network, runs: int) -> None:
    seconds = net.layer_times(random_batch(net), runs)
    total = sum(seconds)
    print(f"{net.cfg_path.name}: batch {net.batch}, {pydarknet.get_num_threads()} threads, "
          f"median of {runs} passes, {total / net.batch * 1000:.2f} ms per image in the layers")
    print(f"{'layer':>5} {'type':<14} {'output':<15} {'kernel':<9} {'path':<5} "
          f"{'BFLOPs':>7} {'ms':>7} {'GFLOP/s':>8} {'share':>6}")
    by_type = defaultdict(float)
    for layer, s in zip(net.layers, seconds):
        ms = s / net.batch * 1000
        kernel = f"{layer.size}x{layer.size}/{layer.stride}" if layer.type == "convolutional" else ""
        path = layer_path(layer)
        rate = f"{layer.bflops / ms * 1000:.0f}" if layer.bflops and ms > 0 else ""
        print(f"{layer.index:>5} {layer.type:<14} {'x'.join(map(str, layer.output_shape)):<15} {kernel:<9} "
              f"{path:<5} {layer.bflops:>7.3f} {ms:>7.3f} {rate:>8} {s / total:>6.1%}")
        by_type[f"{layer.type} ({path})" if path else layer.type] += s
    print("per type: " + ", ".join(f"{kind} {s / net.batch * 1000:.2f} ms ({s / total:.0%})"
                                   for kind, s in sorted(by_type.items(), key=lambda item: -item[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cfg", nargs="?")
    parser.add_argument("weights", nargs="?")
    parser.add_argument("--resnet18", action="store_true", help="profile bench_cpu.py's ResNet-18")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-onednn", dest="onednn", action="store_false", help="no oneDNN primitives")
    parser.add_argument("--no-winograd", dest="winograd", action="store_false", help="no Winograd convolutions")
    args = parser.parse_args()
    if bool(args.cfg) == args.resnet18:
        parser.error("give either CFG [WEIGHTS] or --resnet18")
    pydarknet.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, weights = (args.cfg, args.weights) if args.cfg else resnet18_files(Path(tmp))[2:]
        with pydarknet.Network(cfg, weights, batch=args.batch, onednn=args.onednn, winograd=args.winograd) as net:
            profile(net, args.runs)


if __name__ == "__main__":
    main()
