"""onnx2darknet: PyTorch models exported to ONNX (tests/onnx/, made by
tests/support/make_onnx_fixtures.py) and small graphs built with onnx's helpers, converted and
run on both real runtimes — onnxruntime for the original, pydarknet for the conversion."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import pydarknet
from pydarknet import onnx2darknet
from pydarknet.errors import ConversionError, OnnxError
from pydarknet.transforms import onnx_to_darknet

from conftest import REPO

FIXTURES = REPO / "tests" / "onnx"
CLASSIFIERS = ("resnet18", "vgg_style", "depthwise_silu", "with_dynamo")


def onnxruntime_output(model, x: np.ndarray) -> np.ndarray:
    """The original on onnxruntime, one image per run (fixed-batch exports take one)."""
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def converted_output(model, tmp_path, x, **options):
    conversion = onnx_to_darknet.onnx_to_darknet(model, tmp_path / "out", **options)
    with pydarknet.Network(tmp_path / "out.cfg", tmp_path / "out.weights", batch=len(x)) as net:
        return conversion, net.predict(x)


def assert_close(reference, got):
    """Within 1e-4 of the output's range: float32 sums in another order, and folded BN
    weights rounded once, stay orders of magnitude below it."""
    got = got.reshape(reference.shape)
    assert np.abs(reference - got).max() <= 1e-4 * np.abs(reference).max(), np.abs(reference - got).max()


def sections(tmp_path):
    return [line[1:-1] for line in (tmp_path / "out.cfg").read_text().splitlines() if line.startswith("[")][1:]


@pytest.mark.parametrize("name", ["resnet18", "vgg_style", "depthwise_silu", "encoder_decoder", "with_dynamo"])
@pytest.mark.parametrize("fold_bn", [True, False])
def test_pytorch_exports_match_onnxruntime(tmp_path, name, fold_bn):
    model = FIXTURES / f"{name}.onnx"
    shape = [d.dim_value for d in onnx.load(model).graph.input[0].type.tensor_type.shape.dim][1:]
    x = np.random.default_rng(5).random((3, *shape), dtype=np.float32)
    conversion, got = converted_output(model, tmp_path, x, fold_bn=fold_bn)
    reference = onnxruntime_output(model, x)
    assert_close(reference, got)
    if name in CLASSIFIERS:  # the same top-5 classes for every image
        got = got.reshape(reference.shape)
        assert [list(np.argsort(-r)[:5]) for r in reference] == [list(np.argsort(-g)[:5]) for g in got]
    check = onnx_to_darknet.verify(model, conversion)
    assert check.ok and check.compared > 5, str(check)  # layer by layer, not only the output
    # BatchNormalization nodes where the exporter did not fold them itself
    assert ("batch_normalize=1" in (tmp_path / "out.cfg").read_text()) == (
        not fold_bn and name in ("resnet18", "depthwise_silu"))


def test_what_the_fixtures_exercise(tmp_path):
    """The exports contain what the issue lists, and the mapping says what became of it."""
    ops = {name: {n.op_type for n in onnx.load(FIXTURES / f"{name}.onnx").graph.node}
           for name in ("resnet18", "vgg_style", "depthwise_silu", "encoder_decoder", "with_dynamo")}
    assert {"BatchNormalization", "Add", "GlobalAveragePool", "Flatten", "Gemm"} <= ops["resnet18"]
    assert {"Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Softmax"} <= ops["vgg_style"]
    assert {"Mul", "Sigmoid", "BatchNormalization"} <= ops["depthwise_silu"]
    assert {"Resize", "ConvTranspose", "Concat", "Add", "Tanh", "LeakyRelu"} <= ops["encoder_decoder"]
    # torch.onnx's default exporter: AdaptiveAvgPool2d(1) as ReduceMean (axes an input at opset 18)
    assert {"ReduceMean", "PRelu", "LeakyRelu", "Reshape"} <= ops["with_dynamo"]
    conversion = onnx_to_darknet.onnx_to_darknet(FIXTURES / "vgg_style.onnx", tmp_path / "out")
    hows = {m["type"]: m["how"] for m in conversion.mapping}
    assert hows["Reshape"].endswith("[flatten]") and hows["Softmax"].endswith("[softmax]")
    assert "padding=1" in hows["MaxPool"] or "padding=1" in (tmp_path / "out.cfg").read_text()  # ceil_mode
    conversion = onnx_to_darknet.onnx_to_darknet(FIXTURES / "depthwise_silu.onnx", tmp_path / "out")
    assert "activation=swish" in (tmp_path / "out.cfg").read_text()
    assert all(m["how"].startswith("folded into layer")
               for m in conversion.mapping if m["type"] == "BatchNormalization")
    onnx_to_darknet.onnx_to_darknet(FIXTURES / "encoder_decoder.onnx", tmp_path / "out")
    assert {"upsample", "deconvolutional", "route", "shortcut"} <= set(sections(tmp_path))
    description = json.loads((tmp_path / "out.json").read_text())
    assert description["source"]["onnx"].endswith("encoder_decoder.onnx")
    assert description["input"]["shape_chw"] == [3, 32, 32]


# -- small graphs made with onnx.helper: one operator form each --------------------------

def make_model(nodes, inputs, output_shape, initializers=(), opset=13, output="y"):
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape or ["n", "c", "h", "w"])],
        [numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_both(tmp_path, model, shape, inputs=2, **options):
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    x = np.random.default_rng(7).random((inputs, *shape), dtype=np.float32) - 0.3
    conversion, got = converted_output(path, tmp_path, x, **options)
    assert_close(onnxruntime_output(path, x), got)
    return conversion


def weights(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_verify_runs_the_batch_the_file_fixes(tmp_path):
    """torch.onnx exports the example's batch as a fixed dimension: --verify feeds that."""
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], [("x", [3, 3, 6, 6])],
                       [3, 4, 6, 6], [("w", weights(4, 3, 3, 3))])
    onnx.save(model, tmp_path / "m.onnx")
    conversion = onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")
    check = onnx_to_darknet.verify(tmp_path / "m.onnx", conversion)
    assert check.ok and "3 random inputs" in str(check), str(check)


