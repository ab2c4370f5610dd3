"""caffe2darknet: Caffe models generated here, converted, and run on both real
runtimes — OpenCV DNN 4.x for the Caffe original, pydarknet for the conversion."""

import json

import cv2  # noqa: F401  (a test dependency: OpenCV DNN is the reference Caffe runtime)
import numpy as np
import pytest

import pydarknet
from pydarknet import caffe2darknet
from pydarknet.transforms import caffe_to_darknet as convert
from pydarknet.transforms import fold_caffe
from pydarknet.formats.caffe import messages, write_model
from pydarknet.errors import CaffeError, ConversionError

from support.caffe_models import NetBuilder, as_v1, resnet18, untransposed

MAX, AVE = 0, 1


def opencv_output(prototxt, caffemodel, x):
    return fold_caffe.opencv_net(prototxt, caffemodel, x)[1].forward()


def converted(builder, tmp_path, fold_bn=True, inputs=2, opencv_files=None):
    """Convert the builder's model; assert pydarknet's output equals OpenCV's on the
    original within 1e-4 of its magnitude. Returns (conversion, network outputs)."""
    prototxt, caffemodel = builder.write(tmp_path)
    conversion = convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "out", fold_bn=fold_bn)
    x = np.random.default_rng(3).random((inputs, *builder.shapes["data"]), dtype=np.float32)
    reference = opencv_output(*(opencv_files or (prototxt, caffemodel)), x)
    with pydarknet.Network(tmp_path / "out.cfg", tmp_path / "out.weights", batch=inputs) as net:
        got = net.predict(x).reshape(reference.shape)
    assert np.abs(reference - got).max() <= 1e-4 * np.abs(reference).max(), np.abs(reference - got).max()
    if opencv_files is None:
        check = convert.verify(prototxt, caffemodel, conversion)
        assert check.ok, str(check)
    return conversion, got


def sections(tmp_path):
    return [line[1:-1] for line in (tmp_path / "out.cfg").read_text().splitlines() if line.startswith("[")][1:]


@pytest.mark.parametrize("kernel,pad,stride,group,bias", [
    (3, 1, 1, 1, True), (3, 0, 2, 1, False), (5, 2, 1, 2, True), (3, 1, 2, 4, False),
    (1, 0, 2, 1, True), (1, 1, 1, 1, False)])  # 1x1 strided / padded: patch strided-pointwise-convolution
def test_convolution(tmp_path, kernel, pad, stride, group, bias):
    b = NetBuilder(shape=(4, 9, 9))
    b.conv("conv", "data", "conv", 8, kernel=kernel, group=group, bias=bias, pad=pad, stride=stride)
    converted(b, tmp_path)
    assert sections(tmp_path) == ["convolutional"]


def test_deconvolution_and_activations(tmp_path):
    b = NetBuilder(shape=(3, 5, 5))
    b.conv("up", "data", "up", 4, deconv=True)
    b.simple("sig", "Sigmoid", ["up"], "up")
    b.conv("conv", "up", "c", 4)
    b.simple("tanh", "TanH", ["c"], "t")
    converted(b, tmp_path)
    cfg = (tmp_path / "out.cfg").read_text()
    assert sections(tmp_path) == ["deconvolutional", "convolutional"]
    assert "activation=logistic" in cfg and "activation=tanh" in cfg


@pytest.mark.parametrize("fold_bn", [True, False])
def test_batchnorm_scale_relu_leaky(tmp_path, fold_bn):
    b = NetBuilder()
    b.conv("conv1", "data", "conv1", 6, bias=False)
    b.batch_norm("bn1", "conv1", "conv1", eps=1e-3)
    b.scale("sc1", "conv1", "conv1")
    b.simple("relu1", "ReLU", ["conv1"], "conv1")
    b.conv("conv2", "conv1", "conv2", 5)
    b.batch_norm("bn2", "conv2", "bn2")
    b.simple("leaky", "ReLU", ["bn2"], "out", relu_param__negative_slope=0.1)
    conversion, _ = converted(b, tmp_path, fold_bn=fold_bn)
    assert sections(tmp_path) == ["convolutional", "convolutional"]
    assert ("batch_normalize=1" in (tmp_path / "out.cfg").read_text()) == (not fold_bn)
    assert "activation=leaky" in (tmp_path / "out.cfg").read_text()
    assert len(conversion.tensor_layers) >= 2  # per-layer comparison took place


