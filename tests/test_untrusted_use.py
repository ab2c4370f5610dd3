"""Bad input at the surfaces people call: annotation, API and CLI arguments, Python
layers, the Caffe tools and the numerical checks. One regression test per defect the
red team found (issue 13); the input-file cases are in test_untrusted_input.py."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import pydarknet

from conftest import run_child


# -- annotation ---------------------------------------------------------------------

def test_annotate_arguments_are_checked(official, tmp_path):
    net = pydarknet.Network(*official)
    dog = pydarknet.samples.path("dog.jpg")
    with pytest.raises(ValueError, match="3 images"):
        pydarknet.detect_batch(net, [dog] * 3, annotate=[str(tmp_path / "one")])
    with pytest.raises(TypeError, match="one path per image"):
        pydarknet.detect_batch(net, [dog], annotate=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="both write"):
        pydarknet.detect_batch(net, [dog, dog], annotate=[tmp_path / "x", tmp_path / "x"])
    with pytest.raises(pydarknet.FileError, match="cannot write"):
        pydarknet.detect_batch(net, [dog], annotate=[tmp_path / "missing" / "x"])
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_non_ascii_labels_are_drawn(official, tmp_path):
    cfg, weights = official
    names = [f"chèvre {i}" for i in range(80)]
    code = f"""
        import pydarknet
        net = pydarknet.Network({str(cfg)!r}, {str(weights)!r}, names={names!r})
        found = pydarknet.detect_batch(net, [pydarknet.samples.path("dog.jpg")], annotate=[{str(tmp_path / 'a')!r}])
        print("found", len(found[0]))
    """
    run = run_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "a.jpg").stat().st_size > 10_000


def test_cli_detect_refuses_colliding_outputs(official, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dog.jpg").write_bytes(pydarknet.samples.path("dog.jpg").read_bytes())
    cfg, weights = official
    run = subprocess.run([sys.executable, "-m", "pydarknet", "detect", "--cfg", str(cfg), "--weights", str(weights),
                          str(tmp_path / "a/dog.jpg"), str(tmp_path / "b/dog.jpg"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "would both be written" in run.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_detect_write_failure_is_an_error(official, tmp_path):
    import resource

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    cfg, weights = official
    run = subprocess.run([sys.executable, "-m", "pydarknet", "detect", "--cfg", str(cfg), "--weights", str(weights),
                          str(pydarknet.samples.path("dog.jpg")), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, preexec_fn=small_files)
    assert run.returncode == 2 and "cannot write" in run.stderr, run.stderr[-1000:]
    assert list((tmp_path / "out").iterdir()) == []


# -- API arguments --------------------------------------------------------------------

def test_api_misuse_gives_typed_errors(official, tmp_path):
    det = pydarknet.Network(*official)
    dog = pydarknet.samples.path("dog.jpg")
    with pytest.raises(ValueError, match="detector"):
        pydarknet.classify(det, dog)
    with pydarknet.Network(pydarknet.upstream_path("cfg/tiny.cfg")) as clf:
        with pytest.raises(ValueError):
            pydarknet.classify(clf, dog, top=-1)
    with pytest.raises(ValueError):
        pydarknet.Network(official[0], batch=2**31)
    with pytest.raises(ValueError):
        pydarknet.set_num_threads(10**6)
    with pytest.raises(ValueError):
        pydarknet.detect("no-such-model", dog)
    with pytest.raises(ValueError):
        pydarknet.unregister_layer("no-such-layer")
    (tmp_path / "adir").mkdir()
    with pytest.raises(pydarknet.FileError):
        pydarknet.Network(*official, fold_bn=False).save_weights(tmp_path / "adir")
    with pytest.raises(ValueError):
        det.layer_outputs(np.zeros((0, 3, 416, 416), np.float32))


def test_batch_overflowing_int_is_a_cfg_error(official):
    with pytest.raises(pydarknet.CfgError, match="limit"):
        pydarknet.Network(official[0], batch=10**6)


def test_outputs_that_name_one_file_are_refused(tiny_cfg, tiny_weights, tmp_path):
    target = tmp_path / "same.weights"
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        with pytest.raises(ValueError, match="same file"):
            net.save_weights(target, cfg=target)
    run = subprocess.run([sys.executable, "-m", "pydarknet.fold_bn", str(tiny_cfg), str(tiny_weights),
                          "-o", str(tmp_path / "x.cfg"), str(tmp_path / "x.cfg")], capture_output=True, text=True)
    assert run.returncode == 2 and "same file" in run.stderr
    run = subprocess.run([sys.executable, "-m", "pydarknet.fold_bn", str(tiny_cfg), str(tiny_weights),
                          "-o", str(tiny_cfg), str(tmp_path / "y.weights")], capture_output=True, text=True)
    assert run.returncode == 2 and "overwrite the input" in run.stderr
    assert list(tmp_path.glob("x.*")) == [] and not (tmp_path / "y.weights").exists()


def test_duplicate_cfg_key_folds_to_a_loadable_pair(tmp_path, tiny_cfg, tiny_weights):
    text = tiny_cfg.read_text().replace("batch_normalize=1\nfilters=8",
                                        "batch_normalize=1\nbatch_normalize=1\nfilters=8")
    dup = tmp_path / "dup.cfg"
    dup.write_text(text)
    from pydarknet.transforms.fold_darknet import fold
    fold(dup, tiny_weights, tmp_path / "f.cfg", tmp_path / "f.weights")
    with pydarknet.Network(tmp_path / "f.cfg", tmp_path / "f.weights") as net:
        assert net.layers[0].batch_normalize is False


def test_patches_apply_refuses_a_foreign_folder(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    run = subprocess.run([sys.executable, "-m", "pydarknet", "patches", "apply", str(target)],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "not a patched tree" in run.stderr
    assert (target / "keep.txt").read_text() == "precious"


# -- Python layers ---------------------------------------------------------------------

def test_python_layer_input_outlives_the_network(tiny_cfg, tmp_path):
    kept = []
    pydarknet.register_layer("keep_input", output_shape=lambda shape, params: shape,
                             forward=lambda x, params: kept.append(x) or x)
    try:
        cfg = tmp_path / "py.cfg"
        cfg.write_text(tiny_cfg.read_text().replace("[maxpool]", "[keep_input]\n\n[maxpool]"))
        with pydarknet.Network(cfg) as net:
            net.predict(np.ones(net.input_shape, np.float32))
        kept[0][:] = 7  # its own memory: writable, and the network's buffers are gone
        assert float(kept[0].sum()) == 7 * kept[0].size
    finally:
        pydarknet.unregister_layer("keep_input")


def test_python_layer_cannot_reenter_its_network(tiny_cfg, tmp_path):
    holder = {}

    def forward(x, params):
        holder["net"].predict(np.ones(holder["net"].input_shape, np.float32))
        return x

    pydarknet.register_layer("reenter", output_shape=lambda shape, params: shape, forward=forward)
    try:
        cfg = tmp_path / "py.cfg"
        cfg.write_text(tiny_cfg.read_text().replace("[maxpool]", "[reenter]\n\n[maxpool]"))
        with pydarknet.Network(cfg) as net:
            holder["net"] = net
            with pytest.raises(RuntimeError, match="forward pass"):
                net.predict(np.ones(net.input_shape, np.float32))
            net.predict  # the network stays usable
    finally:
        pydarknet.unregister_layer("reenter")


def test_python_layer_network_open_at_exit_is_quiet(tiny_cfg):
    code = f"""