def test_a_model_onnxruntime_refuses_is_an_onnx_error(tmp_path, monkeypatch):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 3, 4, 4])], [1, 3, 4, 4])
    onnx.save(model, tmp_path / "m.onnx")
    conversion = onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")

    def refuse(*args, **kwargs):  # as onnxruntime's own exception classes do (no common base)
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Type Error: no kernel\nmore detail")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    with pytest.raises(OnnxError, match=r"m\.onnx: onnxruntime, the reference runtime for --verify, cannot run"):
        onnx_to_darknet.verify(tmp_path / "m.onnx", conversion)


def test_matmul_add_is_one_connected_layer(tmp_path):
    model = make_model([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["m"]),
                        helper.make_node("Add", ["m", "b"], ["y"])],
                       [("x", [1, 2, 3, 3])], [1, 5], [("w", weights(18, 5)), ("b", weights(5, seed=1))])
    run_both(tmp_path, model, (2, 3, 3))
    assert sections(tmp_path) == ["flatten", "connected"]


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_dropout_identity_gemm_forms(tmp_path, opset):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["d"], transB=0, alpha=0.5, beta=2.0),
             helper.make_node("Dropout", ["d"], ["i"]), helper.make_node("Identity", ["i"], ["s"]),
             helper.make_node("Softmax", ["s"], ["y"], axis=1)]
    model = make_model(nodes, [("x", [1, 4, 5, 5])], [1, 6], [("w", weights(4, 6)), ("b", weights(6, seed=2))],
                       opset=opset)
    run_both(tmp_path, model, (4, 5, 5))
    assert sections(tmp_path) == ["avgpool", "flatten", "connected", "softmax"]


