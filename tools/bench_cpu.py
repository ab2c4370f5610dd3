"""CPU speed of pydarknet against its peers, side by side in one run.

    pip install onnxruntime onnx "opencv-python-headless<5"    # the peers (optional)
    python tools/bench_cpu.py [--runs 15] [--threads N] [--backend cpu] [--no-upstream]

Models, with the same weights in every runtime:
- ResNet-18-shaped classifier at 224x224 (random weights, real BN statistics): written
  as Caffe (OpenCV DNN), converted with pydarknet's caffe2darknet (pydarknet, upstream)
  and written as ONNX from the same folded graph (onnxruntime);
- yolov3-tiny at 416x416 with the official weights: pydarknet, OpenCV DNN's Darknet
  importer, upstream; yolov4-tiny at 416x416 (official weights), without upstream,
  which cannot run it;
each at batch 1 and batch 8. The in-process runtimes take turns call by call (a busy
spell of a shared machine hits them all alike). Prints the median ms per image after warm-up,
pydarknet's time divided by each peer's (the median over the turns of that ratio within
a turn, so a slow spell drops out) and upstream's time divided by pydarknet's (the
speed-up), all runtimes on the same thread count.
Upstream unpatched Darknet (its own Makefile, -Ofast, single-threaded as it ships)
is built once under build/bench-upstream and timed in a child process, so its
-Ofast flush-to-zero setting cannot touch the other runtimes. Also prints load times
and the Python overhead of one predict() call on a tiny network.
(Not a test: numbers depend on the machine.)
"""

import argparse
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
from bench_forward import forward_times, interleaved_times, paired_ratio  # noqa: E402
from support.caffe_models import resnet18  # noqa: E402
from pydarknet.api import zoo
from pydarknet.source import upstream
from pydarknet.transforms import caffe_to_darknet as convert  # noqa: E402
from pydarknet.formats.caffe import blob_array, read_caffemodel, read_prototxt  # noqa: E402
from pydarknet.transforms.fold_caffe import Graph, fold_net  # noqa: E402


def median_ms(run, x, runs):
    """Median ms per image of run(x)."""
    return statistics.median(forward_times(run, x, runs)) * 1000


def resnet18_files(directory: Path):
    """The benchmark's ResNet-18 (random weights, real BN statistics) as Caffe files and
    converted to Darknet: (prototxt, caffemodel, cfg, weights) in ``directory``."""
    prototxt, caffemodel = resnet18(width=64, classes=1000, size=224).write(directory, "resnet18")
    convert.caffe_to_darknet(prototxt, caffemodel, directory / "resnet18")
    return prototxt, caffemodel, directory / "resnet18.cfg", directory / "resnet18.weights"


# -- the peers ---------------------------------------------------------------------


