"""The convolution paths, Winograd (csrc/backend/winograd.c), oneDNN primitives
(csrc/backend/onednn.c) and our im2col + GEMM kernel (csrc/backend/cpu.c), against
OpenCV DNN's Darknet importer, which runs the same cfg and weights through its own
convolution code, and against upstream Darknet's own forward functions
(backend="upstream"); and the layers each applies to."""

import numpy as np
import pytest

import pydarknet
from pydarknet.api import zoo
from pydarknet.runtime import samples
from conftest import random_input, write_model

cv2 = pytest.importorskip("cv2")

ONEDNN = pydarknet.build_info()["features"].get("backend") == "onednn"
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="a build without oneDNN (PYDARKNET_BACKEND)")
# the backends of this build that compute convolutions their own way
FAST_BACKENDS = ["cpu", "onednn"] if ONEDNN else ["cpu"]


def conv_model(tmp_path, c, h, w, layers):
    """A cfg of the given [convolutional] sections and random weights for it."""
    sections = "".join("[convolutional]\n" + "".join(f"{k}={v}\n" for k, v in layer.items()) for layer in layers)
    return write_model(tmp_path, f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{sections}")


def conv(filters, size=3, stride=1, pad=1, **more):
    return {"filters": filters, "size": size, "stride": stride, "pad": pad, "activation": "leaky", **more}


def opencv_output(cfg, weights, x):
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(x)
    return net.forward()


def assert_close(ours, reference, rel):
    reference = reference.reshape(ours.shape)
    diff = np.abs(ours - reference).max() / np.abs(reference).max()
    assert diff < rel, f"max difference {diff:.2e} of the largest output"


def darknet_path(cfg, weights, **options):
    """The same network on upstream Darknet's own forward functions: the reference."""
    return pydarknet.Network(cfg, weights, backend="upstream", **options)


# (channels, height, width, filters, pad, batch, m): F(4x4) on maps of 14 and more with
# 36 tiles or more per GEMM, else F(2x2) with 36 tiles or more (a batch counts); partial
# tiles at the right and bottom edges, non-square maps, no padding; a wide map that
# a thread transforms in several bands of tile rows, and one too wide for F(4x4)'s scratch
@pytest.mark.parametrize("c, h, w, n, pad, batch, m", [
    (8, 7, 7, 16, 1, 3, 2), (16, 13, 13, 24, 1, 1, 2), (8, 9, 21, 8, 1, 1, 2), (16, 14, 14, 8, 1, 1, 2),
    (16, 14, 14, 8, 1, 3, 4), (8, 33, 57, 16, 1, 1, 4), (12, 30, 30, 20, 0, 1, 4), (32, 26, 26, 64, 1, 2, 4),
    (8, 21, 300, 8, 1, 2, 4), (8, 16, 1000, 8, 1, 1, 2),
])
def test_winograd_layer_matches_opencv(tmp_path, c, h, w, n, pad, batch, m):
    cfg, weights = conv_model(tmp_path, c, h, w, [conv(n, pad=pad)])
    net = pydarknet.Network(cfg, weights, batch=batch, backend="cpu")
    assert net.winograd_layers == 1 and net.layers[0].winograd == m
    x = random_input((batch, c, h, w))
    assert_close(net.predict(x), opencv_output(cfg, weights, x), 1e-5)


def test_winograd_layers_agree_with_upstreams_code_to_float32_rounding(tmp_path):
    layers = [conv(16), conv(32, batch_normalize=1), conv(32, stride=2), conv(64), conv(16, size=1)]
    cfg, weights = conv_model(tmp_path, 8, 40, 40, layers)
    x = random_input((3, 8, 40, 40))
    with pydarknet.Network(cfg, weights, backend="cpu") as fast, darknet_path(cfg, weights) as reference, \
            pydarknet.Network(cfg, weights, backend="cpu", winograd=False) as plain:
        assert [layer.winograd for layer in fast.layers] == [4, 4, 0, 2, 0]
        assert plain.winograd_layers == 0 and reference.winograd_layers == 0
        assert "winograd F(4x4,3x3)" in fast.summary()
        assert_close(fast.predict(x), reference.predict(x), 1e-5)


def test_layers_that_keep_im2col(tmp_path):
    """Strided, 1x1, 5x5, grouped, 3-channel input, too few tiles for a GEMM, too wide a map."""
    layers = [conv(8), conv(8, stride=2), conv(8, size=1), conv(8, size=5), conv(16, groups=2)]
    cfg, weights = conv_model(tmp_path, 3, 12, 12, layers)
    assert pydarknet.Network(cfg, weights, backend="cpu").winograd_layers == 0  # 3 channels for the only candidate
    cfg, weights = conv_model(tmp_path, 8, 7, 7, [conv(8)])
    assert pydarknet.Network(cfg, weights, backend="cpu").winograd_layers == 0  # 16 tiles at batch 1
    assert pydarknet.Network(cfg, weights, backend="cpu", batch=3).winograd_layers == 1
    cfg, weights = conv_model(tmp_path, 8, 16, 2000, [conv(8)])
    assert pydarknet.Network(cfg, weights, backend="cpu").winograd_layers == 0  # a row of tiles exceeds the scratch


def test_transformed_kernels_follow_batchnorm_folding(tmp_path):
    """The transformed kernels fold batch normalization in a copy; folding the layer
    itself later changes no output."""
    cfg, weights = conv_model(tmp_path, 8, 20, 20, [conv(16, batch_normalize=1), conv(8, batch_normalize=1)])
    x = random_input((1, 8, 20, 20))
    reference = opencv_output(cfg, weights, x)
    with pydarknet.Network(cfg, weights, fold_bn=False, backend="cpu") as net:
        assert net.winograd_layers == 2
        assert_close(net.predict(x), reference, 1e-5)
        net.fold_batchnorm()
        assert_close(net.predict(x), reference, 1e-5)


# (channels, height, width, filters, size, stride, pad, groups, batch, batch_normalize):
# large maps with few channels (ResNet's 7x7/2 first layer; a yolov3-tiny-like first
# layer at batch 2 and a grouped strided layer; batch normalization not folded)
@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("c, h, w, n, size, stride, pad, groups, batch, bn", [
    (3, 224, 224, 64, 7, 2, 3, 1, 1, 0), (3, 150, 200, 16, 3, 1, 1, 1, 2, 0),
    (8, 300, 300, 8, 3, 2, 1, 2, 1, 0), (3, 224, 224, 32, 7, 2, 3, 1, 1, 1),
])
def test_large_maps_match_opencv(tmp_path, backend, c, h, w, n, size, stride, pad, groups, batch, bn):
    layer = conv(n, size=size, stride=stride, pad=0, padding=pad, groups=groups, batch_normalize=bn)
    cfg, weights = conv_model(tmp_path, c, h, w, [layer])
    net = pydarknet.Network(cfg, weights, batch=batch, fold_bn=False, backend=backend)
    x = random_input((batch, c, h, w))
    assert_close(net.predict(x), opencv_output(cfg, weights, x), 1e-5)


# (channels, height, width, filters, size, stride, pad, batch, batch_normalize): small
# maps at batch > 1 (a 7x7 map at batch 3; 13x13 at batch 7; a 1x1 kernel, whose
# columns are the input itself; strided; batch normalization not folded). Winograd
# off: it would take the 3x3 stride-1 layers.
@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("c, h, w, n, size, stride, pad, batch, bn", [
    (16, 7, 7, 32, 3, 1, 1, 3, 0), (8, 13, 13, 16, 3, 1, 1, 7, 0), (32, 9, 11, 24, 1, 1, 0, 4, 0),
    (16, 14, 14, 32, 3, 2, 1, 5, 0), (16, 7, 7, 32, 3, 1, 1, 2, 1),
])
def test_batched_small_maps_match_opencv(tmp_path, backend, c, h, w, n, size, stride, pad, batch, bn):
    layer = conv(n, size=size, stride=stride, pad=0, padding=pad, batch_normalize=bn)
    cfg, weights = conv_model(tmp_path, c, h, w, [layer])
    net = pydarknet.Network(cfg, weights, batch=batch, fold_bn=False, winograd=False, backend=backend)
    x = random_input((batch, c, h, w))
    assert_close(net.predict(x), opencv_output(cfg, weights, x), 1e-5)


def test_yolov3_tiny_detections_are_the_same_on_both_paths(official):
    """Official weights: upstream's reference detections on dog.jpg (test_inference) from both."""
    cfg, weights = official
    names = pydarknet.upstream_path(zoo.get("yolov3-tiny").names)
    image = samples.path("dog.jpg")
    with pydarknet.Network(cfg, weights, names=names) as fast, \
            pydarknet.Network(cfg, weights, names=names, backend="upstream") as gemm:
        assert fast.winograd_layers == (4 if ONEDNN else 8)
        a, b = pydarknet.detect(fast, image), pydarknet.detect(gemm, image)
    assert [d.label for d in a] == [d.label for d in b] and len(a) == 5
    for x, y in zip(a, b):
        assert abs(x.confidence - y.confidence) < 1e-4
        assert np.allclose(x.box, y.box, atol=0.05)


# -- oneDNN primitives (csrc/backend/onednn.c) and our im2col + GEMM kernel (cpu.c) -----

# (channels, height, width, layer): kernels 1 to 7, strides 1 to 3, padding that is zero,
# larger than the kernel's half or cut short at the right edge (oneDNN's right padding
# is then negative), groups, odd shapes, every activation a post-op computes and two
# that darknet applies afterwards (ramp, plse); with batch normalization
@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("c, h, w, layer", [
    (3, 33, 40, conv(16, size=7, stride=2, pad=0, padding=3)),
    (16, 14, 14, conv(32, size=1, stride=2, pad=0)),
    (16, 14, 14, conv(24, size=3, stride=2, pad=0)),
    (16, 15, 13, conv(24, size=3, stride=2)),
    (8, 12, 12, conv(8, size=5, stride=3, pad=0, padding=4)),
    (16, 9, 9, conv(32, groups=4)),
    (16, 9, 9, conv(16, groups=16, activation="relu")),
    *[(8, 7, 11, conv(12, activation=a, batch_normalize=1))
      for a in ("linear", "logistic", "tanh", "elu", "loggy", "selu", "hardtan", "ramp", "plse")],
])
def test_convolution_matches_upstreams_own(tmp_path, backend, c, h, w, layer):
    cfg, weights = conv_model(tmp_path, c, h, w, [layer])
    x = random_input((2, c, h, w))
    with pydarknet.Network(cfg, weights, batch=2, winograd=False, backend=backend) as fast, \
            darknet_path(cfg, weights, batch=2) as ref:
        on_onednn = backend == "onednn" and layer["size"] > 1  # 1x1 kernels stay on im2col + GEMM
        assert fast.onednn_layers == on_onednn and ref.onednn_layers == 0
        assert fast.layers[0].onednn == on_onednn
        assert_close(fast.predict(x), ref.predict(x), 1e-5)


@needs_onednn
def test_onednn_matches_opencv_with_unfolded_batchnorm(tmp_path):
    """fold_bn=False: the primitive folds a copy of the weights; the layer keeps its own."""
    layers = [conv(16, size=7, stride=2, pad=0, padding=3, batch_normalize=1), conv(8, size=3, batch_normalize=1)]
    cfg, weights = conv_model(tmp_path, 3, 64, 64, layers)
    x = random_input((1, 3, 64, 64))
    with pydarknet.Network(cfg, weights, fold_bn=False) as net:
        assert net.onednn_layers == 2 and all(layer.batch_normalize for layer in net.layers)
        assert "onednn" in net.summary()
        assert_close(net.predict(x), opencv_output(cfg, weights, x), 1e-5)


@needs_onednn
def test_onednn_takes_what_winograd_leaves(tmp_path):
    """Against oneDNN, Winograd keeps F(4x4) from 32 input channels, and no F(2x2);
    oneDNN gets the other convolutions but 1x1 ones (im2col + GEMM)."""
    layers = [conv(48), conv(16), conv(32, stride=2), conv(16, size=1), conv(8)]
    cfg, weights = conv_model(tmp_path, 32, 40, 40, layers)
    with pydarknet.Network(cfg, weights) as net:
        assert [(layer.winograd, layer.onednn) for layer in net.layers] == [
            (4, False), (4, False), (0, True), (0, False), (0, True)]
    cfg, weights = conv_model(tmp_path, 512, 9, 9, [conv(16), conv(16)])
    with pydarknet.Network(cfg, weights, batch=2) as net, pydarknet.Network(cfg, weights, batch=2, backend="cpu") as cpu:
        assert [(layer.winograd, layer.onednn) for layer in net.layers] == [(0, True), (0, True)]
        assert [layer.winograd for layer in cpu.layers] == [2, 2]  # F(2x2) beats im2col + GEMM there


@needs_onednn
def test_onednn_runs_other_batch_sizes_and_thread_counts(tmp_path):
    """predict() in chunks (the last one smaller than the batch) and a new thread count
    make primitives for that batch and count; the results do not change beyond rounding."""
    cfg, weights = conv_model(tmp_path, 8, 20, 20, [conv(16, stride=2), conv(8, size=1)])
    x = random_input((7, 8, 20, 20))
    threads = pydarknet.get_num_threads()
    with pydarknet.Network(cfg, weights, batch=3) as net, darknet_path(cfg, weights) as ref:
        expected = ref.predict(x)
        try:
            for n in (1, 2) if threads > 1 else (1,):
                pydarknet.set_num_threads(n)
                assert_close(net.predict(x), expected, 1e-5)
                assert_close(net.predict(x[:1]), expected[:1], 1e-5)
        finally:
            pydarknet.set_num_threads(threads)


def test_backend_choice(tiny_cfg, tiny_weights):
    """The default is the best the build has; a backend it lacks is refused."""
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        assert net.backend == ("onednn" if ONEDNN else "cpu") and net.onednn_layers == (1 if ONEDNN else 0)
    with pydarknet.Network(tiny_cfg, tiny_weights, backend="cpu") as net:
        assert net.onednn_layers == 0 and net.winograd_layers == 0
    if not ONEDNN:
        with pytest.raises(ValueError, match="no oneDNN"):
            pydarknet.Network(tiny_cfg, tiny_weights, backend="onednn")
    with pytest.raises(ValueError, match="choose one of upstream, cpu, onednn"):
        pydarknet.Network(tiny_cfg, tiny_weights, backend="gpu")


@pytest.mark.parametrize("batch", [1, 2])
def test_cpu_kernels_of_other_layers_match_upstreams_own(tmp_path, batch):
    """Maxpool (strides 1 to 3, padded, clipped windows), identity and strided
    shortcuts, upsample and a route, on our CPU kernels and on upstream's code."""
    cfg, weights = write_model(tmp_path, """[net]
width=23
height=19
channels=8

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=3
stride=1

[maxpool]
size=2
stride=2

[maxpool]
size=3
stride=3
padding=2

[convolutional]
filters=16
size=1
stride=1
pad=0
activation=linear

[shortcut]
from=-2
activation=leaky

[upsample]
stride=2

[shortcut]
from=-6
activation=relu

[route]
layers=-1,-2
""")
    x = random_input((batch, 8, 19, 23))
    with pydarknet.Network(cfg, weights, batch=batch, backend="cpu") as fast, \
            darknet_path(cfg, weights, batch=batch) as ref:
        assert_close(fast.predict(x), ref.predict(x), 1e-5)
        for ours, theirs in zip(fast.layer_outputs(x), ref.layer_outputs(x)):
            assert_close(ours, theirs, 1e-5)


@pytest.mark.parametrize("variant", ["", "scale_x_y=1.05\n", "new_coords=1\nscale_x_y=2.0\n"])
def test_cpu_yolo_kernel_matches_upstreams_own(tmp_path, variant):
    """[yolo]: logistic on x, y, objectness and classes, w and h left raw, per anchor;
    AlexeyAB's scale_x_y on the centres, and no logistic at all with new_coords
    (patches yolo-scale-xy, yolo-new-coords)."""
    cfg, weights = write_model(tmp_path, """[net]
width=20
height=12
channels=3

[convolutional]
filters=14
size=3
stride=1
pad=1
activation=linear

[yolo]
mask=0,1
anchors=10,14,23,27,37,58
classes=2
num=3
""" + variant)
    x = random_input((2, 3, 12, 20))
    with pydarknet.Network(cfg, weights, batch=2, backend="cpu") as fast, darknet_path(cfg, weights, batch=2) as ref:
        ours, theirs = fast.predict(x), ref.predict(x)
    # the same copy and logistic per element; 1e-6: the two compiled loops may vectorise exp() differently
    assert_close(ours, theirs, 1e-6)