def test_channel_softmax_of_a_map_is_refused_where_darknet_differs(tmp_path):
    """opset 13: Softmax(axis=1) of a C x H x W map runs per pixel; Darknet's runs over
    everything. (Before opset 13 it runs over everything, which converts.)"""
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", [1, 3, 2, 2])], [1, 3, 2, 2])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ConversionError, match=r"softmax over axis 1 of \(3, 2, 2\)"):
        onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")
    old = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", [1, 3, 2, 2])], [1, 3, 2, 2],
                     opset=11)
    run_both(tmp_path, old, (3, 2, 2))


@pytest.mark.parametrize("kernel,stride,pads,ceil", [
    (3, 2, [1, 1, 1, 1], 0), (2, 2, [0, 0, 0, 0], 1), (3, 2, [0, 0, 0, 0], 1), (3, 1, [1, 1, 1, 1], 0),
    (2, 1, [0, 0, 1, 1], 0)])
def test_max_pooling(tmp_path, kernel, stride, pads, ceil):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=pads,
                            ceil_mode=ceil)
    run_both(tmp_path, make_model([node], [("x", [1, 2, 9, 9])], None), (2, 9, 9))
    assert sections(tmp_path) == ["maxpool"]


@pytest.mark.parametrize("pads,include", [([0, 0, 0, 0], 0), ([1, 1, 1, 1], 1)])
def test_average_pooling(tmp_path, pads, include):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=pads,
                            count_include_pad=include)
    run_both(tmp_path, make_model([node], [("x", [1, 3, 9, 9])], None), (3, 9, 9))


def test_average_pooling_that_leaves_padding_out_is_refused(tmp_path):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    onnx.save(make_model([node], [("x", [1, 3, 9, 9])], None), tmp_path / "m.onnx")
    with pytest.raises(ConversionError, match="leaves the padding out of the divisor"):
        onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")


@pytest.mark.parametrize("opset,mode,nearest", [(13, "asymmetric", "floor"), (13, "half_pixel", "round_prefer_floor"),
                                                (11, "pytorch_half_pixel", "round_prefer_ceil")])
def test_resize_nearest(tmp_path, opset, mode, nearest):
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest", coordinate_transformation_mode=mode,
                            nearest_mode=nearest)
    if opset == 11:
        node = helper.make_node("Resize", ["x", "roi", "s"], ["y"], mode="nearest",
                                coordinate_transformation_mode=mode, nearest_mode=nearest)
    model = make_model([node], [("x", [1, 2, 4, 5])], None, [("s", [1, 1, 3, 3]), ("roi", np.zeros(0))], opset=opset)
    run_both(tmp_path, model, (2, 4, 5))
    assert sections(tmp_path) == ["upsample"]


def test_upsample_op_and_refused_resizes(tmp_path):
    model = make_model([helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")], [("x", [1, 2, 3, 3])],
                       None, [("s", [1, 1, 2, 2])], opset=9)
    run_both(tmp_path, model, (2, 3, 3))
    for attrs, scales, why in [({"mode": "linear"}, [1, 1, 2, 2], "mode linear"),
                               ({"mode": "nearest"}, [1, 1, 2, 3], "scale 2x3"),
                               ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                 "nearest_mode": "ceil"}, [1, 1, 2, 2], "do not repeat each pixel")]:
        model = make_model([helper.make_node("Resize", ["x", "", "s"], ["y"], **attrs)], [("x", [1, 2, 3, 3])],
                           None, [("s", scales)])
        onnx.save(model, tmp_path / "m.onnx")
        with pytest.raises(ConversionError, match=why):
            onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")


def test_conv_transpose_leaky_and_residual_from_the_input(tmp_path):
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["d"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["d"], ["l"], alpha=0.1),
             helper.make_node("Conv", ["l", "w2"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["y"])]
    model = make_model(nodes, [("x", [1, 3, 6, 6])], None,
                       [("w", weights(3, 4, 4, 4)), ("b", weights(4, seed=3)), ("w2", weights(3, 4, 4, 4, seed=4))])
    run_both(tmp_path, model, (3, 6, 6))
    assert sections(tmp_path)[:2] == ["activation", "deconvolutional"]  # the input, read twice, first


