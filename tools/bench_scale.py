"""Throughput of detection over a folder: the CLI at batch 1 and 8, and Ray Data with
one and two actors (the same CPUs in all: threads x actors = this machine's cores).

    python tools/bench_scale.py [--images 200] [--model yolov3-tiny] [--runs 2]

The folder holds copies of upstream's sample images (their own sizes, 512-1280 pixels
wide), JPEG as they ship. Times are wall clock from the start of the command (CLI: a
process that loads the model, decodes, detects and writes JSON Lines to /dev/null) or
of the dataset's execution (Ray, cluster already up), best of --runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydarknet

SAMPLES = ("dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg", "person.jpg", "scream.jpg")


def make_folder(folder: Path, count: int) -> None:
    for i in range(count):
        name = SAMPLES[i % len(SAMPLES)]
        shutil.copy(pydarknet.upstream_path(f"data/{name}"), folder / f"{i:04d}-{name}")


def best(runs: int, measure) -> float:
    return min(measure() for _ in range(runs))


def cli_seconds(folder: Path, model: str, batch: int) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(folder), "--model", model, "--json",
                    "--batch", str(batch)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def ray_seconds(folder: Path, model: str, actors: int, cores: int) -> float:
    import ray

    import pydarknet.ray

    began = time.perf_counter()
    images = ray.data.read_images(str(folder), mode="RGB")
    found = images.map_batches(pydarknet.ray.Detector,
                               fn_constructor_kwargs={"model": model, "threads": max(1, cores // actors)},
                               compute=ray.data.ActorPoolStrategy(size=actors), batch_size=8,
                               num_cpus=cores / actors / 2)  # half: the reading tasks need some too
    rows = sum(1 for _ in found.iter_rows())
    assert rows == len(list(folder.iterdir()))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", default="yolov3-tiny")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    pydarknet.zoo.weights_path(args.model)  # fetched before any timing
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "images"
        folder.mkdir()
        make_folder(folder, args.images)
        print(f"{args.images} images, {args.model}, {cores} cores")
        for batch in (1, 8):
            seconds = best(args.runs, lambda: cli_seconds(folder, args.model, batch))
            print(f"  CLI, batch {batch}: {seconds:.1f} s, {args.images / seconds:.1f} images/s")
        import ray

        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for actors in (1, 2):
                seconds = best(args.runs, lambda: ray_seconds(folder, args.model, actors, cores))
                print(f"  Ray Data, {actors} actor(s) x {max(1, cores // actors)} threads: {seconds:.1f} s, "
                      f"{args.images / seconds:.1f} images/s")
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
