"""BatchNorm (+ Scale) folding of Caffe models, checked on OpenCV DNN 4.x: the
original and the folded files must give the same outputs there."""

import cv2  # noqa: F401  (a test dependency: OpenCV DNN is the reference Caffe runtime)
import numpy as np
import pytest

from pydarknet import fold_bn
from pydarknet.transforms import fold_caffe
from pydarknet.formats.caffe import messages, read_caffemodel, read_prototxt, write_model
from pydarknet.errors import CaffeError, FileError

from support.caffe_models import NetBuilder, as_v1, untransposed



def opencv_output(prototxt, caffemodel, x):
    """The model's output on OpenCV DNN, run layer by layer as written: OpenCV's own
    BatchNorm fusion is off (it gets grouped Deconvolution wrong, by up to 0.95 here)."""
    return fold_caffe.opencv_net(prototxt, caffemodel, x)[1].forward()


def fold_and_compare(builder, tmp_path, inputs=2):
    """Fold the builder's model; returns (report, folded layer types). Asserts that
    OpenCV gives the same outputs for both within 1e-4 of the largest."""
    prototxt, caffemodel = builder.write(tmp_path)
    out = tmp_path / "folded.prototxt", tmp_path / "folded.caffemodel"
    report = fold_caffe.fold(prototxt, caffemodel, *out)
    x = np.random.default_rng(1).random((inputs, *builder.shapes["data"]), dtype=np.float32)
    reference, folded = opencv_output(prototxt, caffemodel, x), opencv_output(*out, x)
    assert reference.shape == folded.shape
    assert np.abs(reference - folded).max() <= 1e-4 * np.abs(reference).max()
    return report, [layer.type for layer in read_prototxt(out[0]).layer]


def test_conv_bn_scale_relu_in_place(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "conv1", 8)
    b.batch_norm("bn1", "conv1", "conv1")
    b.scale("scale1", "conv1", "conv1")
    b.simple("relu1", "ReLU", ["conv1"], "conv1")
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Convolution", "ReLU"] and len(report.folded) == 1 and not report.kept


def test_conv_without_bias_gets_one(tmp_path):
    b = NetBuilder(input_style="Input")
    b.conv("conv1", "data", "c1", 6, bias=False)
    b.batch_norm("bn1", "c1", "b1")
    b.scale("scale1", "b1", "s1", bias=False)
    b.conv("conv2", "s1", "c2", 4, kernel=1)
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Input", "Convolution", "Convolution"]
    conv1 = read_caffemodel(tmp_path / "folded.caffemodel").layer[1]
    assert conv1.convolution_param.bias_term and len(conv1.blobs) == 2 and list(conv1.top) == ["s1"]


def test_bn_without_scale_and_custom_eps(tmp_path):
    b = NetBuilder(input_style="input_dim")
    b.conv("conv1", "data", "c1", 5)
    b.batch_norm("bn1", "c1", "b1", eps=1e-3)
    b.simple("relu", "ReLU", ["b1"], "r1")
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Convolution", "ReLU"]


@pytest.mark.parametrize("factor", [0.0, 1.0, 37.5])
def test_bn_scale_factor_blob(tmp_path, factor):
    """blob[2] is the moving-average factor: mean = blob0/s, var = blob1/s; s == 0 means 0."""
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4)
    b.batch_norm("bn1", "c1", "b1", factor=factor, eps=0.01)
    report, _ = fold_and_compare(b, tmp_path)
    assert len(report.folded) == 1


def test_bn_on_a_branch_stays(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4)
    b.batch_norm("bn1", "c1", "b1")
    b.scale("scale1", "b1", "s1")
    b.simple("sum", "Eltwise", ["c1", "s1"], "out")
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Convolution", "BatchNorm", "Scale", "Eltwise"] and not report.folded
    assert "also read by 'sum'" in report.kept[0]


def test_bn_after_pooling_stays_and_later_ones_fold(tmp_path):
    b = NetBuilder(shape=(3, 8, 8))
    b.simple("pool", "Pooling", ["data"], "p", pooling_param__kernel_size=2, pooling_param__stride=2)
    b.batch_norm("bn0", "p", "p")
    b.conv("conv1", "p", "c1", 4)
    b.batch_norm("bn1", "c1", "c1")
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Pooling", "BatchNorm", "Convolution"]
    assert "comes from Pooling 'pool'" in report.kept[0] and len(report.folded) == 1