def onnx_from_folded_caffe(prototxt, caffemodel, path, batch):
    """The BN-folded Caffe ResNet as an ONNX graph (Conv, Relu, MaxPool, Add,
    GlobalAveragePool, Flatten, Gemm): the same weights onnxruntime then runs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    net, _ = fold_net(read_prototxt(prototxt), read_caffemodel(caffemodel))
    graph = Graph.build(net)
    nodes, inits, shape = [], [], list(net.input_shape[0].dim)
    tensor = {net.input[0]: net.input[0]}  # Caffe blob -> the ONNX tensor holding it now (in-place layers)

    def with_blobs(layer):
        """The layer's input tensor names plus its weight and bias, added as initializers."""
        names = [f"{layer.name}_w", f"{layer.name}_b"]
        inits.extend(numpy_helper.from_array(blob_array(b), n) for b, n in zip(layer.blobs, names))
        return [tensor[b] for b in layer.bottom] + names

    for layer in graph.layers:
        inputs, out = [tensor[b] for b in layer.bottom], [f"{layer.name}:out"]
        if layer.type == "Convolution":
            p = layer.convolution_param
            k, s, pad = p.kernel_size[0], (list(p.stride) or [1])[0], (list(p.pad) or [0])[0]
            nodes.append(helper.make_node("Conv", with_blobs(layer), out, kernel_shape=[k, k],
                                          strides=[s, s], pads=[pad] * 4, group=p.group))
        elif layer.type == "ReLU":
            nodes.append(helper.make_node("Relu", inputs, out))
        elif layer.type == "Pooling" and layer.pooling_param.global_pooling:
            nodes.append(helper.make_node("GlobalAveragePool", inputs, out))
        elif layer.type == "Pooling":
            p = layer.pooling_param
            nodes.append(helper.make_node("MaxPool", inputs, out, kernel_shape=[p.kernel_size] * 2,
                                          strides=[p.stride] * 2, pads=[p.pad] * 4, ceil_mode=1))
        elif layer.type == "Eltwise":
            nodes.append(helper.make_node("Add", inputs, out))
        elif layer.type == "Flatten":
            nodes.append(helper.make_node("Flatten", inputs, out, axis=1))
        elif layer.type == "InnerProduct":
            nodes.append(helper.make_node("Gemm", with_blobs(layer), out, transB=1))
        else:
            raise ValueError(f"no ONNX mapping here for {layer.type}")
        tensor[layer.top[0]] = out[0]
    shape[0] = batch
    model = helper.make_model(helper.make_graph(
        nodes, "resnet18", [helper.make_tensor_value_info(net.input[0], TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 13)], ir_version=8)  # readable by older onnxruntime too
    onnx.save(model, str(path))


def onnxruntime_runner(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def opencv_runner(net, threads):
    import cv2

    cv2.setNumThreads(threads)

    def run(x):
        net.setInput(x)
        return net.forward(net.getUnconnectedOutLayersNames())
    return run


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


def upstream_ms(lib, cfg, weights, batch, runs, inputs):
    """Run upstream in a child process (cfg rewritten for the batch; [flatten], which
    upstream lacks, as a one-layer [route]: the same copy, the same layer count)."""
    with tempfile.TemporaryDirectory() as work:
        text = Path(cfg).read_text().replace("batch=1\n", f"batch={batch}\n", 1)
        text = text.replace("[flatten]\n", "[route]\nlayers=-1\n")
        if f"batch={batch}" not in text:
            text = text.replace("[net]\n", f"[net]\nbatch={batch}\n", 1)
        batched = Path(work) / "model.cfg"
        batched.write_text(text)
        result = subprocess.run([sys.executable, "-c", UPSTREAM_CHILD, str(lib), str(batched), str(weights),
                                 str(batch), str(runs), str(inputs)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


# -- the table ---------------------------------------------------------------------


def pydarknet_runner(cfg, weights, batch, backend):
    start = time.perf_counter()
    net = pydarknet.Network(cfg, weights, batch=batch, backend=backend)
    return net, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--backend", choices=("cpu", "onednn"), help="pydarknet's (default: the build's best)")
    parser.add_argument("--no-upstream", action="store_true", help="skip the (slow) upstream baseline")
    args = parser.parse_args()
    pydarknet.set_num_threads(args.threads)
    work = ROOT / "build" / "bench-upstream"
    work.mkdir(parents=True, exist_ok=True)
    lib = None if args.no_upstream else build_upstream(work)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prototxt, caffemodel, resnet_cfg, resnet_weights = resnet18_files(tmp)
        yolo_cfg, yolo_weights = pydarknet.upstream_path("cfg/yolov3-tiny.cfg"), zoo.weights_path("yolov3-tiny")
        # the last field: whether unpatched upstream can run it (yolov4-tiny needs route groups)
        models = [("ResNet-18 224", resnet_cfg, resnet_weights, (3, 224, 224), True),
                  ("yolov3-tiny 416", yolo_cfg, yolo_weights, (3, 416, 416), True),
                  ("yolov4-tiny 416", zoo.get("yolov4-tiny").cfg_path(), zoo.weights_path("yolov4-tiny"),
                   (3, 416, 416), False)]
        for name, cfg, weights, shape, upstream_runs in models:
            for batch in (1, 8):
                x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
                row = {"model": name, "batch": batch}
                net, row["pydarknet load s"] = pydarknet_runner(cfg, weights, batch, args.backend)
                backend = net.backend
                runners = {"pydarknet": net.predict}
                try:
                    import cv2

                    start = time.perf_counter()
                    cv_net = (cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel)) if name.startswith("ResNet")
                              else cv2.dnn.readNetFromDarknet(str(cfg), str(weights)))
                    row["OpenCV load s"] = time.perf_counter() - start
                    runners["OpenCV DNN"] = opencv_runner(cv_net, args.threads)
                except ImportError:
                    pass
                if name.startswith("ResNet"):
                    try:
                        onnx_path = tmp / f"resnet18-{batch}.onnx"
                        onnx_from_folded_caffe(prototxt, caffemodel, onnx_path, batch)
                        runners["onnxruntime"] = onnxruntime_runner(onnx_path, args.threads)
                    except ImportError:
                        pass
                times = interleaved_times(runners, x, args.runs)
                for runtime in runners:
                    row[runtime] = statistics.median(times[runtime]) * 1000
                    row[f"{runtime} ratio"] = paired_ratio(times["pydarknet"], times[runtime])
                net.close()
                if lib is not None and upstream_runs:
                    result = upstream_ms(lib, cfg, weights, batch, max(3, args.runs // 5), int(np.prod(shape)))
                    row["upstream"], row["upstream load s"] = result["ms"], result["load_s"]
                rows.append(row)
                print(f"{name} batch {batch}: " + ", ".join(f"{k} {row[k]:.1f}" for k in [*runners, "upstream"]
                                                              if k in row), file=sys.stderr)
        tiny = tmp / "tiny.cfg"
        tiny.write_text("[net]\nwidth=1\nheight=1\nchannels=1\n\n[activation]\nactivation=linear\n")
        with pydarknet.Network(tiny) as net:
            overhead_us = median_ms(net.predict, np.zeros((1, 1, 1, 1), np.float32), 2000) * 1000

    peers = ["onnxruntime", "OpenCV DNN"]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
          f"pydarknet backend {backend} ({pydarknet.build_info()['features']['blas']}, oneDNN "
          f"{pydarknet.build_info()['features'].get('onednn')}); median ms/image of {args.runs} runs")
    print("| model | batch | pydarknet | " + " | ".join(peers) + " | upstream | " +
          " | ".join(f"pydarknet / {p}" for p in peers) + " | speed-up over upstream |")
    print("|---|---|---|" + "---|" * (2 * len(peers) + 2))
    for row in rows:
        times = [f"{row[p]:.1f}" if p in row else "—" for p in peers + ["upstream"]]
        ratios = [f"{row[p + ' ratio']:.2f}" if p in row else "—" for p in peers]
        speedup = f"{row['upstream'] / row['pydarknet']:.1f}x" if "upstream" in row else "—"
        print(f"| {row['model']} | {row['batch']} | {row['pydarknet']:.1f} | " + " | ".join(times) + " | "
              + " | ".join(ratios) + f" | {speedup} |")
    loads = {k: v for row in rows if row["batch"] == 1 for k, v in row.items() if "load" in k}
    print("load time (s, batch 1, last model): " + ", ".join(f"{k.replace(' load s', '')} {v:.2f}"
                                                           for k, v in loads.items()))
    print(f"predict() overhead on a 1x1x1 network: {overhead_us:.1f} µs per call")


if __name__ == "__main__":
    main()
