"""Bad input never ends the process: one regression test per class of crash or silent
misbehaviour found by the red team (issue 13). Cases that ended the interpreter run in
a child process, so a regression fails its test instead of killing the test run."""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pytest

import pydarknet

from conftest import run_child

NET = "[net]\nbatch=1\nwidth={w}\nheight={h}\nchannels={c}\n\n"


def cfg_file(tmp_path, body, w=16, h=16, c=3, name="case.cfg"):
    path = tmp_path / name
    path.write_text(NET.format(w=w, h=h, c=c) + textwrap.dedent(body))
    return path


# -- cfg: sizes and parameters checked before a layer is made (patches strict-cfg-numbers, checked-layer-sizes) ----

SIZE_CASES = {
    "input overflows int": ("", dict(w=65536, h=65536, c=1), "width x height x channels"),
    "conv weights overflow": ("[convolutional]\nfilters=65536\nsize=1\n", dict(c=65536), "the weights"),
    "padding overflows the output": ("[convolutional]\nfilters=4\nsize=3\npadding=100000\n", {}, "the output"),
    "connected weights overflow": ("[connected]\noutput=100000\n", dict(w=256, h=256), "the weights"),
    "im2col workspace overflows": ("[convolutional]\nfilters=4\nsize=1000\npad=1\n", dict(w=64, h=64),
                                   "the workspace"),
    "size at INT_MAX": ("[convolutional]\nfilters=4\nsize=2147483647\npad=1\n", {}, "the padded input"),
    "maxpool window at INT_MAX": ("[maxpool]\nsize=2147483647\nstride=2\n", {}, "the padded input"),
    "deconvolution workspace": ("[deconvolutional]\nfilters=4\nsize=10000\n", {}, "the workspace"),
    "empty output before Winograd": ("[convolutional]\nfilters=4\nsize=3\nstride=1\n", dict(w=2, h=2),
                                     "empty output"),
    "empty output, stride 4": ("[convolutional]\nfilters=4\nsize=11\nstride=4\n", dict(w=6, h=6), "empty output"),
    "reorg stride not dividing": ("[convolutional]\nfilters=4\nsize=1\n\n[reorg]\nstride=3\n", {},
                                  "divisible"),
    "reorg negative extra": ("[convolutional]\nfilters=4\nsize=1\n\n[reorg]\nextra=-3\n", {},
                             "extra must not be negative"),
    "crop larger than input": ("[crop]\ncrop_height=32\ncrop_width=32\n", {}, "crop_height=32"),
    "lrn window": ("[lrn]\nsize=100000\n", {}, "size must be between 1 and"),
    "no layers": ("", {}, "no layers"),
    "steps without scales": ("", {}, "steps but 1 scales"),
    "route to a word": ("[convolutional]\nfilters=4\nsize=1\n\n[route]\nlayers=abc\n", {}, "layers=abc"),
    "route of empty items": ("[convolutional]\nfilters=4\nsize=1\n\n[route]\nlayers=,,,\n", {}, "layers=,,,"),
    "shortcut from a word": ("[convolutional]\nfilters=3\nsize=1\n\n[shortcut]\nfrom=x\n", {}, "from=x"),
    "size with junk": ("[convolutional]\nfilters=4\nsize=3x\n", {}, "size=3x"),
    "int out of range": ("[convolutional]\nfilters=99999999999\nsize=1\n", {}, "filters=99999999999"),
    "yolo input mismatch": ("[convolutional]\nfilters=10\nsize=1\n\n[yolo]\nmask=0,1,2\nclasses=80\nnum=3\n", {},
                            "set that layer's filters"),
}