def test_inner_product_bn_scale(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 3)
    b.inner_product("fc", "c1", "fc", 10)
    b.batch_norm("bn", "fc", "fc")
    b.scale("sc", "fc", "fc")
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Convolution", "InnerProduct"]


def test_transposed_inner_product(tmp_path):
    b = NetBuilder(shape=(3, 2, 2))
    b.inner_product("fc", "data", "fc", 6, transpose=True, bias=False)
    b.batch_norm("bn", "fc", "fc")
    b.scale("sc", "fc", "fc")
    prototxt, caffemodel = b.write(tmp_path)
    out = tmp_path / "folded.prototxt", tmp_path / "folded.caffemodel"
    assert len(fold_caffe.fold(prototxt, caffemodel, *out).folded) == 1
    assert read_prototxt(out[0]).layer[0].inner_product_param.transpose
    x = np.random.default_rng(1).random((2, 3, 2, 2), dtype=np.float32)
    reference = opencv_output(*untransposed(prototxt, caffemodel, "ref"), x)
    folded = opencv_output(*untransposed(*out, "fold"), x)
    assert np.abs(reference - folded).max() <= 1e-4 * np.abs(reference).max()


@pytest.mark.parametrize("deconv", [False, True])
def test_grouped_conv_and_deconv(tmp_path, deconv):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 8, group=2, deconv=deconv)
    b.batch_norm("bn1", "c1", "c1")
    b.scale("sc1", "c1", "c1")
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Deconvolution" if deconv else "Convolution"]


def test_scale_with_two_bottoms_stays(tmp_path):
    """A Scale by a second input is not a per-channel constant: BN folds alone.
    (Structure only: OpenCV DNN 4.x cannot run this Scale form.)"""
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4)
    b.conv("conv2", "data", "c2", 4)
    b.batch_norm("bn1", "c1", "b1")
    b.simple("mul", "Scale", ["b1", "c2"], "out")
    prototxt, caffemodel = b.write(tmp_path)
    report = fold_caffe.fold(prototxt, caffemodel, tmp_path / "o.prototxt", tmp_path / "o.caffemodel")
    folded = read_prototxt(tmp_path / "o.prototxt")
    assert [layer.type for layer in folded.layer] == ["Convolution", "Convolution", "Scale"]
    assert list(folded.layer[0].top) == ["b1"] and list(folded.layer[2].bottom) == ["b1", "c2"]
    assert "second bottom" in report.kept[0] and len(report.folded) == 1


def test_legacy_blob_shapes(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4, legacy=True)
    b.batch_norm("bn1", "c1", "c1", legacy=True)
    b.scale("sc1", "c1", "c1", legacy=True)
    b.inner_product("fc", "c1", "fc", 5, legacy=True)
    report, types = fold_and_compare(b, tmp_path)
    assert types == ["Convolution", "InnerProduct"]


def test_v1_files_are_upgraded(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4, legacy=True)
    b.simple("relu1", "ReLU", ["c1"], "c1")
    b.inner_product("fc", "c1", "fc", 5, legacy=True)
    v1 = as_v1(b)
    prototxt, caffemodel = tmp_path / "v1.prototxt", tmp_path / "v1.caffemodel"
    write_model(v1, prototxt, caffemodel)
    assert "layers {" in prototxt.read_text() and "CONVOLUTION" in prototxt.read_text()
    out = tmp_path / "o.prototxt", tmp_path / "o.caffemodel"
    fold_caffe.fold(prototxt, caffemodel, *out)
    upgraded = read_prototxt(out[0])
    assert [layer.type for layer in upgraded.layer] == ["Convolution", "ReLU", "InnerProduct"]
    assert upgraded.layer[0].param[1].lr_mult == 2.0
    x = np.random.default_rng(2).random((1, 4, 6, 6), dtype=np.float32)
    assert np.array_equal(opencv_output(prototxt, caffemodel, x), opencv_output(*out, x))


