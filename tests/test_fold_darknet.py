"""BatchNorm folding of Darknet models: the file tool (python -m pydarknet.fold_bn),
the C path (patch bn-free-weights: Network.fold_batchnorm, save_weights(fold_bn=True)), and
outputs of upstream's runtime before and after."""

import subprocess
import sys

import numpy as np
import pytest

import pydarknet
from pydarknet import fold_bn
from pydarknet.runtime import samples
from pydarknet.transforms import fold_darknet, folding
from pydarknet.formats.darknet import Cfg, Weights
from pydarknet.errors import FoldError, WeightsError

from conftest import TINY_CFG, random_input, write_model, write_random_weights

GROUPED_CFG = """\
# grouped convolutions with batch normalization
[net]
width=12
height=12
channels=4

[convolutional]
batch_normalize=1
filters=8
groups=2
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
groups=4
size=1
stride=1
pad=1
activation=linear

[convolutional]
filters=6
size=3
stride=2
pad=1
activation=logistic
"""

CONNECTED_CFG = """\
[net]
width=6
height=6
channels=3

[connected]
output=20
batch_normalize=1
activation=leaky

[connected]
output=7
batch_normalize=1
activation=linear
"""


def folded_outputs(cfg, weights, tmp_path, target="cpu", inputs=2):
    """(original outputs, folded outputs, fold report) on the same random inputs."""
    out_cfg, out_weights = tmp_path / "folded.cfg", tmp_path / "folded.weights"
    report = fold_darknet.fold(cfg, weights, out_cfg, out_weights, target=target)
    with pydarknet.Network(cfg, weights, fold_bn=False) as a, pydarknet.Network(out_cfg, out_weights) as b:
        assert not any(layer.batch_normalize for layer in b.layers)
        x = random_input((inputs, *a.input_shape), seed=3)
        return a.predict(x), b.predict(x), report


def assert_close(reference, folded):
    assert np.abs(reference - folded).max() <= 1e-4 * np.abs(reference).max()


def test_yolov3_tiny_official_weights(official, tmp_path):
    reference, folded, report = folded_outputs(*official, tmp_path)
    assert len(report.folded) == 11
    assert_close(reference, folded)


def test_yolov3_tiny_detections_unchanged(official, tmp_path):
    fold_darknet.fold(*official, tmp_path / "f.cfg", tmp_path / "f.weights")
    image = samples.path("dog.jpg")
    with pydarknet.Network(*official, fold_bn=False) as a, \
            pydarknet.Network(tmp_path / "f.cfg", tmp_path / "f.weights") as b:
        before, after = pydarknet.detect(a, image), pydarknet.detect(b, image)
    assert [d.label for d in after] == [d.label for d in before] and len(before) == 5
    for x, y in zip(before, after):
        assert abs(x.confidence - y.confidence) < 1e-4
        assert max(abs(p - q) for p, q in zip((x.x, x.y, x.w, x.h), (y.x, y.y, y.w, y.h))) < 0.05  # pixels


def test_resnet18_random_weights(tmp_path):
    cfg = pydarknet.upstream_path("cfg/resnet18.cfg")
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / "resnet18.weights", seed=4)
    reference, folded, report = folded_outputs(cfg, weights, tmp_path, inputs=1)
    assert len(report.folded) == 17  # grep -c batch_normalize=1 resnet18.cfg
    assert_close(reference, folded)


@pytest.mark.parametrize("text", [GROUPED_CFG, CONNECTED_CFG, TINY_CFG], ids=["grouped", "connected", "mixed"])
def test_small_models(tmp_path, text):
    reference, folded, _ = folded_outputs(*write_model(tmp_path, text, seed=5), tmp_path)
    assert_close(reference, folded)


def test_cfg_preserved_line_for_line(tmp_path):
    text = GROUPED_CFG.replace("\n", "\r\n").replace("batch_normalize=1\r\nfilters=8\r\ngroups=4",
                                                      "  batch_normalize = 1\r\nfilters=8\r\ngroups=4")
    cfg, weights = write_model(tmp_path, GROUPED_CFG)
    cfg.write_bytes(text.encode())  # same network, other spelling
    fold_darknet.fold(cfg, weights, tmp_path / "out.cfg", tmp_path / "out.weights")
    before, after = text.split("\r\n"), (tmp_path / "out.cfg").read_bytes().decode().split("\r\n")
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after)
    assert changed == [("batch_normalize=1", "batch_normalize=0"), ("  batch_normalize = 1", "  batch_normalize=0")]