import numpy as np, pydarknet
pydarknet.register_layer("ident", output_shape=lambda s, p: s, forward=lambda x, p: x)
text = open({str(tiny_cfg)!r}).read().replace("[maxpool]", "[ident]\\n\\n[maxpool]")
open({str(tiny_cfg)!r} + ".py.cfg", "w").write(text)
net = pydarknet.Network({str(tiny_cfg)!r} + ".py.cfg")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "", run.stderr


# -- Caffe tools -------------------------------------------------------------------------

CAFFE_CASES = ["group0", "stride0", "poolstride0", "eltwise1", "notop", "concat", "unread", "empty"]


@pytest.mark.parametrize("case", CAFFE_CASES)
def test_malformed_caffe_models_give_caffe_errors(tmp_path, case):
    from support.caffe_models import NetBuilder

    b = NetBuilder(shape=(3, 8, 8), seed=1)
    c1 = b.conv("conv1", "data", "conv1", 4)
    pool = b.simple("pool1", "Pooling", ["conv1"], "pool1", pooling_param__pool=0,
                    pooling_param__kernel_size=2, pooling_param__stride=2)
    c2 = b.conv("conv2", "pool1", "conv2", 4)
    s = b.simple("sum", "Eltwise", ["pool1", "conv2"], "sum")
    b.inner_product("ip", "sum", "ip", 5)
    last = b.simple("prob", "Softmax", ["ip"], "prob")
    if case == "group0":
        c2.convolution_param.group = 0
    elif case == "stride0":
        c2.convolution_param.stride[:] = [0]
    elif case == "poolstride0":
        pool.pooling_param.stride = 0
    elif case == "eltwise1":
        del s.bottom[1]
    elif case == "notop":
        del last.top[:]
    elif case == "concat":
        s.type = "Concat"
        del s.bottom[:]
    elif case == "unread":
        c1.bottom[0] = "other"
    proto, model = b.write(tmp_path, case)
    if case == "empty":
        proto.write_text("# nothing but a comment\n")
    from pydarknet.transforms import caffe_to_darknet as convert
    from pydarknet.transforms.fold_caffe import fold
    with pytest.raises((pydarknet.CaffeError, pydarknet.ConversionError)):
        convert.caffe_to_darknet(proto, model, tmp_path / "out")
    with pytest.raises((pydarknet.CaffeError, pydarknet.ConversionError)):
        fold(proto, model, tmp_path / "f.prototxt", tmp_path / "f.caffemodel")
    assert not list(tmp_path.glob("out.*")) and not list(tmp_path.glob("f.*"))


def test_absurd_blob_dims_are_a_caffe_error():
    from pydarknet.formats.caffe import blob_array, messages

    blob = messages().BlobProto()
    blob.shape.dim.extend([2**40, 2**40])
    with pytest.raises(pydarknet.CaffeError):
        blob_array(blob)
    blob = messages().BlobProto()
    blob.shape.dim.extend([-1, -144])
    with pytest.raises(pydarknet.CaffeError):
        blob_array(blob)


@pytest.mark.parametrize("nan_first", [False, True])  # a later finite output must not replace it
def test_nan_counts_as_the_worst_difference(nan_first):
    from pydarknet.transforms import folding

    pairs = [("a", np.ones(4), np.ones(4) + 1e-3), ("b", np.ones(4), np.full(4, np.nan))]
    worst = folding.compare(pairs[::-1] if nan_first else pairs, "test", 1)
    assert worst.worst == "b" and not worst.ok
    assert math.isnan(worst.relative)
