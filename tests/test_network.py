"""Loading upstream cfgs, running them, saving and reloading weights."""

import os

import numpy as np
import pytest

import pydarknet

from conftest import random_input, write_random_weights


@pytest.mark.parametrize("cfg, input_shape, output_shape", [
    ("cfg/yolov3-tiny.cfg", (3, 416, 416), (255, 26, 26)),
    ("cfg/resnet18.cfg", (3, 256, 256), (1000,)),
    ("cfg/darknet.cfg", (3, 256, 256), (1000,)),
])
def test_upstream_cfgs_load_and_run_with_random_init(cfg, input_shape, output_shape):
    path = pydarknet.upstream_path(cfg)
    sections = [l.strip() for l in path.read_text().splitlines() if l.startswith("[")]
    with pydarknet.Network(path) as net:
        assert net.input_shape == input_shape
        assert net.output_shape == output_shape
        assert [l.type for l in net.layers][:3] == [s.strip("[]") for s in sections[1:4]]
        assert len(net.layers) == len(sections) - 1
        out = net.predict(random_input(input_shape))
        assert out.shape == output_shape and out.dtype == np.float32


def test_layer_summary_shapes_and_bflops(tiny_cfg):
    with pydarknet.Network(tiny_cfg) as net:
        conv, pool, conv2, fc, softmax = net.layers
        assert (conv.type, conv.input_shape, conv.output_shape) == ("convolutional", (3, 16, 16), (8, 16, 16))
        assert (conv.filters, conv.size, conv.stride, conv.activation) == (8, 3, 1, "leaky")
        assert conv.batch_normalize and conv.bflops == pytest.approx(2 * 8 * 3 * 3 * 3 * 16 * 16 / 1e9)
        assert (pool.type, pool.output_shape) == ("maxpool", (8, 8, 8))
        assert conv2.output_shape == (4, 8, 8)  # pad=1 with size 1 means padding 0
        assert (fc.type, fc.bflops) == ("connected", pytest.approx(2 * 256 * 5 / 1e9))
        assert softmax.type == "softmax" and net.output_shape == (5,)
        assert net.n_params == (8 * 4 + 8 * 27) + (4 + 4 * 8) + (5 * 4 + 5 * 256)
        table = net.summary()
        assert "convolutional" in table and "3x16x16" in table and "BFLOPs" in table


def test_upstream_summary_of_yolov3_tiny_matches_the_official_weights_size(yolo_cfg):
    with pydarknet.Network(yolo_cfg) as net:
        # the official yolov3-tiny.weights is 35,434,956 bytes (models.md)
        assert 20 + 4 * net.n_params == 35_434_956
        assert [l.type for l in net.layers].count("upsample") == 1


def test_weights_round_trip_is_byte_and_output_identical(tiny_cfg, tiny_weights, tmp_path):
    x = random_input((3, 16, 16), seed=3)
    with pydarknet.Network(tiny_cfg, tiny_weights, fold_bn=False) as net:  # the trained layout
        expected = net.predict(x)
        assert net.save_weights(tmp_path / "saved.weights") is None  # no cfg: the layout is the cfg's
    assert (tmp_path / "saved.weights").read_bytes() == tiny_weights.read_bytes()
    with pydarknet.load(tiny_cfg, tmp_path / "saved.weights", fold_bn=False) as again:
        np.testing.assert_array_equal(again.predict(x), expected)
    assert np.isfinite(expected).all() and expected.sum() == pytest.approx(1, abs=1e-5)


def test_yolov3_tiny_round_trip(yolo_cfg, yolo_weights, tmp_path):
    x = random_input((3, 416, 416), seed=4)
    with pydarknet.Network(yolo_cfg, yolo_weights, fold_bn=False) as net:
        expected = net.predict(x)
        net.save_weights(tmp_path / "again.weights")
    with pydarknet.Network(yolo_cfg, tmp_path / "again.weights", fold_bn=False) as net:
        np.testing.assert_array_equal(net.predict(x), expected)
    assert np.isfinite(expected).all()