def test_other_leaky_slopes_are_relu_and_a_weighted_shortcut(tmp_path):
    """Darknet's leaky is fixed at 0.1; other slopes (in place, as Caffe nets write them, and
    negative) are (1 - a) relu(x) + a x, checked against OpenCV DNN."""
    b = NetBuilder()
    b.simple("leaky0", "ReLU", ["data"], "r", relu_param__negative_slope=0.3)  # a copy of the input first
    b.conv("conv1", "r", "conv1", 6)
    b.simple("leaky1", "ReLU", ["conv1"], "conv1", relu_param__negative_slope=0.2)
    b.conv("conv2", "conv1", "conv2", 5)
    b.simple("leaky2", "ReLU", ["conv2"], "out", relu_param__negative_slope=-0.5)
    conversion, _ = converted(b, tmp_path)
    assert sections(tmp_path) == ["activation"] + ["activation", "shortcut", "convolutional"] * 2 + [
        "activation", "shortcut"]
    assert "alpha=0.8" in (tmp_path / "out.cfg").read_text()
    assert len(conversion.tensor_layers) >= 5  # per-layer comparison took place


@pytest.mark.parametrize("shared", [False, True])
def test_prelu(tmp_path, shared):
    """PReLU per channel, x + relu((a - 1) x) (a depthwise 1x1 convolution with relu and a
    [shortcut] back to x), and channel_shared (as a leaky slope), against OpenCV DNN."""
    b = NetBuilder()
    b.conv("conv1", "data", "conv1", 6)
    prelu = b.simple("prelu", "PReLU", ["conv1"], "conv1")
    prelu.prelu_param.channel_shared = shared
    b.blob(prelu, [0.25] if shared else np.linspace(-0.5, 1.0, 6))
    b.conv("conv2", "conv1", "out", 5)
    converted(b, tmp_path)
    assert sections(tmp_path) == ["convolutional", "activation" if shared else "convolutional", "shortcut",
                                  "convolutional"]


def test_standalone_batchnorm_and_scale(tmp_path):
    """BN after pooling and a Scale alone become depthwise 1x1 convolutions."""
    b = NetBuilder(shape=(4, 8, 8))
    b.simple("pool", "Pooling", ["data"], "p", pooling_param__kernel_size=2, pooling_param__stride=2)
    b.batch_norm("bn", "p", "p")
    b.scale("sc", "p", "p", bias=False)
    converted(b, tmp_path)
    assert sections(tmp_path) == ["maxpool", "convolutional", "convolutional"]


@pytest.mark.parametrize("size,kernel,stride,pad,mode", [
    (8, 3, 2, 0, "CEIL"), (7, 3, 2, 1, "CEIL"), (9, 2, 2, 0, "CEIL"), (6, 3, 2, 1, "CEIL"), (9, 3, 2, 0, "FLOOR"),
    (10, 3, 1, 1, "CEIL")])
def test_max_pooling_rounding(tmp_path, size, kernel, stride, pad, mode):
    b = NetBuilder(shape=(2, size, size))
    pool = b.simple("pool", "Pooling", ["data"], "pool", pooling_param__kernel_size=kernel,
                    pooling_param__stride=stride, pooling_param__pad=pad)
    pool.pooling_param.round_mode = messages().PoolingParameter.RoundMode.Value(mode)
    prototxt, caffemodel = b.write(tmp_path)
    convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "bvlc")
    # OpenCV reads field 13 as the forks' `ceil_mode: bool`: write it that way for both
    text = prototxt.read_text().replace("round_mode: FLOOR", "ceil_mode: false").replace("round_mode: CEIL", "")
    b.write = lambda directory: (prototxt.write_text(text), (prototxt, caffemodel))[1]
    converted(b, tmp_path)
    assert sections(tmp_path) == ["maxpool"]
    assert (tmp_path / "bvlc.cfg").read_text() == (tmp_path / "out.cfg").read_text()


def test_max_pooling_overhang_darknet_cannot_express(tmp_path):
    b = NetBuilder(shape=(2, 9, 9))  # ceil((9 - 2) / 3) + 1 = 4 windows; the last starts at 9 - 0
    b.simple("pool", "Pooling", ["data"], "pool", pooling_param__kernel_size=2, pooling_param__stride=3)
    prototxt, caffemodel = b.write(tmp_path)
    with pytest.raises(ConversionError, match=r"pool \(Pooling\): Caffe's ceil-rounded output 4x4"):
        convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "out")
    assert not list(tmp_path.glob("out.*"))


