"""Time loading and forward passes of one model with the installed pydarknet.

    python tools/bench_forward.py CFG [WEIGHTS] [--runs 5] [--batch 1]

Prints the load time and the median / min forward time per image over --runs
passes after one warm-up, on random input. (Not a test: numbers depend on the machine.)
"""

import argparse
import statistics
import time

import numpy as np

import pydarknet


def interleaved_times(runners: dict, x: np.ndarray, runs: int, block: int = 3) -> dict:
    """Seconds per image of ``runs`` calls of each runner(x) (x: an NCHW batch, or a list
    of the images one call takes). The runners
    take turns, ``block`` timed calls each, so that a busy spell of a shared machine
    slows all of them rather than whichever ran then; each turn starts with an untimed
    call, which also lets the previous runtime's worker threads stop spinning."""
    for run in runners.values():
        run(x)
    times = {name: [] for name in runners}
    while len(times[next(iter(runners))]) < runs:
        for name, run in runners.items():
            run(x)
            for _ in range(min(block, runs - len(times[name]))):
                start = time.perf_counter()
                run(x)
                times[name].append((time.perf_counter() - start) / len(x))
    return times


def paired_ratio(times: list, reference: list, block: int = 3) -> float:
    """Median over the turns of interleaved_times(..., block) of the ratio of the two
    runtimes' median times in that turn: a slow spell of the machine that lasts longer
    than a turn scales both sides of a ratio alike and drops out."""
    turns = range(0, min(len(times), len(reference)), block)
    return statistics.median(statistics.median(times[i:i + block]) / statistics.median(reference[i:i + block])
                             for i in turns)


def forward_times(run, x: np.ndarray, runs: int) -> list:
    """Seconds per image of ``runs`` calls run(x) after two warm-up calls (x is NCHW)."""
    return interleaved_times({"run": run}, x, runs, block=runs)["run"]


def random_batch(net: pydarknet.Network) -> np.ndarray:
    return np.random.default_rng(0).random((net.batch,) + net.input_shape, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cfg")
    parser.add_argument("weights", nargs="?")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    net = pydarknet.Network(args.cfg, args.weights, batch=args.batch)
    load_s = time.perf_counter() - start
    times = forward_times(net.predict, random_batch(net), args.runs)
    print(f"{net.cfg_path.name}: input {net.input_shape}, batch {args.batch}, {net.bflops:.3f} BFLOPs/image")
    print(f"load {load_s * 1000:.0f} ms; forward per image: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms over {args.runs} runs")
    info = pydarknet.build_info()
    print(f"build: {info['compiler']['version']}; features {info['features']}")


if __name__ == "__main__":
    main()
