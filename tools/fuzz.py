#!/usr/bin/env python3
"""Coverage-guided fuzzing of everything pydarknet reads from outside, with atheris.

    python tools/fuzz.py seed DIR                   # write the seed corpus: DIR/TARGET/*
    python tools/fuzz.py fuzz TARGET DIR [-atheris_runs=N -max_len=N ...]   # libFuzzer flags
    python tools/fuzz.py replay TARGET FILE|DIR ...  # run inputs once (no atheris needed)
    python tools/fuzz.py smoke TARGET DIR N SEED     # N seeded random mutations of DIR's inputs

Targets (``TARGETS``): cfg text, weights bytes against a fixed cfg, Caffe prototxt and
caffemodel, ONNX models, the .json a converter writes next to a cfg, encoded image
bytes, in-memory image arrays, and detect() arguments. Each
turns the fuzzer's bytes into one input and runs it through the public API. A typed
error (``DarknetError``, ``ValueError``, ``TypeError``; for the ONNX reader and the
model .json only ``DarknetError``, see ``STRICT``) is a correct answer; any other
exception, a signal or a sanitizer report is a finding.

Native code is checked by a sanitizer build (``PYDARKNET_SANITIZE=1 pip install .``) run
with the sanitizer runtimes preloaded, since the interpreter itself is not instrumented:

    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \\
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 python tools/fuzz.py fuzz cfg corpus

(allocator_may_return_null: pydarknet turns failed allocations into OutOfMemoryError,
which is what is under test; leaks are the interpreter's own.) Coverage guidance comes
from atheris's instrumentation of pydarknet's Python code and of the inputs' paths
through it; gcc cannot emit the coverage libFuzzer reads from the C code.

The corpus in ``tests/fuzz_corpus`` (seeds, what fuzzing kept, and every input that
found a bug, named ``crash-*``) is replayed by the test suite, with seeded mutations.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # the tests' random weights and Caffe models

# Every network the fuzzer builds is small: a budget keeps one absurd input from taking
# the machine (and makes "too large" a quick, typed answer).
MEMORY = 64 * 2**20
# Forward passes only on networks this cheap (the fuzzer wants many executions).
MAX_BFLOPS = 0.05


@functools.lru_cache(maxsize=None)
def _scratch() -> Path:
    folder, owner = Path(tempfile.mkdtemp(prefix="pydarknet-fuzz-")), os.getpid()
    # Gone when the process that made it ends (a forked child shares it and leaves it).
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
    return folder


#: Targets whose every refusal must be the surface's own typed error (it names the
#: file and the node or key): a bare ValueError there is a finding.
STRICT = ("onnx", "model-json")


def _expected(target: str = ""):
    import pydarknet

    return (pydarknet.DarknetError,) if target in STRICT else (pydarknet.DarknetError, ValueError, TypeError)


def _run_network(net) -> None:
    if net.bflops <= MAX_BFLOPS and np.prod(net.input_shape) <= 2**20:
        net.predict(np.full((net.batch, *net.input_shape), 0.5, np.float32))


TINY_DETECTOR = """\
[net]
batch=1
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=21
size=1
stride=1
activation=linear

