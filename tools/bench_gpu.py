"""GPU speed of a PYDARKNET_GPU=1 build against its own CPU path, on one machine.

    python tools/bench_gpu.py [--runs 10] [--device cuda:0] [--batches 1 32]

yolov3-tiny 416 (official weights) and bench_cpu.py's ResNet-18 224, each loaded once
per batch size on the GPU and on the CPU (the build's best CPU backend, every core),
timed as predict() calls on random input: host-to-device copy, forward pass and the
copy back, the way a caller sees them. Prints median ms per image and the speed-up,
and the GPU's load time. (Not a test: numbers depend on the machine.)
"""

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import pydarknet  # noqa: E402
from bench_cpu import resnet18_files  # noqa: E402
from bench_forward import forward_times  # noqa: E402
from pydarknet.api import zoo  # noqa: E402
from pydarknet.runtime import devices  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()

    gpu = {d.index: d for d in devices.cuda_devices()}[devices.device_index(args.device)]
    work = Path(tempfile.mkdtemp())
    _, _, resnet_cfg, resnet_weights = resnet18_files(work)
    models = [("yolov3-tiny 416", pydarknet.upstream_path("cfg/yolov3-tiny.cfg"), zoo.weights_path("yolov3-tiny")),
              ("ResNet-18 224", resnet_cfg, resnet_weights)]
    info = pydarknet.build_info()["features"]
    print(f"{gpu.name} (compute capability {gpu.capability}), {devices.cuda_versions()}; CPU: {platform.processor() or platform.machine()}, "
          f"{pydarknet.get_num_threads()} threads, backend {info['backend']}; median ms/image of {args.runs} predict() calls")
    print("| model | batch | GPU | CPU | CPU / GPU | GPU load s |")
    print("|---|---|---|---|---|---|")
    for name, cfg, weights in models:
        for batch in args.batches:
            start = time.perf_counter()
            on_gpu = pydarknet.Network(cfg, weights, batch=batch, device=args.device)
            load = time.perf_counter() - start
            on_cpu = pydarknet.Network(cfg, weights, batch=batch)
            x = np.random.default_rng(0).random((batch,) + on_gpu.input_shape, dtype=np.float32)
            with on_gpu, on_cpu:
                gpu_ms = np.median(forward_times(on_gpu.predict, x, args.runs)) * 1000
                cpu_ms = np.median(forward_times(on_cpu.predict, x, max(3, args.runs // 3))) * 1000
            print(f"| {name} | {batch} | {gpu_ms:.3f} | {cpu_ms:.2f} | {cpu_ms / gpu_ms:.1f} | {load:.2f} |", flush=True)


if __name__ == "__main__":
    main()