@pytest.mark.parametrize("pool,global_pooling", [(AVE, True), (MAX, True), (AVE, False)])
def test_avg_and_global_pooling(tmp_path, pool, global_pooling):
    b = NetBuilder(shape=(3, 7, 7))
    fields = {"pooling_param__pool": pool}
    if global_pooling:
        fields["pooling_param__global_pooling"] = True
    else:
        fields.update(pooling_param__kernel_size=3, pooling_param__stride=2, pooling_param__pad=1)
    b.simple("pool", "Pooling", ["data"], "pool", **fields)
    converted(b, tmp_path)


def test_eltwise_sum_with_coeffs_in_any_order(tmp_path):
    b = NetBuilder()
    b.conv("a", "data", "a", 4)
    b.conv("b", "data", "b", 4)
    b.conv("c", "a", "c", 4)
    # neither input order matches the layer order; three inputs chain two shortcuts
    b.simple("sum", "Eltwise", ["b", "a", "c"], "sum")
    b.net.layer[-1].eltwise_param.coeff.extend([0.5, -1.0, 2.0])
    b.simple("relu", "ReLU", ["sum"], "sum")
    conversion, _ = converted(b, tmp_path)
    # a and b both read the input: an identity layer first, since Darknet cannot route to the input
    assert sections(tmp_path) == ["activation", "convolutional", "route", "convolutional", "route",
                                  "convolutional", "shortcut", "shortcut"]
    b2 = NetBuilder()
    b2.conv("a", "data", "a", 4)
    b2.conv("b", "data", "b", 4)
    b2.simple("pool", "Pooling", ["b"], "p", pooling_param__kernel_size=3, pooling_param__stride=1,
              pooling_param__pad=1)
    b2.simple("sum", "Eltwise", ["a", "b"], "sum")  # neither is the previous layer: a route first
    (tmp_path / "2").mkdir()
    converted(b2, tmp_path / "2")
    assert sections(tmp_path / "2") == ["activation", "convolutional", "route", "convolutional", "maxpool",
                                        "route", "shortcut"]


def test_concat_flatten_inner_product_softmax_dropout_split(tmp_path):
    b = NetBuilder(shape=(3, 6, 6))
    b.conv("a", "data", "a", 4)
    b.simple("split", "Split", ["a"], "a_copy")
    b.conv("b", "data", "b", 2, kernel=1)
    b.simple("cat", "Concat", ["a_copy", "b"], "cat")
    b.shapes["cat"] = (6, 6, 6)
    b.simple("flat", "Flatten", ["cat"], "flat")
    b.shapes["flat"] = (216,)
    b.simple("drop", "Dropout", ["flat"], "flat")
    b.inner_product("fc1", "flat", "fc1", 20)
    b.simple("relu", "ReLU", ["fc1"], "fc1")
    b.inner_product("fc2", "fc1", "fc2", 7, bias=False)
    b.simple("prob", "Softmax", ["fc2"], "prob")
    converted(b, tmp_path)
    assert sections(tmp_path) == ["activation", "convolutional", "route", "convolutional", "route", "flatten",
                                  "connected", "connected", "softmax"]


def test_inner_product_on_a_7x7_map_and_transposed(tmp_path):
    b = NetBuilder(shape=(8, 7, 7))
    b.conv("conv", "data", "conv", 16)
    b.inner_product("fc", "conv", "fc", 10, transpose=True)
    prototxt, caffemodel = b.write(tmp_path)
    # OpenCV DNN ignores `transpose`; it runs the equivalent untransposed files
    converted(b, tmp_path, opencv_files=tuple(untransposed(prototxt, caffemodel, "plain")))
    assert sections(tmp_path) == ["convolutional", "connected"]


def top5(scores):
    return np.argsort(-scores, axis=1)[:, :5]


