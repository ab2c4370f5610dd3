"""Forward time per image before and after folding batch normalization.

    python tools/bench_fold.py [--runs 9]

Models: yolov3-tiny with its official weights (from the zoo cache) and upstream's
resnet18.cfg with random weights. Each is loaded once, timed, folded in memory
(Network.fold_batchnorm, the same numbers as the fold_bn tool writes) and timed
again: medians of --runs passes in one process. (Not a test: numbers depend on the
machine.)
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' random weights

import pydarknet  # noqa: E402
from bench_forward import forward_times, random_batch  # noqa: E402
from pydarknet.api import zoo  # noqa: E402
from support.random_weights import write_random_weights  # noqa: E402


def models(work: Path):
    yield pydarknet.upstream_path("cfg/yolov3-tiny.cfg"), zoo.weights_path("yolov3-tiny")
    cfg = pydarknet.upstream_path("cfg/resnet18.cfg")
    with pydarknet.Network(cfg) as net:
        yield cfg, write_random_weights(net, work / "resnet18.weights")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    print(f"{'model':<16} {'BN layers':>9} {'before ms':>10} {'after ms':>9} {'change':>7}")
    with tempfile.TemporaryDirectory() as work:
        for cfg, weights in models(Path(work)):
            with pydarknet.Network(cfg, weights, fold_bn=False) as net:
                before = statistics.median(forward_times(net.predict, random_batch(net), args.runs)) * 1000
                folded = len(net.fold_batchnorm())
                after = statistics.median(forward_times(net.predict, random_batch(net), args.runs)) * 1000
            print(f"{Path(cfg).stem:<16} {folded:>9} {before:>10.1f} {after:>9.1f} {after / before - 1:>+7.1%}")
    print(f"median of {args.runs} runs each, batch 1; build features {pydarknet.build_info()['features']}")


if __name__ == "__main__":
    main()