def test_weights_change_the_output(tiny_cfg, tiny_weights, tmp_path):
    other = tmp_path / "other.weights"
    with pydarknet.Network(tiny_cfg) as net:
        write_random_weights(net, other, seed=99)
    x = random_input((3, 16, 16))
    with pydarknet.Network(tiny_cfg, tiny_weights) as a, pydarknet.Network(tiny_cfg, other) as b:
        assert not np.array_equal(a.predict(x), b.predict(x))


def test_batched_network_equals_single_image_runs(tiny_cfg, tiny_weights):
    images = random_input((5, 3, 16, 16), seed=5)
    with pydarknet.Network(tiny_cfg, tiny_weights) as single, \
            pydarknet.Network(tiny_cfg, tiny_weights, batch=4) as batched:
        assert batched.batch == 4
        one_by_one = np.stack([single.predict(image) for image in images])
        # a BLAS GEMM over 4 rows may sum in another order than over 1: float32 rounding
        np.testing.assert_allclose(batched.predict(images), one_by_one, rtol=1e-5, atol=1e-7)  # 4 + 1
        np.testing.assert_array_equal(single.predict(images), one_by_one)


def test_predict_validates_its_input(tiny_cfg):
    with pydarknet.Network(tiny_cfg) as net:
        with pytest.raises(TypeError, match="numpy.ndarray"):
            net.predict([[0.0]])
        with pytest.raises(TypeError, match="float32"):
            net.predict(np.zeros((3, 16, 16)))
        with pytest.raises(ValueError, match=r"expected \(3, 16, 16\)"):
            net.predict(np.zeros((3, 16, 15), np.float32))
        with pytest.raises(ValueError, match="does not fit"):
            net.predict(np.zeros((16, 16), np.float32))


def test_non_contiguous_input_and_fresh_output(tiny_cfg, tiny_weights):
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        big = random_input((3, 32, 32), seed=6)
        strided = big[:, ::2, ::2]
        assert not strided.flags.c_contiguous
        first = net.predict(strided)
        np.testing.assert_array_equal(first, net.predict(np.ascontiguousarray(strided)))
        kept = first.copy()
        first[:] = -1
        np.testing.assert_array_equal(net.predict(strided), kept)


def test_close_and_context_manager(tiny_cfg):
    net = pydarknet.Network(tiny_cfg)
    assert "tiny.cfg" in repr(net) and not net.closed
    net.close()
    net.close()  # idempotent
    assert net.closed and "closed" in repr(net)
    with pytest.raises(ValueError, match="closed"):
        net.predict(random_input((3, 16, 16)))
    with pydarknet.Network(tiny_cfg) as managed:
        pass
    assert managed.closed


def test_quiet_unless_verbose(tiny_cfg, tiny_weights, tmp_path, capfd):
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        net.predict(random_input((3, 16, 16)))
        net.save_weights(tmp_path / "q.weights", fold_bn=True)
    assert capfd.readouterr() == ("", "")
    with pydarknet.Network(tiny_cfg, tiny_weights, verbose=True):
        pass
    err = capfd.readouterr().err
    assert "conv" in err and "BFLOPs" in err and "Loading weights" in err


def test_bad_constructor_arguments(tiny_cfg):
    with pytest.raises(ValueError, match="batch"):
        pydarknet.Network(tiny_cfg, batch=0)
    with pytest.raises(TypeError, match="cfg must be a path"):
        pydarknet.Network(42)


def test_failed_save_leaves_no_file_behind(tiny_cfg, tmp_path):
    with pydarknet.Network(tiny_cfg) as net:
        with pytest.raises(pydarknet.FileError, match="cannot open"):
            net.save_weights(tmp_path / "no-such-dir" / "x.weights")
        target = tmp_path / "kept.weights"
        target.write_bytes(b"old")
        net.save_weights(target)
    assert target.stat().st_size == 20 + 4 * net.n_params
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.weights", "tiny.cfg"]


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_stays_flat_when_loading_in_a_loop(tiny_cfg, tmp_path):
    """Each leaked load would cost tens of kB (the im2col workspace; a half-built network)."""
    bad = tmp_path / "bad.cfg"
    bad.write_text(tiny_cfg.read_text().replace("activation=linear", "activation=nope"))

    def virtual_kb():
        return int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE") // 1024

    def churn(count):
        for _ in range(count):
            with pydarknet.Network(tiny_cfg):
                pass
            with pytest.raises(pydarknet.CfgError):
                pydarknet.Network(bad)

    churn(100)  # let the allocator settle
    before = virtual_kb()
    churn(400)
    assert virtual_kb() - before < 2048