@pytest.mark.parametrize("fold_bn", [True, False])
def test_resnet18_shaped_network(tmp_path, fold_bn):
    b = resnet18()
    conversion, got = converted(b, tmp_path, fold_bn=fold_bn)
    x = np.random.default_rng(3).random((2, 3, 64, 64), dtype=np.float32)
    reference = opencv_output(tmp_path / "model.prototxt", tmp_path / "model.caffemodel", x)
    assert np.array_equal(top5(reference), top5(got.reshape(reference.shape)))
    assert sections(tmp_path).count("shortcut") == 8 and "flatten" in sections(tmp_path)
    description = json.loads((tmp_path / "out.json").read_text())
    assert description["input"]["shape_chw"] == [3, 64, 64]
    assert {m["source"] for m in description["layers"]} >= {"conv1", "res2a", "fc1000"}


def test_vgg_style_ceil_pooling(tmp_path):
    b = NetBuilder(shape=(3, 30, 30), seed=9)
    blob = "data"
    for i, (channels, pad) in enumerate([(8, 0), (8, 1), (16, 0)]):
        b.conv(f"conv{i}", blob, f"conv{i}", channels)
        b.simple(f"relu{i}", "ReLU", [f"conv{i}"], f"conv{i}")
        c, h, w = b.shapes[f"conv{i}"]
        b.simple(f"pool{i}", "Pooling", [f"conv{i}"], f"pool{i}", pooling_param__kernel_size=3,
                 pooling_param__stride=2, pooling_param__pad=pad)
        out = -(-(h + 2 * pad - 3) // 2) + 1
        b.shapes[f"pool{i}"] = (c, out, out)
        blob = f"pool{i}"
    b.inner_product("fc", blob, "fc", 12)
    converted(b, tmp_path)


def test_branchy_network_with_concat(tmp_path):
    b = NetBuilder(shape=(4, 8, 8), seed=11)
    b.conv("stem", "data", "stem", 6)
    b.simple("stem_relu", "ReLU", ["stem"], "stem")
    b.conv("b1", "stem", "b1", 4, kernel=1)
    b.conv("b2a", "stem", "b2a", 3, kernel=1)
    b.conv("b2b", "b2a", "b2b", 5)
    b.simple("b3", "Pooling", ["stem"], "b3", pooling_param__kernel_size=3, pooling_param__stride=1,
             pooling_param__pad=1)
    b.shapes["b3"] = (6, 8, 8)
    b.simple("cat", "Concat", ["b1", "b2b", "b3"], "cat")
    b.shapes["cat"] = (15, 8, 8)
    b.conv("head", "cat", "head", 4)
    converted(b, tmp_path)


@pytest.mark.parametrize("input_style", ["input_dim", "Input"])
def test_input_forms_and_v1_files(tmp_path, input_style):
    b = NetBuilder(shape=(3, 8, 8), input_style=input_style)
    b.conv("conv", "data", "conv", 4, legacy=True)
    b.simple("relu", "ReLU", ["conv"], "conv")
    b.simple("pool", "Pooling", ["conv"], "pool", pooling_param__kernel_size=2, pooling_param__stride=2)
    b.inner_product("fc", "pool", "fc", 5, legacy=True)
    converted(b, tmp_path)
    if input_style == "input_dim":  # the same network in V1 form (no Input layer type in V1)
        v1 = as_v1(b)
        write_model(v1, tmp_path / "v1.prototxt", tmp_path / "model.caffemodel")
        (tmp_path / "v1").mkdir()
        b.write = lambda directory: (tmp_path / "model.prototxt", tmp_path / "model.caffemodel")
        converted(b, tmp_path / "v1")
        assert (tmp_path / "v1" / "out.weights").read_bytes() == (tmp_path / "out.weights").read_bytes()


def test_train_only_layers_are_left_out(tmp_path):
    """include/exclude phase rules: what Caffe builds for inference (TEST) is converted."""
    b = NetBuilder()
    b.conv("conv", "data", "conv", 4)
    train, test = 0, 1  # caffe.Phase
    # a side branch (OpenCV, the reference here, builds every layer whatever its phase)
    b.simple("train_only", "Sigmoid", ["conv"], "side").include.add(phase=train)
    b.simple("drop", "Dropout", ["conv"], "conv").exclude.add(phase=test)
    b.simple("relu", "ReLU", ["conv"], "conv")
    conversion, _ = converted(b, tmp_path)
    assert [m["source"] for m in conversion.mapping] == ["conv", "relu"]
    assert sections(tmp_path) == ["convolutional"]


def test_unsupported_layers_are_listed_together(tmp_path):
    b = NetBuilder()
    b.conv("conv", "data", "conv", 4)
    b.simple("prod", "Eltwise", ["conv", "conv"], "prod", eltwise_param__operation=0)
    b.simple("prelu", "PReLU", ["prod"], "prelu")
    b.simple("power", "Power", ["prelu"], "power")
    prototxt, caffemodel = b.write(tmp_path)
    with pytest.raises(ConversionError) as info:
        convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "out")
    message = str(info.value)
    assert "3 layer(s) cannot be converted" in message
    assert "prod (Eltwise): PROD" in message and "prelu (PReLU)" in message and "power (Power)" in message
    assert not list(tmp_path.glob("out.*"))


