"""Devices: "cpu", "cuda", "cuda:N" (GPU builds, PYDARKNET_GPU=1).

The first tests run everywhere: a build without CUDA, or a machine without a GPU,
refuses a GPU network with DeviceError. The rest need a visible GPU and skip with
the reason elsewhere; they compare the GPU against the CPU path of the same build
(which itself reproduces upstream's reference detections, test_inference.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from conftest import random_input, write_model, write_random_weights
from pydarknet.api import zoo
from pydarknet.runtime import devices, samples

GPU_BUILD = pydarknet.build_info()["features"]["gpu"]
GPUS = pydarknet.cuda_device_count()
needs_gpu = pytest.mark.skipif(GPUS == 0, reason="no CUDA device visible" if GPU_BUILD
                               else "this build has no CUDA (PYDARKNET_GPU=1)")


# -- everywhere -----------------------------------------------------------------------

def test_device_names_are_checked(tiny_cfg):
    assert [devices.device_index(d) for d in ("cpu", "cuda", "cuda:0", "CUDA:3")] == [-1, 0, 0, 3]
    for bad in ("gpu", "cuda:", "cuda:-1", "cpu:0", "cuda:x"):
        with pytest.raises(ValueError, match="choose 'cpu', 'cuda' or 'cuda:N'"):
            pydarknet.Network(tiny_cfg, device=bad)
    with pytest.raises(TypeError, match="device must be"):
        pydarknet.Network(tiny_cfg, device=0)


def test_cpu_is_the_default_device(tiny_cfg):
    with pydarknet.Network(tiny_cfg) as net:
        assert net.device == "cpu" and net.backend != "cuda" and "device=" not in repr(net)


@pytest.mark.skipif(GPUS > 0, reason="this machine has a GPU")
def test_no_gpu_is_a_device_error_never_a_cpu_run(tiny_cfg):
    assert GPUS == 0 and devices.cuda_devices() == []
    expected = "no CUDA device is visible" if GPU_BUILD else "this pydarknet build has no CUDA.*PYDARKNET_GPU=1"
    for device in ("cuda", "cuda:1"):
        with pytest.raises(pydarknet.DeviceError, match=expected):
            pydarknet.Network(tiny_cfg, device=device)
    with pytest.raises(pydarknet.DeviceError):
        pydarknet.detect("yolov3-tiny", samples.path("dog.jpg"), device="cuda")


def test_a_network_is_used_where_it_is(tiny_cfg, tiny_weights):
    net = pydarknet.Network(tiny_cfg, tiny_weights)
    with pytest.raises(ValueError, match="this Network runs on cpu"):
        pydarknet.classify(net, samples.path("dog.jpg"), device="cuda:0")
    assert pydarknet.classify(net, samples.path("dog.jpg"), device="cpu")


def test_cli_device_option_reports_a_missing_gpu():
    if GPUS:
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, "-m", "pydarknet", "info", "yolov3-tiny", "--device", "cuda"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "pydarknet: error:" in done.stderr and "CUDA" in done.stderr


@pytest.mark.skipif(not GPU_BUILD, reason="this build has no CUDA (PYDARKNET_GPU=1)")
def test_gpu_build_links_its_libraries_and_carries_device_code():
    """The installed extension (not a checkout's copy): every library resolves through
    its run path, without LD_LIBRARY_PATH, and it holds GPU machine code."""
    find = "import importlib.util; print(importlib.util.find_spec('pydarknet._darknet').origin)"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    extension = subprocess.run([sys.executable, "-c", find], capture_output=True, text=True, cwd="/",
                               env=env).stdout.strip()
    ldd = subprocess.run(["ldd", extension], capture_output=True, text=True, env=env).stdout
    resolved = dict(line.strip().split(" => ", 1) for line in ldd.splitlines() if " => " in line)
    for library in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudnn.so.9"):
        assert library in resolved and "not found" not in resolved[library], ldd
    assert "libcuda.so" not in ldd  # the driver is loaded by the runtime, if there is one
    assert ".nv_fatbin" in elf_sections(extension)
    features = pydarknet.build_info()["features"]
    assert features["cuda"]["cuda_runtime"] and features["cuda"]["cudnn"] and features["cuda_arch"]


def elf_sections(path):
    """The section names of an ELF64 little-endian file (no binutils needed)."""
    import struct

    data = Path(path).read_bytes()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def header(i):
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)  # name, type, flags, addr, offset, size
    names_offset = header(shstrndx)[4]
    return {data[names_offset + header(i)[0]:].split(b"\0", 1)[0].decode() for i in range(shnum)}


# -- on a GPU -----------------------------------------------------------------------

def both(cfg, weights=None, **options):
    """The same files loaded on the CPU and on the first GPU."""
    return (pydarknet.Network(cfg, weights, device="cpu", **options),
            pydarknet.Network(cfg, weights, device="cuda", **options))


def assert_close_to_range(gpu, cpu, fraction):
    spread = float(cpu.max() - cpu.min()) or 1.0
    worst = float(np.abs(gpu - cpu).max())
    assert worst <= fraction * spread, f"GPU differs by {worst:.3g}, {worst / spread:.2e} of the range"


@needs_gpu
def test_gpu_network_reports_its_device(tiny_cfg):
    with pydarknet.Network(tiny_cfg, device="cuda") as net:
        assert net.device == "cuda:0" and net.backend == "cuda" and "device=cuda:0" in repr(net)
    name = devices.cuda_devices()[0]
    assert name.index == 0 and name.name and float(name.capability) >= 7.5
    versions = devices.cuda_versions()
    assert versions["cuda_runtime"] and versions["cuda_driver"] and versions["cudnn"]
    with pytest.raises(pydarknet.DeviceError, match=f"cuda:{GPUS}: this machine has {GPUS} CUDA device"):
        pydarknet.Network(tiny_cfg, device=f"cuda:{GPUS}")


@needs_gpu
def test_cli_runs_on_the_gpu(official):
    done = subprocess.run([sys.executable, "-m", "pydarknet", "info", "yolov3-tiny", "--device", "cuda"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    gpu = devices.cuda_devices()[0]
    assert f"on cuda:0 ({gpu.name}, compute capability {gpu.capability})" in done.stdout
    done = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(samples.path("dog.jpg")),
                           "--device", "cuda:0", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(row) for row in done.stdout.splitlines()]
    assert sorted(d["label"] for d in record["detections"]) == ["bicycle", "car", "car", "dog", "truck"]


@needs_gpu
def test_yolov3_tiny_detections_are_the_cpus(official):
    cfg, weights = official
    names = pydarknet.upstream_path(zoo.get("yolov3-tiny").names)
    cpu, gpu = both(cfg, weights, names=names)
    with cpu, gpu:
        for image in ("dog.jpg", "person.jpg", "horses.jpg", "eagle.jpg"):
            a = pydarknet.detect(cpu, samples.path(image))
            b = pydarknet.detect(gpu, samples.path(image))
            assert [d.label for d in b] == [d.label for d in a], image
            for x, y in zip(a, b):
                assert abs(x.confidence - y.confidence) < 1e-3
                assert np.allclose(x.box, y.box, atol=0.5)  # pixels


@needs_gpu
def test_a_stated_preprocessing_applies_on_the_gpu(official, tmp_path):
    """yolov3-tiny with a .json stating BGR, 0-255, a mean and a scale (the scale
    undoes the range): the same input and detections on the GPU as on the CPU."""
    cfg = tmp_path / "stated.cfg"
    cfg.write_text(Path(official[0]).read_text())
    stated = {"channel_order": "BGR", "pixel_range": 255, "mean": [10, 20, 30], "scale": [1 / 255] * 3}
    (tmp_path / "stated.json").write_text(json.dumps({"preprocessing": stated}))
    cpu, gpu = both(cfg, official[1], names=pydarknet.upstream_path(zoo.get("yolov3-tiny").names))
    with cpu, gpu:
        assert gpu.preprocessing == cpu.preprocessing and cpu.preprocessing.channel_order == "BGR"
        image = samples.path("dog.jpg")
        assert np.array_equal(gpu.preprocess(image), cpu.preprocess(image))
        a, b = pydarknet.detect(cpu, image), pydarknet.detect(gpu, image)
        assert [d.label for d in b] == [d.label for d in a] and a
        for x, y in zip(a, b):
            assert abs(x.confidence - y.confidence) < 1e-3 and np.allclose(x.box, y.box, atol=0.5)


@needs_gpu
def test_resnet18_outputs_within_a_thousandth_of_the_range(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from bench_cpu import resnet18_files

    _, _, cfg, weights = resnet18_files(tmp_path)
    x = random_input((2, 3, 224, 224), seed=4)
    cpu, gpu = both(cfg, weights, batch=2)
    with cpu, gpu:
        assert_close_to_range(gpu.predict(x), cpu.predict(x), 1e-3)
        assert_close_to_range(gpu.predict(x[0]), cpu.predict(x[0]), 1e-3)  # a smaller batch than loaded


NET = "[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n"
CONV = "[convolutional]\nfilters={n}\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n\n"
# One small network per layer type that has GPU code, each after a convolution (so
# that there are weights), but [crop], which reads an RGB image (its GPU code scales
# the first three channels in place); FLATTEN is ours (patch flatten-layer).
CROP = "[crop]\ncrop_height=6\ncrop_width=6\nflip=0\nangle=0\nsaturation=1\nexposure=1\n\n"
LAYER_CASES = {
    "convolutional groups": "[convolutional]\nfilters=8\nsize=3\ngroups=2\nstride=2\npad=1\nactivation=relu\n\n",
    "deconvolutional": "[deconvolutional]\nfilters=4\nsize=2\nstride=2\nbatch_normalize=1\nactivation=leaky\n\n",
    "maxpool": "[maxpool]\nsize=3\nstride=2\n\n",
    "avgpool + connected + softmax": "[avgpool]\n\n[connected]\noutput=6\nactivation=tanh\n\n[softmax]\n\n",
    "flatten + connected": "[flatten]\n\n[connected]\noutput=5\nbatch_normalize=1\nactivation=logistic\n\n",
    "shortcut": CONV.format(n=8) + "[shortcut]\nfrom=-2\nactivation=linear\n\n",
    "route + upsample": "[maxpool]\nsize=2\nstride=2\n\n[upsample]\nstride=2\n\n[route]\nlayers=-1,-3\n\n",
    "reorg": "[reorg]\nstride=2\n\n",
    "batchnorm + activation": "[batchnorm]\n\n[activation]\nactivation=elu\n\n",
    "local": "[local]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n",
    "dropout": "[dropout]\nprobability=.5\n\n",
    "l2norm + logistic": "[l2norm]\n\n[logistic]\n\n",
    # what the converters build for activations Darknet lacks (activation_mapping.py)
    "leaky slope 0.01": "[activation]\nactivation=relu\n\n[shortcut]\nfrom=-2\nalpha=0.99\nbeta=0.01\n"
                        "activation=linear\n\n",
    "clip (ReLU6)": "[convolutional]\nfilters=8\nsize=1\ngroups=8\nactivation=hardtan\n\n"
                    "[convolutional]\nfilters=8\nsize=1\ngroups=8\nactivation=linear\n\n",
    "yolo": "[convolutional]\nfilters=18\nsize=1\nactivation=linear\n\n[yolo]\nmask=0,1,2\n"
            "anchors=10,14, 23,27, 37,58\nclasses=1\nnum=3\n\n",
}


@needs_gpu
@pytest.mark.parametrize("name", sorted(LAYER_CASES) + ["crop"])
def test_every_layer_type_matches_the_cpu(tmp_path, name):
    body = CROP + CONV.format(n=8) if name == "crop" else CONV.format(n=8) + LAYER_CASES[name]
    cfg, weights = write_model(tmp_path, NET.format(w=8, h=8, c=3) + body, seed=3)
    x = random_input((2, 3, 8, 8), seed=5)
    cpu, gpu = both(cfg, weights, batch=2)
    with cpu, gpu:
        assert [layer.type for layer in gpu.layers] == [layer.type for layer in cpu.layers]
        for a, b in zip(cpu.layer_outputs(x), gpu.layer_outputs(x)):
            assert_close_to_range(b, a, 1e-4)


@needs_gpu
def test_fold_and_save_on_the_gpu(tmp_path, yolo_cfg, yolo_weights):
    x = random_input((1, 3, 416, 416), seed=6)
    with pydarknet.Network(yolo_cfg, yolo_weights, device="cuda", fold_bn=False) as gpu:
        before = gpu.predict(x)
        gpu.save_weights(tmp_path / "again.weights")  # the device's weights, as loaded
        folded = gpu.fold_batchnorm()  # for the GPU's BN formula: same outputs
        assert len(folded) == 11 and not any(layer.batch_normalize for layer in gpu.layers)
        assert_close_to_range(gpu.predict(x), before, 1e-5)
    assert (tmp_path / "again.weights").read_bytes() == Path(yolo_weights).read_bytes()


@needs_gpu
def test_python_layers_are_refused_on_the_gpu(tmp_path):
    pydarknet.register_layer("gpu_double", output_shape=lambda shape, params: shape, forward=lambda x, params: 2 * x)
    try:
        cfg = tmp_path / "py.cfg"
        cfg.write_text(NET.format(w=4, h=4, c=2) + "[gpu_double]\n")
        with pytest.raises(pydarknet.DeviceError, match=r"layer 0 \[gpu_double\] is defined in Python.*device='cpu'"):
            pydarknet.Network(cfg, device="cuda")
    finally:
        pydarknet.unregister_layer("gpu_double")


@needs_gpu
def test_a_thousand_loads_leave_no_gpu_memory_behind(tmp_path):
    # 64x64 maps: each device buffer is at least 128 KiB, so one left behind per load
    # would be 128 MiB after 1,000 loads
    cfg = tmp_path / "cycle.cfg"
    cfg.write_text(NET.format(w=64, h=64, c=3) + CONV.format(n=8) + CONV.format(n=16)
                   + "[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=10\nactivation=linear\n\n[softmax]\n")
    x = random_input((3, 64, 64), seed=7)

    def cycle():
        with pydarknet.Network(cfg, device="cuda") as net:
            net.predict(x)

    cycle()  # the thread's cuDNN and cuBLAS handles, made once
    free_before, _ = devices.cuda_memory(0)
    for _ in range(1000):
        cycle()
    free_after, _ = devices.cuda_memory(0)
    assert free_before - free_after < 16 * 2**20, f"{(free_before - free_after) / 2**20:.1f} MiB less free"


@needs_gpu
def test_two_networks_in_two_threads(official):
    cfg, weights = official
    images = [samples.path(name) for name in ("dog.jpg", "horses.jpg", "person.jpg", "eagle.jpg")]
    with pydarknet.Network(cfg, weights, device="cuda") as alone:
        expected = [pydarknet.detect(alone, image) for image in images]
    found, failures = {}, []

    def work(slot):
        try:
            with pydarknet.Network(cfg, weights, device="cuda") as net:
                for _ in range(5):
                    found[slot] = [pydarknet.detect(net, image) for image in images]
        except Exception as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    for slot in range(2):
        assert [[(d.label, round(d.confidence, 4)) for d in image] for image in found[slot]] == \
               [[(d.label, round(d.confidence, 4)) for d in image] for image in expected]


@needs_gpu
@pytest.mark.parametrize("name", ["yolov4-tiny-3l", "yolov4-csp", "yolov4-csp-swish", "yolov7"])
def test_fork_cfgs_on_the_gpu(tmp_path, name):
    """route groups, scale_x_y, new_coords, mish and swish in the GPU kernels (patches
    route-groups to mish-swish-activations): each [yolo] head's input and output as on the CPU."""
    from test_modern_cfgs import CFGS, small

    cfg = small(CFGS / f"{name}.cfg", 160, tmp_path)
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / "w.weights", seed=7, gain=0.7)
    x = random_input((2, 3, 160, 160), seed=9)
    cpu, gpu = both(cfg, weights, batch=2)
    with cpu, gpu:
        heads = [k for layer in cpu.layers if layer.type == "yolo" for k in (layer.index - 1, layer.index)]
        a, b = cpu.layer_outputs(x), gpu.layer_outputs(x)
        for k in heads:
            assert_close_to_range(b[k], a[k], 1e-3)
