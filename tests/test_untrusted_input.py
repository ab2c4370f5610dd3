"""Bad input never ends the process: one regression test per class of crash or silent
misbehaviour found by the red team (issue 13). Cases that ended the interpreter run in
a child process, so a regression fails its test instead of killing the test run."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pydarknet

NET = "[net]\nbatch=1\nwidth={w}\nheight={h}\nchannels={c}\n\n"


def cfg_file(tmp_path, body, w=16, h=16, c=3, name="case.cfg"):
    path = tmp_path / name
    path.write_text(NET.format(w=w, h=h, c=c) + textwrap.dedent(body))
    return path


def run_child(code: str, memory_mb: int = 0, timeout: int = 120) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter; if memory_mb is given, its address space capped at
    memory_mb more than pydarknet and its libraries take once imported (a GPU build maps
    hundreds of MB of CUDA libraries before any network exists)."""
    prefix = textwrap.dedent(f"""
        import resource, pydarknet.binding
        with open("/proc/self/status") as status:
            mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (mapped + {memory_mb * 2**20}, mapped + {memory_mb * 2**20}))
    """) if memory_mb else ""
    return subprocess.run([sys.executable, "-c", prefix + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


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