def test_bad_files(tmp_path):
    b = NetBuilder()
    b.conv("conv", "data", "conv", 4)
    prototxt, caffemodel = b.write(tmp_path)
    data = caffemodel.read_bytes()
    caffemodel.write_bytes(data[:-7])
    with pytest.raises(CaffeError, match="truncated"):
        convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "out")
    caffemodel.write_bytes(data)
    text = prototxt.read_text()
    prototxt.write_text(text.replace("layer {", "layer {{", 1))
    with pytest.raises(CaffeError, match=r"model.prototxt:\d+"):
        convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "out")
    prototxt.write_text(text.replace("num_output: 4", "num_output: 5"))
    with pytest.raises(CaffeError, match=r"Convolution 'conv': weights have shape \(4, 4, 3, 3\)"):
        convert.caffe_to_darknet(prototxt, caffemodel, tmp_path / "out")
    assert not list(tmp_path.glob("out.*"))


def test_cli(tmp_path, capsys):
    b = resnet18(width=4, classes=10, size=32)
    prototxt, caffemodel = b.write(tmp_path)
    assert caffe2darknet.main([str(prototxt), str(caffemodel), "-o", str(tmp_path / "dn" / "r18"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "conv1 (Convolution): layer 0 [convolutional]" in out and "OpenCV DNN" in out and ": ok" in out
    assert "the network output 'fc1000':" in out
    assert {p.name for p in (tmp_path / "dn").iterdir()} == {"r18.cfg", "r18.weights", "r18.json"}
    with pytest.raises(SystemExit):  # argparse: usage error, status 2
        caffe2darknet.main([str(prototxt), str(caffemodel), "-o", str(tmp_path / "x"), "--input-shape", "3,x,32"])
    assert caffe2darknet.main([str(prototxt), str(tmp_path / "missing.caffemodel"), "-o", str(tmp_path / "x")]) == 2


def test_cli_exits_1_when_verification_fails(tmp_path, monkeypatch, capsys):
    b = NetBuilder()
    b.conv("conv", "data", "conv", 4)
    prototxt, caffemodel = b.write(tmp_path)
    bad = convert.folding.CheckResult("test", 2, 1, "the network output 'conv'", 0.5, 1.0)
    monkeypatch.setattr(convert, "verify", lambda *args: bad)
    assert caffe2darknet.main([str(prototxt), str(caffemodel), "-o", str(tmp_path / "o"), "--verify", "-q"]) == 1
    assert "ABOVE the tolerance" in capsys.readouterr().out


def test_input_shape_override(tmp_path, capsys):
    b = NetBuilder(shape=(4, 6, 6))
    b.conv("conv", "data", "conv", 3)
    b.simple("pool", "Pooling", ["conv"], "pool", pooling_param__kernel_size=2, pooling_param__stride=2)
    prototxt, caffemodel = b.write(tmp_path)
    assert caffe2darknet.main([str(prototxt), str(caffemodel), "-o", str(tmp_path / "big"),
                               "--input-shape", "4,10,10", "-q"]) == 0
    assert "width=10\nheight=10\nchannels=4" in (tmp_path / "big.cfg").read_text()
    x = np.random.default_rng(4).random((1, 4, 10, 10), dtype=np.float32)
    with pydarknet.Network(tmp_path / "big.cfg", tmp_path / "big.weights") as net:
        got = net.predict(x)
    reference = opencv_output(prototxt, caffemodel, x)  # OpenCV reshapes to the input it is given
    assert reference.shape == (1, 3, 5, 5)
    assert np.abs(reference - got.reshape(reference.shape)).max() <= 1e-4 * np.abs(reference).max()