def test_deconvolutional_weights_round_trip(tmp_path):
    """Upstream divided by an unset groups=0 here and killed the process (SIGFPE)."""
    cfg = tmp_path / "deconv.cfg"
    cfg.write_text("[net]\nbatch=1\nwidth=8\nheight=8\nchannels=3\n\n"
                   "[deconvolutional]\nfilters=4\nsize=2\nstride=2\nactivation=linear\n")
    x = random_input((3, 8, 8), seed=9)
    with pydarknet.Network(cfg) as net:
        assert net.layers[0].groups == 1 and net.output_shape == (4, 16, 16)
        expected = net.predict(x)
        net.save_weights(tmp_path / "deconv.weights")
    with pydarknet.Network(cfg, tmp_path / "deconv.weights") as net:
        np.testing.assert_array_equal(net.predict(x), expected)


def test_networks_alive_at_interpreter_exit_are_freed_quietly(tiny_cfg):
    import subprocess
    import sys

    script = (f"import pydarknet\nkept = pydarknet.Network({str(tiny_cfg)!r})\n"
              f"cycle = [pydarknet.Network({str(tiny_cfg)!r})]\ncycle.append(cycle)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


def test_layer_outputs(tiny_cfg, tiny_weights):
    with pydarknet.Network(tiny_cfg, tiny_weights, batch=2) as net:
        x = random_input((2, *net.input_shape), seed=4)
        outputs = net.layer_outputs(x)
        assert [o.shape[1:] for o in outputs] == [layer.output_shape for layer in net.layers[:-1]] + [(5,)]
        assert np.array_equal(outputs[-1], net.predict(x))  # softmax has no c*h*w shape
        # the input of layer 1 (maxpool) is layer 0's output: its max over 2x2 windows
        c, h, w = net.layers[0].output_shape
        pooled = outputs[0].reshape(2, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        assert np.array_equal(outputs[1], pooled)
        with pytest.raises(ValueError, match="1 to batch=2"):
            net.layer_outputs(random_input((3, *net.input_shape)))


def test_layer_times(tmp_path):
    """One median time per layer, and timing leaves predict unchanged. (Which layer is
    slower is not asserted: on a busy machine any single pass can stall.)"""
    cfg = tmp_path / "timed.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=128\n\n[convolutional]\nfilters=128\nsize=5\n"
                   "stride=1\npad=1\nactivation=linear\n\n[activation]\nactivation=relu\n")
    with pydarknet.Network(cfg) as net:
        weights = write_random_weights(net, tmp_path / "timed.weights")
    with pydarknet.Network(cfg, weights, batch=2) as net:
        x = random_input((2, *net.input_shape))
        before = net.predict(x)
        times = net.layer_times(x, runs=5)
        assert len(times) == len(net.layers) and all(isinstance(t, float) and t >= 0 for t in times)
        assert np.array_equal(net.predict(x), before)
        with pytest.raises(ValueError, match="1 to batch=2"):
            net.layer_times(random_input((3, *net.input_shape)))
        with pytest.raises(ValueError, match="runs must be at least 1"):
            net.layer_times(x, runs=0)


def test_loading_weights_skips_only_the_random_init_they_replace(tmp_path):
    """Parsing for a weights file skips the random initialisation the file overwrites
    (patch skip-replaced-random-init; the parity tests check what loaded networks compute), but a dontload
    layer, which the file does not fill, keeps upstream's random weights."""
    cfg = tmp_path / "dontload.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=4\nsize=3\nstride=1\n"
                   "pad=1\nactivation=linear\ndontload=1\n")
    weights = tmp_path / "header-only.weights"  # the only layer is not loaded: a header, no floats
    weights.write_bytes(np.array([0, 2, 0], np.int32).tobytes() + np.zeros(1, np.uint64).tobytes())
    with pydarknet.Network(cfg, weights) as net:
        assert net.layers[0].partial_load
        assert net.predict(random_input(net.input_shape)).std() > 0  # zero weights would give zeros