def activation_between_convolutions(activation, *initializers):
    """conv -> activation (reads c, writes l) -> conv, plus the first conv's output added
    back (so a mapping must leave c as it was)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), activation,
             helper.make_node("Conv", ["l", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "c"], ["y"])]
    return make_model(nodes, [("x", [1, 3, 6, 6])], None,
                      [("w", weights(4, 3, 3, 3)), ("w2", weights(4, 4, 3, 3)), *initializers])


def leaky_model(slope):
    return activation_between_convolutions(helper.make_node("LeakyRelu", ["c"], ["l"], alpha=slope))


def prelu_model(slope):
    return activation_between_convolutions(helper.make_node("PRelu", ["c", "s"], ["l"]), ("s", slope))


@pytest.mark.parametrize("slope", [0.01, 0.0, -0.5, 1.5])
def test_leaky_slopes_other_than_darknets(tmp_path, slope):
    """PyTorch's default slope is 0.01, Darknet's leaky 0.1: another slope a is (1 - a) relu(x)
    + a x, an [activation] and a weighted [shortcut]; the convolution's output it reads
    stays as it was for the other branch (the Add)."""
    conversion = run_both(tmp_path, leaky_model(slope), (3, 6, 6))
    expected = ["convolutional", "activation", "shortcut"] if slope else ["convolutional", "activation"]
    assert sections(tmp_path)[:len(expected)] == expected
    how = next(m["how"] for m in conversion.mapping if m["type"] == "LeakyRelu")
    assert ("relu(x) +" in how) == bool(slope)


def reduction_model(op, opset, axes, keepdims=1):
    """conv -> ReduceMean/ReduceMax; axes an attribute before opset 18, an input from it on."""
    reduce = (helper.make_node(op, ["c", "axes"], ["y"], keepdims=keepdims) if opset >= 18 and axes is not None
              else helper.make_node(op, ["c"], ["y"], keepdims=keepdims, **({"axes": axes} if axes else {})))
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), reduce],
                       [("x", [1, 3, 6, 6])], [1, 4, 1, 1] if keepdims else [1, 4], [("w", weights(4, 3, 3, 3))],
                       opset=opset)
    if opset >= 18 and axes is not None:
        model.graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    return model


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("opset, axes, keepdims", [(13, [2, 3], 1), (13, [-1, -2], 0), (18, [2, 3], 1),
                                                   (18, [3, -2], 0)])
def test_spatial_reductions_are_global_pooling(tmp_path, op, opset, axes, keepdims):
    """torch.onnx's dynamo exporter writes nn.AdaptiveAvgPool2d(1) as ReduceMean over H, W."""
    run_both(tmp_path, reduction_model(op, opset, axes, keepdims), (3, 6, 6))
    assert sections(tmp_path)[1] == ("avgpool" if op == "ReduceMean" else "maxpool")


def test_reduction_without_axes_that_is_a_no_op(tmp_path):
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("ReduceMean", ["c"], ["y"], noop_with_empty_axes=1)],
                       [("x", [1, 3, 6, 6])], None, [("w", weights(4, 3, 3, 3))], opset=18)
    run_both(tmp_path, model, (3, 6, 6))
    assert sections(tmp_path) == ["convolutional"]


def test_other_reductions_are_refused(tmp_path):
    for opset, axes, reason in [(13, [1], r"axes \[1\] of \(1, 4, 6, 6\)"), (18, None, "axes all"),
                                (13, [2, 3, 7], r"axes \[2, 3, 7\]")]:
        onnx.save(reduction_model("ReduceMean", opset, axes), tmp_path / "m.onnx")
        with pytest.raises((ConversionError, OnnxError), match=reason):
            onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")


