"""Forward-pass time on a shared CPU: pydarknet at its default thread count against one
thread, while other processes keep the cores busy.

    python tools/bench_shared_cpu.py [--busy 4] [--blocks 5] [--runs 30] [--model yolov3-tiny]
                                     [--env OMP_WAIT_POLICY=passive ...]

--busy N starts N processes that spin on the CPU for the whole run (4 on a 2-core
machine: two per core, as on a loaded shared host; 0: a quiet machine). Each
configuration (the default thread count, one thread, and the default under each --env
setting, e.g. a wait policy to compare) runs in its own process: it loads the model,
runs two untimed passes and times --runs passes at batch 1; the configurations take
turns, block after block, so that a slow spell hits them all. Prints, per
configuration, the median ms per pass over the blocks, the CPU seconds the process
used per pass (threads that spin while waiting use more), and the median over the
blocks of its time divided by one thread's, and by the default's, in that block.
(Not a test: numbers depend on the machine and its neighbours.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Dict, List

CHILD = r"""
import json, resource, sys, time
import numpy as np
import pydarknet
threads, runs, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if threads:
    pydarknet.set_num_threads(threads)
net = pydarknet.zoo.load(model)
x = np.random.default_rng(0).random((1,) + net.input_shape, dtype=np.float32)
for _ in range(2):
    net.predict(x)
cpu = resource.getrusage(resource.RUSAGE_SELF)
times = []
for _ in range(runs):
    start = time.perf_counter()
    net.predict(x)
    times.append(time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF)
used = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
print(json.dumps({"ms": sorted(times)[len(times) // 2] * 1000, "cpu_ms": used / runs * 1000,
                  "threads": pydarknet.get_num_threads(), "policy": pydarknet.thread_policy()}))
"""


def measure(threads: int, runs: int, model: str, env: Dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(runs), model], capture_output=True,
                          text=True, env=dict(os.environ, **env))
    if done.returncode:
        raise SystemExit(f"the measuring process failed:\n{done.stderr}")
    return json.loads(done.stdout)


def parse_env(text: str) -> Dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=VALUE[,NAME=VALUE]")
    return dict(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, default=4, help="processes that keep the CPU busy")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30, help="timed passes per configuration and block")
    parser.add_argument("--model", default="yolov3-tiny", help="a zoo model")
    parser.add_argument("--env", type=parse_env, action="append", default=[],
                        help="NAME=VALUE[,...]: also run the default thread count with these variables")
    args = parser.parse_args()

    configs = {"default threads": (0, {}), "one thread": (1, {})}
    for env in args.env:
        configs["default, " + ",".join(f"{k}={v}" for k, v in env.items())] = (0, env)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        results: Dict[str, List[dict]] = {name: [] for name in configs}
        for _ in range(args.blocks):
            for name, (threads, env) in configs.items():
                results[name].append(measure(threads, args.runs, args.model, env))
    finally:
        for process in busy:
            process.kill()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.busy} busy processes, "
          f"{args.model} batch 1, {args.blocks} blocks of {args.runs} passes")
    print(f"{'configuration':44} {'threads':>7} {'ms/pass':>8} {'CPU ms/pass':>11} {'/ one thread':>12} "
          f"{'/ default':>9}  wait policy")

    def ratio(ms: List[float], reference: str) -> float:
        return statistics.median(m / r["ms"] for m, r in zip(ms, results[reference]))

    for name, runs in results.items():
        ms = [r["ms"] for r in runs]
        print(f"{name:44} {runs[0]['threads']:>7} {statistics.median(ms):>8.1f} "
              f"{statistics.median(r['cpu_ms'] for r in runs):>11.1f} {ratio(ms, 'one thread'):>12.2f} "
              f"{ratio(ms, 'default threads'):>9.2f}  {runs[0]['policy']['wait']}")


if __name__ == "__main__":
    main()
