"""Write a Darknet weights file with random values for a cfg (a fixture maker for
the tests and benchmarks: real-looking numbers without a trained model).

    python tests/support/random_weights.py CFG OUT.weights [--seed 0]
"""

import argparse
import math
from pathlib import Path

import numpy as np

import pydarknet
from pydarknet.formats.darknet import CURRENT_HEADER, Weights


def write_random_weights(net: "pydarknet.Network", path: Path, seed: int = 0, gain: float = 1.0) -> Path:
    """A Darknet 0.2.0 weights file, written by the format layer, with random values
    laid out as Darknet reads them (conv and deconv: biases, [scales, mean, variance],
    weights; connected: biases, weights, [scales, mean, variance]; batchnorm: scales,
    mean, variance; local: biases per output, weights), with positive variances so
    outputs stay finite. ``gain`` scales the weights' spread (He's at 1): below 1 for
    deep networks, whose activations would otherwise grow layer by layer."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in net.layers:
        n, bn = layer.filters, layer.batch_normalize
        norm = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)] if bn else []
        if layer.type in ("convolutional", "deconvolutional"):
            weights = rng.normal(0, gain * math.sqrt(2 / (layer.n_weights / n)), layer.n_weights)
            arrays = [rng.normal(0, 0.1, n), *norm, weights]
        elif layer.type == "connected":
            weights = rng.normal(0, math.sqrt(1 / (layer.n_weights / n)), layer.n_weights)
            arrays = [rng.normal(0, 0.1, n), weights, *norm]
        elif layer.type == "batchnorm":
            c = layer.input_shape[0]
            arrays = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)]
        elif layer.type == "local":  # a kernel per output position: fan-in = weights / outputs
            size = layer.n_params - layer.outputs
            arrays = [rng.normal(0, 0.1, layer.outputs), rng.normal(0, math.sqrt(2 * layer.outputs / size), size)]
        elif layer.n_params:
            raise NotImplementedError(f"random weights for {layer.type} layers")
        else:
            arrays = []
        assert sum(a.size for a in arrays) == layer.n_params
        layers.append(np.concatenate(arrays).astype(np.float32) if arrays else np.zeros(0, np.float32))
    Weights(CURRENT_HEADER, layers).write(path)
    assert path.stat().st_size == 20 + 4 * net.n_params
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cfg")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with pydarknet.Network(args.cfg) as net:
        write_random_weights(net, args.out, args.seed)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