def bound(name, value):
    return numpy_helper.from_array(np.array(value, np.float32), name)


CLIPS = {  # name -> (the clipping node on c, opset, bounds the output reaches, initializers)
    "ReLU6": (helper.make_node("Clip", ["c", "lo", "hi"], ["y"]), 13, (0, 6), [bound("lo", 0), bound("hi", 6)]),
    "Hardtanh(-2, 3), opset 10": (helper.make_node("Clip", ["c"], ["y"], min=-2.0, max=3.0), 10, (-2, 3), []),
    "lower bound only": (helper.make_node("Clip", ["c", "lo"], ["y"]), 13, (-1, None), [bound("lo", -1)]),
    "upper bound only": (helper.make_node("Clip", ["c", "", "hi"], ["y"]), 13, (None, 2), [bound("hi", 2)]),
    "Hardsigmoid": (helper.make_node("HardSigmoid", ["c"], ["y"], alpha=1 / 6, beta=0.5), 13, (0, 1), []),
    "relu": (helper.make_node("Clip", ["c", "lo"], ["y"]), 13, (0, None), [bound("lo", 0)]),
}


@pytest.mark.parametrize("form", CLIPS)
def test_clips_through_hardtan(tmp_path, form):
    """MobileNetV2's ReLU6 and its kin: into hardtan's [-1, 1] (folded into the convolution
    before, the only reader of its output) and back by a depthwise 1x1 convolution (one
    bound: relu); the random convolution's outputs reach every bound."""
    clip, opset, (lo, hi), initializers = CLIPS[form]
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), clip], [("x", [1, 3, 6, 6])],
                       None, [("w", 3 * weights(4, 3, 3, 3))], opset=opset)
    model.graph.initializer.extend(initializers)
    run_both(tmp_path, model, (3, 6, 6))
    reference = onnxruntime_output(tmp_path / "model.onnx", np.random.default_rng(7).random((2, 3, 6, 6),
                                                                                           dtype=np.float32) - 0.3)
    assert all(b is None or np.isclose(reference, b).any() for b in (lo, hi))
    assert sections(tmp_path) == ["convolutional"] * (1 if form == "relu" else 2)
    assert ("activation=hardtan" in (tmp_path / "out.cfg").read_text()) == (None not in (lo, hi) and form != "relu")


def test_clip_bounds_that_are_not_one_number_are_refused(tmp_path):
    """A NaN or a vector bound is not silently taken as no bound."""
    for value, reason in [(np.nan, r"min bound \[nan\]"), ([0.0, 6.0], r"min bound \[0.0, 6.0\]")]:
        model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                            helper.make_node("Clip", ["c", "lo"], ["y"])],
                           [("x", [1, 3, 6, 6])], None, [("w", weights(4, 3, 3, 3)), ("lo", value)])
        onnx.save(model, tmp_path / "m.onnx")
        with pytest.raises(ConversionError, match=reason):
            onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")
    model = make_model([helper.make_node("Clip", ["x", "", "hi"], ["y"])], [("x", [1, 3, 6, 6])], None,
                       [("hi", [1.0, 2.0])])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ConversionError, match=r"max bound \[1.0, 2.0\]: not one number"):
        onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")


def test_clip_of_an_output_read_twice(tmp_path):
    """The convolution's output is also added back: both maps are depthwise layers."""
    clip, opset, _, initializers = CLIPS["ReLU6"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), clip,
             helper.make_node("Add", ["y", "c"], ["sum"])]
    model = make_model(nodes, [("x", [1, 3, 6, 6])], None, [("w", 3 * weights(4, 3, 3, 3))], output="sum")
    model.graph.initializer.extend(initializers)
    run_both(tmp_path, model, (3, 6, 6))
    assert sections(tmp_path) == ["convolutional"] * 3 + ["shortcut"]