[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,14
classes=2
num=3
"""

WEIGHTS_CFG = """\
[net]
batch=1
width=8
height=8
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[batchnorm]

[connected]
output=5
activation=linear

[softmax]
"""


@functools.lru_cache(maxsize=None)
def _fixture(name: str) -> Path:
    """A cfg (and random weights for it) the argument targets share."""
    import pydarknet
    from support.random_weights import write_random_weights

    text = {"detector": TINY_DETECTOR, "weights": WEIGHTS_CFG}[name]
    cfg = _scratch() / f"{name}.cfg"
    cfg.write_text(text)
    with pydarknet.Network(cfg) as net:
        write_random_weights(net, _scratch() / f"{name}.weights", seed=0)
    return cfg


@functools.lru_cache(maxsize=None)
def _detector():
    import pydarknet

    cfg = _fixture("detector")
    return pydarknet.Network(cfg, cfg.with_suffix(".weights"))


@functools.lru_cache(maxsize=None)
def _caffe_pair():
    from support.caffe_models import NetBuilder

    b = NetBuilder(shape=(3, 8, 8), seed=1)
    b.conv("conv1", "data", "conv1", 4)
    b.batch_norm("bn1", "conv1", "conv1")
    b.scale("scale1", "conv1", "conv1")
    b.simple("relu1", "ReLU", ["conv1"], "conv1")
    b.simple("pool1", "Pooling", ["conv1"], "pool1", pooling_param__pool=0, pooling_param__kernel_size=2,
             pooling_param__stride=2)
    b.conv("conv2", "pool1", "conv2", 4)
    b.simple("sum", "Eltwise", ["pool1", "conv2"], "sum")
    b.inner_product("ip", "sum", "ip", 5)
    b.simple("prob", "Softmax", ["ip"], "prob")
    return b.write(_scratch(), "caffe")


# -- targets: bytes -> one run through the API ---------------------------------------

def target_cfg(data: bytes) -> None:
    import pydarknet

    path = _scratch() / "fuzz.cfg"
    path.write_bytes(data)
    with pydarknet.Network(path, max_memory=MEMORY) as net:
        _run_network(net)


def target_weights(data: bytes) -> None:
    import pydarknet

    path = _scratch() / "fuzz.weights"
    path.write_bytes(data)
    for fold_bn in (True, False):
        with pydarknet.Network(_fixture("weights"), path, fold_bn=fold_bn, max_memory=MEMORY) as net:
            _run_network(net)


def _convert(prototxt: Path, caffemodel: Path) -> None:
    from pydarknet.transforms import caffe_to_darknet as convert
    from pydarknet.transforms.fold_caffe import fold

    out = _scratch() / "converted"
    convert.caffe_to_darknet(prototxt, caffemodel, out)
    fold(prototxt, caffemodel, _scratch() / "folded.prototxt", _scratch() / "folded.caffemodel")


def target_prototxt(data: bytes) -> None:
    path = _scratch() / "fuzz.prototxt"
    path.write_bytes(data)
    _convert(path, _caffe_pair()[1])


def target_caffemodel(data: bytes) -> None:
    path = _scratch() / "fuzz.caffemodel"
    path.write_bytes(data)
    _convert(_caffe_pair()[0], path)


def target_onnx(data: bytes) -> None:
    from pydarknet.transforms import onnx_to_darknet

    path = _scratch() / "fuzz.onnx"
    path.write_bytes(data)
    onnx_to_darknet.onnx_to_darknet(path, _scratch() / "from-onnx")


def target_model_json(data: bytes) -> None:
    """The bytes as the .json next to a converted model's cfg: loaded with it, then
    applied to an image by preprocess() and classify()."""
    import pydarknet

    cfg = _fixture("weights")
    (cfg.with_suffix(".json")).write_bytes(data)
    try:
        with pydarknet.Network(cfg, cfg.with_suffix(".weights"), max_memory=MEMORY) as net:
            image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
            net.preprocess(image)
            pydarknet.classify(net, image)
    finally:
        cfg.with_suffix(".json").unlink()


def _onnx_seed() -> bytes:
    """A small ONNX model with most of the operators the importer maps."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((4, 3, 3, 3)), "s": np.ones(4), "b": np.zeros(4), "m": np.zeros(4),
              "v": np.ones(4), "ps": np.linspace(0, 0.3, 4).reshape(4, 1, 1), "lo": np.array(0), "hi": np.array(6),
              "g": rng.standard_normal((5, 8)),
              "up": np.array([1, 1, 2, 2])}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Sigmoid", ["n"], ["sg"]), helper.make_node("Mul", ["n", "sg"], ["a"]),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("PRelu", ["p", "ps"], ["pr"]), helper.make_node("LeakyRelu", ["pr"], ["lr"]),
             helper.make_node("Clip", ["lr", "lo", "hi"], ["cl"]), helper.make_node("HardSigmoid", ["cl"], ["hs"]),
             helper.make_node("Resize", ["hs", "", "up"], ["r"], mode="nearest"),
             helper.make_node("Concat", ["r", "a"], ["cat"], axis=1),
             helper.make_node("GlobalAveragePool", ["cat"], ["gp"]), helper.make_node("Flatten", ["gp"], ["f"]),
             helper.make_node("Shape", ["f"], ["sh"]),
             helper.make_node("Reshape", ["f", "sh"], ["rf"]),
             helper.make_node("Gemm", ["rf", "g"], ["y0"], transB=1), helper.make_node("Softmax", ["y0"], ["y"])]
    graph = helper.make_graph(nodes, "seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(v.astype(np.int64 if k == "up" else np.float32), k)
                               for k, v in arrays.items()])
    graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up"))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def target_image_bytes(data: bytes) -> None:
    import pydarknet

    image = pydarknet.load_image(data, max_pixels=2**16)  # larger ones: refused from the header
    _detector().detect_raw([image])


