"""CPU speed of pydarknet against every peer, each runtime in its own process.

    pip install onnxruntime openvino "opencv-python-headless<5"    # the peers (optional)
    python tools/bench_cpu.py [--threads 2] [--runs 20] [--blocks 3] [--upstream]

Models, with the same weights in every runtime:
- ResNet-18-shaped classifier at 224x224 (random weights, real BN statistics), written
  as Caffe and converted with caffe2darknet;
- yolov3-tiny and yolov4-tiny at 416x416 with the official weights.
Each runs at batch 1 in: pydarknet float32 and int8 (``pydarknet quantize``, --method
max, calibrated on --calibrate, default upstream's seven sample images);
onnxruntime and OpenVINO on the ONNX file pydarknet's exporter writes (so all compute
the same graph); onnxruntime's static int8 of that file (QDQ, per channel, u8
activations, s8 weights, calibrated on the same images through the model's own
preprocessing) on onnxruntime and OpenVINO; OpenCV DNN on the Darknet files (the
Caffe files for ResNet-18); optionally upstream's unpatched C (its Makefile, -Ofast).

Each (runtime, model) runs in a fresh child process with the same thread count
(thread pools of several runtimes in one process steal from each other and move the
ratios by up to 30 %), in --blocks rounds that alternate the runtimes, so a busy
spell of a shared machine hits them all. Prints the median ms per image, pydarknet's
time over each peer's (the median over the blocks of the ratio within a block), and
the CPU and oneDNN's ISA and int8 kernel. (Not a test: numbers depend on the machine.)
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]  # our timing helpers, the tests' models

import pydarknet  # noqa: E402
from support.caffe_models import resnet18  # noqa: E402
from pydarknet.api import zoo  # noqa: E402
from pydarknet.source import upstream  # noqa: E402
from pydarknet.transforms import caffe_to_darknet as convert  # noqa: E402

FLOAT32 = ("pydarknet", "onnxruntime", "OpenVINO", "OpenCV DNN")
INT8 = ("pydarknet int8", "onnxruntime int8", "OpenVINO int8")


def resnet18_files(directory: Path):
    """The benchmark's ResNet-18 (random weights, real BN statistics) as Caffe files and
    converted to Darknet: (prototxt, caffemodel, cfg, weights) in ``directory``."""
    prototxt, caffemodel = resnet18(width=64, classes=1000, size=224).write(directory, "resnet18")
    convert.caffe_to_darknet(prototxt, caffemodel, directory / "resnet18")
    return prototxt, caffemodel, directory / "resnet18.cfg", directory / "resnet18.weights"


# -- the files each runtime reads ---------------------------------------------------


def calibration_inputs(cfg, weights, images):
    """The calibration images as the model's own preprocessing makes them (N, C, H, W)."""
    with pydarknet.Network(cfg, weights) as net:
        return np.stack([net.preprocess(image) for image in images])