@pytest.mark.parametrize("fold_bn", [True, False])
def test_clip_after_batchnorm(tmp_path, fold_bn):
    """A kept BatchNorm (batch_normalize=1) leaves the convolution's weights alone."""
    clip, _, _, initializers = CLIPS["ReLU6"]
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["b", "g", "beta", "m", "v"], ["c"]), clip]
    model = make_model(nodes, [("x", [1, 3, 6, 6])], None,
                       [("w", 3 * weights(4, 3, 3, 3)), ("g", rng.uniform(0.5, 2, 4)), ("beta", rng.normal(0, 1, 4)),
                        ("m", rng.normal(0, 1, 4)), ("v", rng.uniform(0.5, 2, 4))])
    model.graph.initializer.extend(initializers)
    run_both(tmp_path, model, (3, 6, 6), fold_bn=fold_bn)
    assert sections(tmp_path) == ["convolutional"] * (2 if fold_bn else 3)


def test_clip_of_a_vector_and_back_to_onnx(tmp_path):
    clip, _, _, initializers = CLIPS["ReLU6"]
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "g"], ["c"], transB=1), clip]
    model = make_model(nodes, [("x", [1, 3, 4, 4])], [1, 8], [("g", 3 * weights(8, 48))])
    model.graph.initializer.extend(initializers)
    run_both(tmp_path, model, (3, 4, 4))
    pydarknet.export_onnx(tmp_path / "out.cfg", tmp_path / "out.weights", tmp_path / "back.onnx")
    x = np.random.default_rng(1).random((2, 3, 4, 4), dtype=np.float32)
    assert_close(onnxruntime_output(tmp_path / "model.onnx", x), onnxruntime_output(tmp_path / "back.onnx", x))


PRELU_SLOPES = {"one": [0.25], "Darknet's 0.1": [0.1], "per channel": np.linspace(-0.5, 1.0, 4).reshape(4, 1, 1),
                "per channel, 4-D": np.linspace(0.0, 0.3, 4).reshape(1, 4, 1, 1)}


@pytest.mark.parametrize("form", PRELU_SLOPES)
def test_prelu(tmp_path, form):
    """PyTorch's nn.PReLU(): one slope (as a leaky slope); nn.PReLU(C): x + relu((a - 1) x),
    a depthwise 1x1 convolution with relu and a [shortcut] back to x."""
    run_both(tmp_path, prelu_model(PRELU_SLOPES[form]), (3, 6, 6))
    expected = {"one": ["activation", "shortcut"], "Darknet's 0.1": ["activation", "convolutional"]}
    assert sections(tmp_path)[1:3] == expected.get(form, ["convolutional", "shortcut"])
    assert ("activation=leaky" in (tmp_path / "out.cfg").read_text()) == (form == "Darknet's 0.1")


def test_prelu_forms_without_an_exact_mapping_are_refused(tmp_path):
    for slope, reason in [(np.array([0.1, 1.5, 0.2, 0.0]).reshape(4, 1, 1), "slope 1.5 in channel 1"),
                          (np.linspace(0, 0.5, 6), "only one slope per channel of a map converts")]:
        onnx.save(prelu_model(slope), tmp_path / "m.onnx")
        with pytest.raises(ConversionError, match=reason):
            onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")


@pytest.mark.parametrize("name", ["leaky 0.01", "prelu", "encoder_decoder"])
def test_round_trip_back_to_onnx(tmp_path, name):
    """ONNX -> Darknet -> ONNX (pydarknet to-onnx): the model exported back runs on
    onnxruntime like the original ([activation] layers and weighted shortcuts included)."""
    original = tmp_path / "original.onnx"
    made = {"leaky 0.01": lambda: leaky_model(0.01), "prelu": lambda: prelu_model(PRELU_SLOPES["per channel"])}
    onnx.save(made[name]() if name in made else onnx.load(FIXTURES / f"{name}.onnx"), original)
    onnx_to_darknet.onnx_to_darknet(original, tmp_path / "out")
    back = tmp_path / "back.onnx"
    pydarknet.export_onnx(tmp_path / "out.cfg", tmp_path / "out.weights", back)
    shape = json.loads((tmp_path / "out.json").read_text())["input"]["shape_chw"]
    x = np.random.default_rng(3).random((2, *shape), dtype=np.float32) - 0.3
    assert_close(onnxruntime_output(original, x), onnxruntime_output(back, x))