def target_image_array(data: bytes) -> None:
    """Bytes 0-6 choose dtype, rank (2-4), dims (0-16) and channel order; the rest,
    repeated as needed, are the values."""
    import pydarknet

    if len(data) < 7:
        return
    dtype = np.dtype((np.uint8, np.float32, np.float64, np.int16)[data[0] % 4])
    shape = tuple(d % 17 for d in data[2:2 + 2 + data[1] % 3])
    size = int(np.prod(shape)) * dtype.itemsize
    values = np.frombuffer(_filled(data[7:], size), dtype=dtype).reshape(shape)
    image = pydarknet.load_image(values, channel_order=("RGB", "BGR", "XYZ")[data[6] % 3])
    _detector().detect_raw([image])


def _filled(body: bytes, size: int) -> bytes:
    """``size`` bytes: ``body`` repeated (zeros if it is empty)."""
    return (body * (size // len(body) + 1))[:size] if body else bytes(size)


def target_detect_args(data: bytes) -> None:
    """Thresholds from the bytes (NaN, infinities and negatives included), a batch of
    images, and an annotate argument of the wrong length, type or with a repeated path."""
    import pydarknet

    if len(data) < 32:
        return
    floats = np.frombuffer(data[:24], dtype=np.float64)
    thresh, hier, nms = (float(v) for v in floats)
    count = data[24] % 4
    side = 1 + data[25] % 40
    pixels = np.frombuffer(_filled(data[32:], side * side * 3), dtype=np.uint8).reshape(side, side, 3)
    images = [pixels] * count
    choice = data[26] % 5
    folder = _scratch()
    annotate = (None, [str(folder / "a")] * count, [str(folder / "a")], str(folder / "b"),
                [None] * count)[choice]
    pydarknet.detect_batch(_detector(), images, thresh=thresh, hier_thresh=hier, nms=nms, annotate=annotate)
    for leftover in folder.glob("*.jpg"):
        leftover.unlink()


TARGETS: Dict[str, Callable[[bytes], None]] = {
    "cfg": target_cfg,
    "weights": target_weights,
    "prototxt": target_prototxt,
    "caffemodel": target_caffemodel,
    "onnx": target_onnx,
    "model-json": target_model_json,
    "image-bytes": target_image_bytes,
    "image-array": target_image_array,
    "detect-args": target_detect_args,
}


def run_one(target: str, data: bytes) -> None:
    """One input: typed errors are answers, anything else propagates as a finding."""
    try:
        TARGETS[target](data)
    except _expected(target):
        pass


# -- seeds ---------------------------------------------------------------------------

SEED_LAYERS = [
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n",
    "[convolutional]\nfilters=4\nsize=3\nstride=2\npadding=1\ngroups=1\nactivation=relu\n",
    "[maxpool]\nsize=2\nstride=2\n",
    "[avgpool]\n",
    "[connected]\noutput=5\nactivation=linear\n",
    "[softmax]\ngroups=1\n",
    "[route]\nlayers=-1\n",
    "[shortcut]\nfrom=-1\nactivation=linear\n",
    "[upsample]\nstride=2\n",
    "[reorg]\nstride=2\n",
    "[crop]\ncrop_height=4\ncrop_width=4\n",
    "[local]\nfilters=2\nsize=3\nstride=1\npad=1\n",
    "[deconvolutional]\nfilters=2\nsize=2\nstride=2\n",
    "[batchnorm]\n",
    "[dropout]\nprobability=.5\n",
    "[lrn]\nsize=3\n",
    "[l2norm]\n",
    "[logistic]\n",
    "[activation]\nactivation=tanh\n",
    "[flatten]\n",
    "[cost]\ntype=sse\n",
    "[crnn]\noutput_filters=2\nhidden_filters=2\n",
    "[rnn]\noutput=4\n",
    "[gru]\noutput=4\n",
    "[lstm]\noutput=4\n",
]


def write_seeds(directory: Path) -> None:
    """A few inputs per target that reach deep into its code (the fuzzer mutates them)."""
    from support.caffe_models import NetBuilder

    def put(target: str, name: str, data: bytes) -> None:
        folder = directory / target
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    net = "[net]\nbatch=1\nwidth=8\nheight=8\nchannels=4\n\n"
    for index, layer in enumerate(SEED_LAYERS):
        put("cfg", f"layer{index:02d}.cfg", (net + "[convolutional]\nfilters=4\nsize=1\n\n" + layer).encode())
    put("cfg", "detector.cfg", TINY_DETECTOR.encode())
    put("cfg", "region.cfg", (net + "[convolutional]\nfilters=35\nsize=1\n\n[region]\nclasses=2\ncoords=4\n"
                                    "num=5\nanchors=1,1,2,2,3,3,4,4,5,5\n").encode())
    put("cfg", "steps.cfg", ("[net]\nwidth=8\nheight=8\nchannels=3\npolicy=steps\nsteps=1,2\nscales=.1,.1\n\n"
                             "[maxpool]\nsize=2\nstride=2\n").encode())
    weights = _fixture("weights").with_suffix(".weights").read_bytes()
    put("weights", "valid.weights", weights)
    put("weights", "old-header.weights", np.array([0, 1, 0, 0], "<i4").tobytes() + weights[20:])
    prototxt, caffemodel = _caffe_pair()
    put("prototxt", "valid.prototxt", prototxt.read_bytes())
    put("caffemodel", "valid.caffemodel", caffemodel.read_bytes())
    b = NetBuilder(shape=(3, 8, 8), seed=2, input_style="Input")
    b.conv("deconv", "data", "deconv", 3, kernel=2, stride=2, deconv=True)
    b.simple("concat", "Concat", ["deconv", "deconv"], "concat")
    put("prototxt", "input-layer.prototxt", b.write(_scratch(), "seed2")[0].read_bytes())
    put("onnx", "seed.onnx", _onnx_seed())
    for fixture in ("depthwise_silu.onnx", "with_dynamo.onnx"):  # the TorchScript and the dynamo exporter
        put("onnx", fixture, (HERE.parent / "tests/onnx" / fixture).read_bytes())
    put("model-json", "caffe.json", b'{"preprocessing": {"channel_order": "BGR", "pixel_range": 255, '
                                    b'"mean": [104, 117, 123], "scale": [1, 1, 1], "resize": "stretch"}}')
    put("model-json", "short.json", b'{"preprocessing": {"mean": 0.5, "scale": [2], "resize": "letterbox"}}')
    from PIL import Image
    import io

    for fmt in ("PNG", "JPEG", "BMP"):
        buffer = io.BytesIO()
        Image.fromarray(np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3)).save(buffer, fmt)
        put("image-bytes", f"small.{fmt.lower()}", buffer.getvalue())
    put("image-array", "uint8", bytes([0, 1, 4, 5, 3, 0, 1]) + bytes(range(200)))
    put("image-array", "float32", bytes([1, 1, 3, 4, 5, 0, 0]) + np.linspace(0, 1, 60, dtype=np.float32).tobytes())
    args = np.array([0.25, 0.5, 0.45], np.float64).tobytes() + bytes([2, 16, 0]) + bytes(5)
    put("detect-args", "two-images", args + bytes(range(256)))


# -- command line ----------------------------------------------------------------------

def replay(target: str, paths) -> int:
    files = [f for p in map(Path, paths) for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
    for path in files:
        run_one(target, path.read_bytes())
    print(f"{target}: {len(files)} inputs replayed, no finding")
    return 0


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits: flip a byte, insert or delete a run, repeat a chunk."""
    data = bytearray(data)
    for _ in range(rng.integers(1, 5)):
        where = int(rng.integers(0, len(data) + 1))
        kind = rng.integers(0, 4)
        if kind == 0 and data:
            data[min(where, len(data) - 1)] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            data[where:where] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif kind == 2:
            del data[where:where + int(rng.integers(1, 9))]
        else:
            data[where:where] = data[max(0, where - 16):where] * int(rng.integers(1, 4))
    return bytes(data)


def smoke(target: str, directory: str, count: int, seed: int) -> int:
    """``count`` random mutations of the inputs in ``directory``, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    inputs = [f.read_bytes() for f in sorted(Path(directory).iterdir())]
    for _ in range(count):
        run_one(target, mutate(inputs[int(rng.integers(0, len(inputs)))], rng))
    print(f"{target}: {count} mutations run, no finding")
    return 0


def fuzz(target: str, libfuzzer_args) -> int:
    import atheris

    with atheris.instrument_imports(include=["pydarknet"]):
        import pydarknet  # noqa: F401
        import pydarknet.transforms.caffe_to_darknet  # noqa: F401
        import pydarknet.transforms.onnx_to_darknet  # noqa: F401
        import pydarknet.transforms.fold_caffe  # noqa: F401
        import pydarknet.api.inference  # noqa: F401
    run = functools.partial(run_one, target)
    # libFuzzer runs this script again with its own flags alone (-merge=1, -fork=N)
    os.environ[TARGET_VARIABLE] = target
    atheris.Setup([sys.argv[0], *libfuzzer_args], run)
    atheris.Fuzz()
    return 0


TARGET_VARIABLE = "PYDARKNET_FUZZ_TARGET"


def main(argv) -> int:
    commands = ("seed", "fuzz", "replay", "smoke")
    if os.environ.get(TARGET_VARIABLE) in TARGETS and not (argv and argv[0] in commands):
        return fuzz(os.environ[TARGET_VARIABLE], argv)  # libFuzzer's own re-run (see fuzz())
    if len(argv) >= 2 and argv[0] == "seed":
        write_seeds(Path(argv[1]))
        return 0
    if len(argv) == 5 and argv[0] == "smoke" and argv[1] in TARGETS:
        return smoke(argv[1], argv[2], int(argv[3]), int(argv[4]))
    if len(argv) >= 3 and argv[0] in ("fuzz", "replay") and argv[1] in TARGETS:
        return fuzz(argv[1], argv[2:]) if argv[0] == "fuzz" else replay(argv[1], argv[2:])
    print(__doc__.split("\n\n")[1], "\ntargets:", ", ".join(TARGETS), "\ngot:", argv, file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYDARKNET_NUM_THREADS", "1")  # one thread per fuzzing process
    sys.exit(main(sys.argv[1:]))