def test_header_version_and_seen_preserved(tmp_path):
    cfg, weights = write_model(tmp_path, TINY_CFG)
    data = bytearray(weights.read_bytes())
    old = np.array([0, 1, 0, 12345], dtype="<i4").tobytes() + bytes(data[20:])  # 0.1: 4-byte seen
    weights.write_bytes(old)
    fold_darknet.fold(cfg, weights, tmp_path / "o.cfg", tmp_path / "o.weights")
    header = (tmp_path / "o.weights").read_bytes()[:16]
    assert np.frombuffer(header, dtype="<i4").tolist() == [0, 1, 0, 12345]
    with pydarknet.Network(tmp_path / "o.cfg", tmp_path / "o.weights"):
        pass


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_c_path_writes_the_same_bytes(tmp_path, target):
    """Two implementations of one formula: Python on the files, C on the loaded network."""
    for name, text in (("grouped", GROUPED_CFG), ("connected", CONNECTED_CFG), ("tiny", TINY_CFG)):
        cfg, weights = write_model(tmp_path, text, seed=6, name=name)
        fold_darknet.fold(cfg, weights, tmp_path / f"{name}-py.cfg", tmp_path / f"{name}-py.weights", target=target)
        with pydarknet.Network(cfg, weights, fold_bn=False) as net:
            written_cfg = net.save_weights(tmp_path / f"{name}-c.weights", fold_bn=True, target=target)
            assert any(layer.batch_normalize for layer in net.layers)  # the network is unchanged
        assert written_cfg == tmp_path / f"{name}-c.cfg"
        assert written_cfg.read_text() == (tmp_path / f"{name}-py.cfg").read_text()
        assert (tmp_path / f"{name}-c.weights").read_bytes() == (tmp_path / f"{name}-py.weights").read_bytes()


def test_fold_in_memory(official, tmp_path):
    with pydarknet.Network(*official, fold_bn=False) as net:
        x = random_input((1, *net.input_shape), seed=7)
        reference = net.predict(x)
        folded = net.fold_batchnorm()
        assert len(folded) == 11 and not any(layer.batch_normalize for layer in net.layers)
        assert_close(reference, net.predict(x))
        in_memory = net.predict(x)
        with pytest.raises(ValueError, match="no longer fit yolov3-tiny.cfg: pass cfg="):
            net.save_weights(tmp_path / "mem.weights")
        cfg = net.save_weights(tmp_path / "mem.weights", cfg=tmp_path / "mem.cfg")
    assert cfg == tmp_path / "mem.cfg"
    with pydarknet.Network(cfg, tmp_path / "mem.weights") as reloaded:
        assert np.array_equal(reloaded.predict(x), in_memory)


def test_gpu_target_uses_the_gpu_denominator(tmp_path):
    """Folded for the GPU and run on this CPU build: off by the two denominators'
    difference, which tiny variances make large; folded for the CPU: exact."""
    cfg, weights = write_model(tmp_path, CONNECTED_CFG)
    with pydarknet.Network(cfg) as net:
        loaded = Weights.read(weights, [layer.n_params for layer in net.layers])
    loaded.layers[0][-20:] = 1e-6  # connected: biases, weights, scales, mean, variance
    loaded.write(weights)
    results = {}
    for target in ("cpu", "gpu"):
        (tmp_path / target).mkdir()
        results[target] = folded_outputs(cfg, weights, tmp_path / target, target=target)[:2]
    assert_close(*results["cpu"])
    reference, gpu = results["gpu"]
    assert np.abs(reference - gpu).max() > 1e-2 * np.abs(reference).max()


def test_wrong_weights_size_writes_nothing(tmp_path):
    cfg, weights = write_model(tmp_path, TINY_CFG)
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(WeightsError, match="too short"):
        fold_darknet.fold(cfg, weights, tmp_path / "o.cfg", tmp_path / "o.weights")
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(WeightsError, match="too long"):
        fold_darknet.fold(cfg, weights, tmp_path / "o.cfg", tmp_path / "o.weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cfg", "model.weights"]