def onnxruntime_int8(onnx_path: Path, inputs: np.ndarray, out: Path) -> Path:
    """onnxruntime's static int8 of the model: QDQ, per channel, calibrated on inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            import onnx
            name = onnx.load(str(onnx_path)).graph.input[0].name
            self.items = iter([{name: x[None]} for x in inputs])

        def get_next(self):
            return next(self.items, None)

    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def model_files(name: str, work: Path, images) -> dict:
    """Every file the runtimes read for model ``name``, written under ``work``, and its
    input shape."""
    from pydarknet.api.quantize import quantize

    work.mkdir(parents=True, exist_ok=True)
    files = {}
    if name == "ResNet-18 224":
        prototxt, caffemodel, cfg, weights = resnet18_files(work)
        files["prototxt"], files["caffemodel"] = str(prototxt), str(caffemodel)
    else:
        found = zoo.files(name.split()[0])
        cfg, weights = found.cfg, found.weights
    files["cfg"], files["weights"] = str(cfg), str(weights)
    with pydarknet.Network(cfg) as net:
        files["input"] = list(net.input_shape)  # (c, h, w), the same in every runtime
    pydarknet.export_onnx(str(cfg), str(weights), work / "model.onnx", batch=1)
    files["onnx"] = str(work / "model.onnx")
    written = quantize(cfg, weights, images, work / "int8").written
    files["int8 cfg"], files["int8 weights"] = str(written[0]), str(written[1])
    if importlib.util.find_spec("onnxruntime"):
        files["onnx int8"] = str(onnxruntime_int8(work / "model.onnx", calibration_inputs(cfg, weights, images),
                                                  work / "model.int8.onnx"))
    return files


# -- one runtime in one process ------------------------------------------------------


def runner(runtime: str, files: dict, threads: int):
    """A function running one batch-1 input through ``runtime``."""
    if runtime.startswith("pydarknet"):
        int8 = runtime.endswith("int8")
        pydarknet.set_num_threads(threads)
        net = pydarknet.Network(files["int8 cfg" if int8 else "cfg"], files["int8 weights" if int8 else "weights"],
                                precision="int8" if int8 else "float32")
        return net.predict
    onnx_path = files["onnx int8" if runtime.endswith("int8") else "onnx"]
    if runtime.startswith("onnxruntime"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    if runtime.startswith("OpenVINO"):
        import openvino

        # float32 arithmetic: OpenVINO's default on CPUs with bf16 (AVX512_BF16, AMX) is bf16
        compiled = openvino.Core().compile_model(onnx_path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                    "PERFORMANCE_HINT": "LATENCY",
                                                                    "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        return lambda x: request.infer([x])
    import cv2

    cv2.setNumThreads(threads)
    net = (cv2.dnn.readNetFromCaffe(files["prototxt"], files["caffemodel"]) if "prototxt" in files
           else cv2.dnn.readNetFromDarknet(files["cfg"], files["weights"]))
    names = net.getUnconnectedOutLayersNames()

    def run(x):
        net.setInput(x)
        return net.forward(names)
    return run


def child(runtime: str, files: dict, threads: int, runs: int) -> None:
    run = runner(runtime, files, threads)
    x = np.random.default_rng(0).random((1, *files["input"]), dtype=np.float32)
    for _ in range(3):
        run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": statistics.median(times) * 1000}))


def timed(runtime: str, files: dict, threads: int, runs: int):
    """Median ms of ``runtime`` in a child process, or None where it cannot run."""
    result = subprocess.run([sys.executable, __file__, "--child", runtime, json.dumps(files),
                             "--threads", str(threads), "--runs", str(runs)], capture_output=True, text=True)
    if result.returncode:
        print(f"{runtime}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'failed'}",
              file=sys.stderr)
        return None
    return json.loads(result.stdout.splitlines()[-1])["ms"]


UPSTREAM_CHILD = r"""
import ctypes, json, statistics, sys, time
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
lib.load_network.restype = ctypes.c_void_p
lib.load_network.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
lib.network_predict.restype = ctypes.POINTER(ctypes.c_float)
lib.network_predict.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float)]
start = time.perf_counter()
net = lib.load_network(sys.argv[2].encode(), sys.argv[3].encode(), 0)
load = time.perf_counter() - start
batch, runs = int(sys.argv[4]), int(sys.argv[5])
x = np.random.default_rng(0).random(batch * int(sys.argv[6]), dtype=np.float32)
pointer = x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
lib.network_predict(net, pointer)
times = []
for _ in range(runs):
    start = time.perf_counter()
    lib.network_predict(net, pointer)
    times.append(time.perf_counter() - start)