def test_maxpool_window_wider_than_its_map_runs(tmp_path):
    """A window of 100 million on a 16x16 map (found by fuzzing the CPU kernel): the
    kernel looped over the whole window width per row, hours of work; the output is
    each channel's maximum over the map. In a child with a timeout, which a hang fails."""
    path = cfg_file(tmp_path, "[maxpool]\nsize=100000000\nstride=1\n")
    done = run_child(f"""
        import numpy as np, pydarknet
        x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
        with pydarknet.Network({str(path)!r}) as net:
            y = net.predict(x)
        assert y.shape == (1, 3 * 16 * 16) or y.shape == (1, 3, 16, 16), y.shape
        assert np.array_equal(y.reshape(3, -1), np.repeat(x.reshape(3, -1).max(axis=1, keepdims=True), 256, axis=1))
        """, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", sorted(SIZE_CASES))
def test_cfg_sizes_and_parameters_give_cfg_errors(tmp_path, case):
    body, shape, message = SIZE_CASES[case]
    path = cfg_file(tmp_path, body, **shape)
    if case == "steps without scales":
        path.write_text(path.read_text().replace("[net]", "[net]\npolicy=steps\nsteps=10,20,30\nscales=.1"))
    with pytest.raises(pydarknet.CfgError, match=message) as caught:
        pydarknet.Network(path)
    assert caught.value.file == str(path)


@pytest.mark.parametrize("body", [
    "[local]\nfilters=4\nsize=3\nstride=1\n",  # workspace in floats, not bytes: heap corruption
    "[crnn]\noutput_filters=4\nhidden_filters=4\n",  # workspace never sized: NULL im2col target
    "[convolutional]\nfilters=40\nsize=1\n\n[iseg]\nclasses=8\nids=32\n",  # training loss read net.truth
])
def test_upstream_layers_that_crashed_now_run(tmp_path, body):
    cfg = cfg_file(tmp_path, body)  # upstream's random initialisation: no weights needed
    code = f"""
        import numpy as np, pydarknet
        with pydarknet.Network({str(cfg)!r}) as net:
            y = net.predict(np.random.default_rng(0).random(net.input_shape, dtype=np.float32))
        print("ran", y.shape, bool(np.isfinite(y).all()))
    """
    run = run_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ran" in run.stdout and "True" in run.stdout


def test_cost_only_cfg_is_a_cfg_error(tmp_path):
    with pytest.raises(pydarknet.CfgError, match="only \\[cost\\] layers"):
        pydarknet.Network(cfg_file(tmp_path, "[cost]\ntype=sse\n"))


@pytest.mark.parametrize("size", [1, 2, 5])
def test_local_layer_output_matches_its_im2col(tmp_path, size):
    """pad=1 pads size/2 pixels, as for [convolutional] (upstream's output size assumed
    size 3 and overran the workspace otherwise)."""
    cfg = cfg_file(tmp_path, f"[local]\nfilters=2\nsize={size}\nstride=1\npad=1\n", w=8, h=8, c=2)
    code = f"""
        import numpy as np, pydarknet
        with pydarknet.Network({str(cfg)!r}) as net:
            print("shape", net.output_shape, net.predict(np.ones(net.input_shape, np.float32)).shape)
    """
    run = run_child(code)
    side = 8 + 2 * (size // 2) - size + 1
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"shape (2, {side}, {side})" in run.stdout


def test_letterbox_of_a_one_row_image(official):
    net = pydarknet.Network(*official)
    assert isinstance(pydarknet.detect(net, np.full((1, 2000, 3), 128, np.uint8)), list)


def test_vector_input_cfg_gets_a_usable_shape():
    with pydarknet.Network(pydarknet.upstream_path("cfg/rnn.cfg")) as net:
        assert net.input_shape == (256, 1, 1)
        assert net.predict(np.zeros(net.input_shape, np.float32)).shape == net.output_shape


def test_every_upstream_cfg_still_loads_or_refuses_cleanly():
    """The stricter parser must not refuse upstream's own cfgs for reasons other than
    what they really lack (e.g. a cfg made for an input size it does not declare)."""
    refused = {}
    for cfg in sorted(pydarknet.upstream_path("cfg/yolov3.cfg").parent.glob("*.cfg")):
        try:
            pydarknet.Network(cfg, batch=1).close()
        except pydarknet.DarknetError as exc:
            refused[cfg.name] = str(exc)
    strict = {name: why for name, why in refused.items() if "is not a whole number" in why
              or "is not a finite number" in why or "disagrees with" in why}
    assert not strict, strict


def test_failed_detection_layer_loads_do_not_leak(tmp_path):
    """The [yolo]/[region] input check runs before the layer is made (it leaked ~8 KB
    and hundreds of MB of address space per failed load)."""
    path = cfg_file(tmp_path, "[convolutional]\nfilters=10\nsize=1\n\n[region]\nclasses=20\nnum=5\n", w=416, h=416)
    code = f"""
        import pydarknet
        def vm():
            return int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1])
        for _ in range(3):
            try: pydarknet.Network({str(path)!r})
            except pydarknet.CfgError: pass
        before = vm()
        for _ in range(20):
            try: pydarknet.Network({str(path)!r})
            except pydarknet.CfgError: pass
        print("growth_kb", vm() - before)
    """
    run = run_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    growth = int(run.stdout.split("growth_kb")[1])
    assert growth < 20 * 1024, f"address space grew {growth} KB over 20 failed loads"


@pytest.mark.parametrize("section", ["[gru]\noutput=64", "[lstm]\noutput=64", "[rnn]\noutput=64",
                                     "[crnn]\noutput_filters=64\nhidden_filters=64"])
def test_recurrent_layers_free_their_sublayers(tmp_path, section):
    """gru, lstm, rnn and crnn make their sublayers with malloc; freeing the network
    left them (patch free-layer-parts; found by fuzzing, a gru of output=4 leaked ~140 KB a load).
    Resident size in a child: 300 loads of a network with ~1 MB of sublayers."""
    path = cfg_file(tmp_path, "[convolutional]\nfilters=4\nsize=1\n\n" + section + "\n", w=8, h=8, c=4)
    code = f"""
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        import pydarknet
        for _ in range(20):
            pydarknet.Network({str(path)!r}).close()
        before = rss()
        for _ in range(300):
            pydarknet.Network({str(path)!r}).close()
        print("growth", rss() - before)
    """
    run = run_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    growth = int(run.stdout.split("growth")[1])
    assert growth < 8 * 2**20, f"resident size grew {growth} bytes over 300 loads"


# (cfg body, net shape, max_memory): sections that fail after allocating (patch free-failed-sections,
# found by fuzzing): anchors malformed after [yolo] made its layer; a [gru] whose third
# sublayer exceeds the budget; a workspace past the budget once every layer is made
FAILING_SECTIONS = {
    "yolo anchors": ("[convolutional]\nfilters=21\nsize=1\n\n[yolo]\nmask=0,1,2\nanchors=4,5,8,9,,12\n"
                     "classes=2\nnum=4\n", dict(w=32, h=32), None),
    "gru over budget": ("[convolutional]\nfilters=4\nsize=1\n\n[gru]\noutput=2432\n", dict(w=8, h=8, c=4),
                        64 * 2**20),
    "workspace over budget": ("[convolutional]\nfilters=8\nsize=31\npad=1\n", dict(w=85, h=71, c=32),
                              64 * 2**20),
}


@pytest.mark.parametrize("case", sorted(FAILING_SECTIONS))
def test_failed_sections_leave_nothing_behind(tmp_path, case):
    body, shape, budget = FAILING_SECTIONS[case]
    path = cfg_file(tmp_path, body, **shape)
    code = f"""
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        import pydarknet
        def fail():
            try:
                pydarknet.Network({str(path)!r}, max_memory={budget!r})
            except pydarknet.DarknetError:
                return
            raise AssertionError("the load did not fail")
        for _ in range(10):
            fail()
        before = rss()
        for _ in range(100):
            fail()
        print("growth", rss() - before)
    """
    run = run_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    growth = int(run.stdout.split("growth")[1])
    assert growth < 4 * 2**20, f"resident size grew {growth} bytes over 100 failed loads"


# -- memory: checked allocations and the network budget (csrc/checked_alloc.c) ------

def test_allocation_failure_is_out_of_memory_error(tmp_path):
    cfg = pydarknet.upstream_path("cfg/darknet53.cfg")
    code = f"""
        import pydarknet
        try:
            pydarknet.Network({str(cfg)!r}, batch=3, max_memory=2**62)
        except pydarknet.OutOfMemoryError as exc:
            print("raised", exc)
    """
    # darknet53 at 256x256, batch 3, needs ~1.5 GB of layer buffers: under 600 MB it must fail cleanly
    run = run_child(code, memory_mb=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "raised" in run.stdout and "out of memory" in run.stdout


def test_network_memory_budget(tiny_cfg):
    with pytest.raises(pydarknet.OutOfMemoryError, match="budget"):
        pydarknet.Network(tiny_cfg, max_memory=10_000)
    pydarknet.Network(tiny_cfg, max_memory=10**8).close()  # the same network within its budget
    with pytest.raises(ValueError):
        pydarknet.Network(tiny_cfg, max_memory=0)


# -- weights: non-finite values refused (patch checked-weights-io) ------------------------------

def test_nan_in_weights_is_refused_with_the_layer(tmp_path, tiny_cfg, tiny_weights):
    data = bytearray(tiny_weights.read_bytes())
    data[-4:] = np.float32("nan").tobytes()
    bad = tmp_path / "nan.weights"
    bad.write_bytes(bytes(data))
    with pytest.raises(pydarknet.WeightsError, match="NaN") as caught:
        pydarknet.Network(tiny_cfg, bad)
    assert caught.value.section is not None
    with pydarknet.Network(tiny_cfg, bad, finite_weights=False, fold_bn=False) as net:  # the opt-out
        assert not np.isfinite(net.predict(np.zeros(net.input_shape, np.float32))).all()
    from pydarknet.transforms.fold_darknet import fold
    with pytest.raises(pydarknet.WeightsError, match="NaN"):
        fold(tiny_cfg, bad, tmp_path / "f.cfg", tmp_path / "f.weights")
    assert not (tmp_path / "f.cfg").exists()


def test_wrapped_header_version_reads_the_same_in_c_and_python(tmp_path, tiny_cfg, tiny_weights):
    """major*10+minor overflowed int in C (8-byte seen) where Python read 4 bytes."""
    data = bytearray(tiny_weights.read_bytes())
    header = np.array([-429496729, 0, 0], "<i4").tobytes() + (0).to_bytes(4, "little")
    bad = tmp_path / "wrapped.weights"
    bad.write_bytes(header + bytes(data[20:]))  # 4-byte seen, as Python's file layer reads it
    from pydarknet.formats.darknet import parse_header
    assert parse_header(bad.read_bytes()).seen_bytes == 4
    pydarknet.Network(tiny_cfg, bad).close()


# -- NaN and thresholds on the detection path (patch layer-crash-fixes) --------------------------

def test_nan_never_reaches_the_detection_arrays(official):
    cfg, weights = official
    code = f"""
        import numpy as np, pydarknet
        from pydarknet.runtime.images import Image
        net = pydarknet.Network({str(cfg)!r}, {str(weights)!r})
        # NaN everywhere in the input: objectness NaN fails both the count and the fill
        image = Image(np.full((3, 64, 64), np.nan, np.float32))
        print("boxes", sum(map(len, net.detect_raw([image], thresh=0.5))))
    """
    run = run_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "boxes" in run.stdout


@pytest.mark.parametrize("kwargs", [dict(thresh=float("nan")), dict(thresh=-1), dict(thresh=10**400),
                                    dict(nms=2.0), dict(hier_thresh=-0.5)])
def test_detect_arguments_are_checked(official, kwargs):
    net = pydarknet.Network(*official)
    with pytest.raises(ValueError):
        pydarknet.detect(net, pydarknet.samples.path("dog.jpg"), **kwargs)


# -- images ------------------------------------------------------------------------

@pytest.mark.parametrize("image", [np.zeros((0, 0, 3), np.uint8), np.zeros((3, 0, 5), np.float32)])
def test_zero_pixel_images(tiny_cfg, image):
    with pytest.raises(pydarknet.ImageError, match="no pixels"):
        pydarknet.load_image(image)


def test_float_images_with_nan_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        pydarknet.load_image(np.full((3, 4, 4), np.nan, np.float32))


def _png_header_only(width, height) -> bytes:
    """A PNG whose header declares width x height, with a tiny (invalid) body."""
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 16


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    bomb = _png_header_only(18000, 18000)
    with pytest.raises(pydarknet.ImageError, match="more than the limit"):
        pydarknet.load_image(bomb)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(pydarknet.ImageError, match="more than the limit"):
        pydarknet.load_image(path)
    with pytest.raises(pydarknet.ImageError, match="more than the limit"):
        pydarknet.load_image(np.zeros((20, 20, 3), np.uint8), max_pixels=399)


def test_uint8_conversion_equals_upstreams_division():
    pixels = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    expected = (pixels.astype(np.float64) / 255.0).astype(np.float32).transpose(2, 0, 1)
    assert np.array_equal(pydarknet.load_image(pixels).array, expected)


def test_damaged_pil_image_is_an_image_error():
    Image = pytest.importorskip("PIL.Image")
    data = pydarknet.samples.path("dog.jpg").read_bytes()[:20000]
    with pytest.raises(pydarknet.ImageError):
        pydarknet.load_image(Image.open(io.BytesIO(data)))