def test_unconvertible_nodes_are_listed_together_and_nothing_is_written(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], dilations=[2, 2]),
             helper.make_node("Mod", ["x", "x"], ["l"]),
             helper.make_node("Mul", ["l", "c"], ["m"]),
             helper.make_node("Conv", ["m", "w2"], ["c2"], pads=[0, 0, 1, 1]),
             helper.make_node("Erf", ["c2"], ["y"])]
    model = make_model(nodes, [("x", [1, 2, 8, 8])], None, [("w", weights(2, 2, 3, 3)), ("w2", weights(2, 2, 3, 3))])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ConversionError) as caught:
        onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'm.onnx'}: 5 layer(s) cannot be converted")
    for expected in ["(Conv): dilation (2, 2)", "(Mod): no Darknet equivalent", "(Mul): only x * Sigmoid(x)",
                     "(Conv): pads (0, 0, 1, 1)", "(Erf): no Darknet equivalent"]:
        assert expected in message
    assert not list(tmp_path.glob("out.*"))


def test_bad_files_give_onnx_errors_naming_the_file(tmp_path):
    with pytest.raises(OnnxError, match="missing.onnx: no such file"):
        onnx_to_darknet.onnx_to_darknet(tmp_path / "missing.onnx", tmp_path / "out")
    data = (FIXTURES / "depthwise_silu.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.onnx").write_text("[net]\nwidth=3\n")
    for name in ("cut.onnx", "text.onnx"):
        with pytest.raises(OnnxError, match=f"{name}: not a valid ONNX model"):
            onnx_to_darknet.onnx_to_darknet(tmp_path / name, tmp_path / "out")
    two = make_model([helper.make_node("Add", ["x", "z"], ["y"])], [("x", [1, 1, 2, 2]), ("z", [1, 1, 2, 2])], None)
    onnx.save(two, tmp_path / "two.onnx")
    with pytest.raises(ConversionError, match="2 inputs"):
        onnx_to_darknet.onnx_to_darknet(tmp_path / "two.onnx", tmp_path / "out")
    assert not list(tmp_path.glob("out.*"))


def test_open_input_size_needs_input_shape(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MaxPool", ["r"], ["y"],
                                                                                  kernel_shape=[2, 2], strides=[2, 2])],
                       [("x", ["n", 3, "h", "w"])], None)
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ConversionError, match=r"give C,H,W \(--input-shape\)"):
        onnx_to_darknet.onnx_to_darknet(tmp_path / "m.onnx", tmp_path / "out")
    run_both(tmp_path, model, (3, 10, 8), input_shape=(3, 10, 8))
    assert "width=8\nheight=10\nchannels=3" in (tmp_path / "out.cfg").read_text()


def test_cli(tmp_path, capsys):
    out = tmp_path / "dn" / "r18"
    assert onnx2darknet.main([str(FIXTURES / "resnet18.onnx"), "-o", str(out), "--verify",
                              "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime" in printed and ": ok" in printed and "the network output 'output'" in printed
    assert {p.name for p in out.parent.iterdir()} == {"r18.cfg", "r18.weights", "r18.json"}
    stated = json.loads(out.with_suffix(".json").read_text())["preprocessing"]
    assert stated["mean"] == [0.485, 0.456, 0.406] and stated["channel_order"] == "RGB"
    assert stated["scale"] == pytest.approx([1 / 0.229, 1 / 0.224, 1 / 0.225])
    assert onnx2darknet.main([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x")]) == 2
    assert "missing.onnx: no such file" in capsys.readouterr().err