def test_standalone_batchnorm_is_an_error_unless_kept(tmp_path):
    cfg, weights = tmp_path / "model.cfg", tmp_path / "model.weights"
    cfg.write_text(TINY_CFG.replace("[maxpool]", "[batchnorm]\n\n[maxpool]"))
    with pydarknet.Network(cfg) as net:
        write_random_weights(net, weights)
    with pytest.raises(FoldError, match=r"model.cfg:15: layer 1: .*\[batchnorm\].*keep-unfoldable"):
        fold_darknet.fold(cfg, weights, tmp_path / "o.cfg", tmp_path / "o.weights")
    assert not (tmp_path / "o.cfg").exists() and not (tmp_path / "o.weights").exists()
    report = fold_darknet.fold(cfg, weights, tmp_path / "o.cfg", tmp_path / "o.weights", keep_unfoldable=True)
    assert len(report.folded) == 2 and "[batchnorm]" in report.kept[0]
    with pydarknet.Network(cfg, weights, fold_bn=False) as a, \
            pydarknet.Network(tmp_path / "o.cfg", tmp_path / "o.weights") as b:
        x = random_input((1, *a.input_shape))
        assert_close(a.predict(x), b.predict(x))


def test_partial_load_layers_are_refused(tmp_path):
    cfg, weights = tmp_path / "model.cfg", tmp_path / "model.weights"
    cfg.write_text(TINY_CFG.replace("filters=8\n", "filters=8\ndontloadscales=1\n", 1))
    with pydarknet.Network(cfg) as net:
        weights.write_bytes(np.array([0, 2, 0, 0, 0], dtype="<i4").tobytes() + bytes(4 * net.n_params))
    with pytest.raises(FoldError, match="dontloadscales"):
        fold_darknet.fold(cfg, weights, tmp_path / "o.cfg", tmp_path / "o.weights")


def test_cli(official, tmp_path, capsys):
    cfg, weights = official
    assert fold_bn.main([str(cfg), str(weights), "-o", str(tmp_path / "sub" / "tiny"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "folded 11 batch normalization layer(s)" in out and ": ok" in out
    assert Cfg.read(tmp_path / "sub" / "tiny.cfg").layers[0].get("batch_normalize") == "0"
    # explicit pair, either order; quiet
    assert fold_bn.main([str(cfg), str(weights), "-o", str(tmp_path / "b.weights"), str(tmp_path / "a.cfg"),
                         "-q"]) == 0
    assert capsys.readouterr().out == "" and (tmp_path / "a.cfg").exists()


def test_cli_errors(tmp_path):
    cfg, weights = write_model(tmp_path, TINY_CFG)
    weights.write_bytes(b"\0" * 10)
    run = subprocess.run([sys.executable, "-m", "pydarknet.fold_bn", str(cfg), str(weights), "-o",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode == 2 and "error:" in run.stderr and "too short" in run.stderr
    assert run.stdout == "" and not list(tmp_path.glob("o.*"))


def test_check_finds_a_wrong_fold(tmp_path):
    cfg, weights = write_model(tmp_path, GROUPED_CFG)
    out = tmp_path / "o.cfg", tmp_path / "o.weights"
    fold_darknet.fold(cfg, weights, *out)
    assert fold_darknet.check(cfg, weights, *out).ok
    with pydarknet.Network(out[0]) as net:
        folded = Weights.read(out[1], [layer.n_params for layer in net.layers])
    folded.layers[1][8 + 3] *= 1.01  # one weight of layer 1, after its 8 biases
    folded.write(out[1])
    result = fold_darknet.check(cfg, weights, *out)
    assert not result.ok and result.worst != "layer 0 (convolutional)" and "ABOVE" in str(result)


def test_cli_exits_1_when_the_check_fails(tmp_path, monkeypatch, capsys):
    cfg, weights = write_model(tmp_path, TINY_CFG)
    failing = folding.CheckResult("test runtime", 2, 5, "layer 3 (connected)", 0.5, 1.0)
    monkeypatch.setattr(fold_darknet, "check", lambda *paths: failing)
    assert fold_bn.main([str(cfg), str(weights), "-o", str(tmp_path / "o"), "--check", "-q"]) == 1
    assert "ABOVE the tolerance" in capsys.readouterr().out  # printed even with -q


def test_networks_fold_at_load_unless_asked_not_to(official, tmp_path):
    with pydarknet.Network(*official) as folded, pydarknet.Network(*official, fold_bn=False) as trained:
        assert not any(layer.batch_normalize for layer in folded.layers)
        assert sum(layer.batch_normalize for layer in trained.layers) == 11
        x = random_input((1, *folded.input_shape), seed=9)
        assert_close(trained.predict(x), folded.predict(x))
        cfg = folded.save_weights(tmp_path / "folded.weights", fold_bn=True)  # with its cfg
    assert cfg == tmp_path / "folded.cfg" and "batch_normalize=1" not in cfg.read_text()