print(json.dumps({"ms": statistics.median(times) * 1000 / batch, "load_s": load}))
"""


def build_upstream(work: Path) -> Path:
    """Upstream's libdarknet.so from the verified pinned tree, with its own Makefile."""
    lib = work / "darknet" / "libdarknet.so"
    if lib.exists():
        return lib
    files, _ = upstream.resolve(work / "download", lambda message: None)
    upstream.write_tree(files, work / "darknet")
    (work / "darknet" / "obj").mkdir()  # made by the Makefile's `all` target, not by libdarknet.so's
    print("building upstream Darknet (its Makefile, CPU, -Ofast) ...", file=sys.stderr)
    subprocess.run(["make", "-j", str(os.cpu_count() or 1), "libdarknet.so"], cwd=work / "darknet", check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return lib


def upstream_ms(lib, files: dict, runs: int):
    """Unpatched upstream at batch 1 in a child process; None where it cannot run the model."""
    with tempfile.TemporaryDirectory() as work:
        cfg = Path(work) / "model.cfg"  # [flatten], which upstream lacks, as a one-layer [route]
        cfg.write_text(Path(files["cfg"]).read_text().replace("[flatten]\n", "[route]\nlayers=-1\n"))
        result = subprocess.run([sys.executable, "-c", UPSTREAM_CHILD, str(lib), str(cfg), files["weights"], "1",
                                 str(runs), str(int(np.prod(files["input"])))], capture_output=True, text=True)
    return json.loads(result.stdout.splitlines()[-1])["ms"] if result.returncode == 0 else None


# -- the table -----------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per child process")
    parser.add_argument("--blocks", type=int, default=5, help="rounds of every runtime in turn")
    parser.add_argument("--calibrate", nargs="+", help="calibration images (default: upstream's samples)")
    parser.add_argument("--models", default="ResNet-18 224,yolov3-tiny 416,yolov4-tiny 416")
    parser.add_argument("--upstream", action="store_true", help="also unpatched upstream (built once)")
    parser.add_argument("--child", nargs=2, metavar=("RUNTIME", "FILES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], json.loads(args.child[1]), args.threads, args.runs)
    images = args.calibrate or [str(pydarknet.samples.path(n)) for n in pydarknet.samples.names()]
    lib = build_upstream(ROOT / "build" / "bench-upstream") if args.upstream else None
    kernels = pydarknet.build_info()["onednn_kernels"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, model in enumerate(args.models.split(",")):
            files = model_files(model, Path(tmp) / str(number), images)
            runtimes = [r for r in FLOAT32 + INT8 if "int8" not in r or "onnx int8" in files or r.startswith("py")]
            times = {r: [] for r in runtimes}
            for _ in range(args.blocks):
                for runtime in runtimes:
                    times[runtime].append(timed(runtime, files, args.threads, args.runs))
            row = {"model": model}
            for runtime, values in times.items():
                if None not in values:
                    row[runtime] = statistics.median(values)
            for ours, peers in (("pydarknet", FLOAT32[1:] + INT8[1:]), ("pydarknet int8", FLOAT32[1:] + INT8[1:])):
                for peer in peers:
                    if ours in row and peer in row:
                        row[f"{ours} / {peer}"] = statistics.median(a / b for a, b in zip(times[ours], times[peer]))
            if lib is not None:
                row["upstream"] = upstream_ms(lib, files, max(3, args.runs // 4))
            rows.append(row)
            print(f"{model}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k in times and v), file=sys.stderr)
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, {args.threads} threads each, batch 1; oneDNN ISA "
          f"{kernels['isa']} (float32 {kernels['float32']}, int8 {kernels['int8']}); median ms/image of "
          f"{args.blocks} blocks x {args.runs} runs, each runtime in its own process")
    columns = [c for c in FLOAT32 + INT8 + ("upstream",) if any(row.get(c) for row in rows)]
    print("| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for row in rows:
        print(f"| {row['model']} | " + " | ".join(f"{row[c]:.1f}" if row.get(c) else "—" for c in columns) + " |")
    ratios = [k for k in rows[0] if " / " in k]
    print("\n| model | " + " | ".join(ratios) + " |\n|---|" + "---|" * len(ratios))
    for row in rows:
        print(f"| {row['model']} | " + " | ".join(f"{row[k]:.2f}" if k in row else "—" for k in ratios) + " |")


if __name__ == "__main__":
    main()