def test_other_fields_preserved(tmp_path):
    b = NetBuilder()
    conv = b.conv("conv1", "data", "c1", 4)
    conv.param.add(lr_mult=1, decay_mult=1)
    conv.convolution_param.weight_filler.type = "msra"
    b.batch_norm("bn1", "c1", "c1")
    b.simple("drop", "Dropout", ["c1"], "c1", dropout_param__dropout_ratio=0.3)
    train_only = b.simple("loss_helper", "ReLU", ["c1"], "unused")
    train_only.include.add(phase=messages().NetState().phase ^ 1)  # TRAIN
    fold_and_compare(b, tmp_path)
    folded = read_prototxt(tmp_path / "folded.prototxt")
    assert folded.name == "test" and folded.layer[0].convolution_param.weight_filler.type == "msra"
    assert folded.layer[1].dropout_param.dropout_ratio == pytest.approx(0.3)
    assert folded.layer[2].name == "loss_helper" and folded.layer[2].include[0].phase == 0
    assert "blobs" not in (tmp_path / "folded.prototxt").read_text()


def test_cli_with_check(tmp_path, capsys):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4)
    b.batch_norm("bn1", "c1", "c1")
    prototxt, caffemodel = b.write(tmp_path)
    assert fold_bn.main([str(prototxt), str(caffemodel), "-o", str(tmp_path / "out" / "m"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "BatchNorm 'bn1' into Convolution 'conv1'" in out and "OpenCV DNN" in out and ": ok" in out
    assert fold_bn.main([str(prototxt), str(caffemodel), "-o", str(tmp_path / "x"), "--target", "gpu"]) == 2


def test_bad_files_write_nothing(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4)
    b.batch_norm("bn1", "c1", "c1")
    prototxt, caffemodel = b.write(tmp_path)
    out = tmp_path / "o.prototxt", tmp_path / "o.caffemodel"
    good = caffemodel.read_bytes()
    caffemodel.write_bytes(good[:len(good) // 2])
    with pytest.raises(CaffeError, match="model.caffemodel: .*truncated"):
        fold_caffe.fold(prototxt, caffemodel, *out)
    caffemodel.write_bytes(good)
    text = prototxt.read_text()
    prototxt.write_text(text.replace("num_output: 4", "num_output: four"))
    with pytest.raises(CaffeError, match=r"model.prototxt:\d+: .*num_output"):
        fold_caffe.fold(prototxt, caffemodel, *out)
    prototxt.write_text(text)
    with pytest.raises(CaffeError, match="not a text prototxt"):
        fold_caffe.fold(caffemodel, caffemodel, *out)
    with pytest.raises(FileError, match="missing.caffemodel"):
        fold_caffe.fold(prototxt, tmp_path / "missing.caffemodel", *out)
    assert not out[0].exists() and not out[1].exists()


def test_blobs_that_do_not_fit_are_a_caffe_error(tmp_path):
    b = NetBuilder()
    b.conv("conv1", "data", "c1", 4)
    b.batch_norm("bn1", "c1", "c1")
    b.net.layer[0].blobs[1].shape.dim[0] = 2  # 4 biases declared as 2
    prototxt, caffemodel = b.write(tmp_path)
    with pytest.raises(CaffeError, match="model.caffemodel: a blob holds 4 values for its shape"):
        fold_caffe.fold(prototxt, caffemodel, tmp_path / "o.prototxt", tmp_path / "o.caffemodel")
    other = NetBuilder()
    other.conv("conv1", "data", "c1", 5)
    other.batch_norm("bn1", "c1", "c1")
    other.write(tmp_path, "other")
    b.net.layer[0].blobs[1].shape.dim[0] = 4
    b.write(tmp_path)
    with pytest.raises(CaffeError, match=r"Convolution .conv1.: weights have shape \(4, 4, 3, 3\).*does not belong"):
        fold_caffe.fold(tmp_path / "other.prototxt", caffemodel, tmp_path / "o.prototxt", tmp_path / "o.caffemodel")
    assert not (tmp_path / "o.prototxt").exists()
