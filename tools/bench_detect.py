"""End-to-end detect timings on yolov3-tiny: decode + letterbox + forward + boxes.

    python tools/bench_detect.py [--runs 3] [--batch 4]

Prints ms/image for detect() in a loop over upstream's sample images, and for
detect_batch() with a network of the given batch. (Not a test: machine dependent.)
"""

import argparse
import statistics

import pydarknet
from bench_forward import interleaved_times
from pydarknet.api import zoo
from pydarknet.runtime import samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    images = [str(samples.path(name)) for name in samples.names()]
    with zoo.load("yolov3-tiny") as single, zoo.load("yolov3-tiny", batch=args.batch) as batched:
        # the calls take turns run by run, so that drift in the machine's speed hits both
        times = interleaved_times({"loop": lambda ims: [pydarknet.detect(single, im) for im in ims],
                                   "batch": lambda ims: pydarknet.detect_batch(batched, ims)},
                                  images, args.runs, block=1)
        loop, batch = (statistics.median(times[name]) * 1000 for name in ("loop", "batch"))
    print(f"yolov3-tiny 416x416 on {len(images)} sample images, median of {args.runs} runs:")
    print(f"  detect() in a loop:          {loop:6.0f} ms/image")
    print(f"  detect_batch(), batch {args.batch}:     {batch:6.0f} ms/image  ({loop / batch:.2f}x the loop's throughput)")


if __name__ == "__main__":
    main()
