"""[flatten], the section registry, precise parse errors, warnings, Python layers."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from pydarknet.source import patches

from conftest import REPO, SERIES, random_input, write_random_weights

NET = "[net]\nbatch=1\nwidth={w}\nheight={h}\nchannels={c}\n\n"
CONV = "[convolutional]\nfilters={n}\nsize=3\nstride=1\npad=1\nactivation=linear\n\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("batch", [1, 4])
def test_flatten_shape_and_values(tmp_path, batch):
    cfg = write(tmp_path, "f.cfg", NET.format(w=5, h=4, c=3) + "[flatten]\n")
    x = random_input((batch, 3, 4, 5), seed=batch)
    with pydarknet.Network(cfg, batch=batch) as net:
        assert net.layers[0].type == "flatten"
        assert (net.layers[0].input_shape, net.layers[0].output_shape) == ((3, 4, 5), (60, 1, 1))
        assert net.n_params == 0
        out = net.predict(x)
    np.testing.assert_array_equal(out.reshape(batch, -1), x.reshape(batch, -1))  # C,H,W order


def test_connected_after_flatten_equals_connected_on_the_map(tmp_path):
    body = CONV.format(n=6) + "{flatten}[connected]\noutput=7\nactivation=leaky\n\n[softmax]\n"
    head = NET.format(w=6, h=6, c=3)
    direct = write(tmp_path, "direct.cfg", head + body.format(flatten=""))
    flat = write(tmp_path, "flat.cfg", head + body.format(flatten="[flatten]\n\n"))
    with pydarknet.Network(direct) as net:
        weights = write_random_weights(net, tmp_path / "w.weights", seed=5)  # [flatten] has none
    x = random_input((2, 3, 6, 6), seed=6)
    with pydarknet.Network(direct, weights, batch=2, fold_bn=False) as a, \
            pydarknet.Network(flat, weights, batch=2, fold_bn=False) as b:
        assert [l.type for l in b.layers] == ["convolutional", "flatten", "connected", "softmax"]
        np.testing.assert_array_equal(a.predict(x), b.predict(x))
        b.save_weights(tmp_path / "again.weights")
    assert (tmp_path / "again.weights").read_bytes() == weights.read_bytes()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_flatten_cuda_kernels_compile_for_the_default_architectures(pristine, tmp_path, monkeypatch):
    # also shows that the build's default CUDA architecture list is one nvcc accepts
    monkeypatch.delenv("PYDARKNET_CUDA_ARCH", raising=False)
    monkeypatch.setenv("PYDARKNET_BACKEND", "none")  # a config that needs no CPU library
    sys.path.insert(0, str(REPO))
    import setup

    archs = setup.BuildConfig().cuda_arch
    tree = patches.apply_series(pristine, patches.load_series(SERIES))
    source = tmp_path / "flatten_layer_kernels.cu"
    source.write_bytes(tree["src/flatten_layer_kernels.cu"])
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    done = subprocess.run(["nvcc", "-c", str(source), "-o", str(tmp_path / "k.o"), *gencode],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "k.o").stat().st_size > 0


@pytest.mark.parametrize("extra, message", [
    ("[maxpool]\nsize=2\nstride=2\n\n[route]\nlayers=-1,-2\n", r"route inputs differ in size: layer 1 is 3 x 3"),
    # 6x5 pooled to 3x3: width shrinks by 2, height by 5/3, which shortcut_cpu cannot step
    ("[maxpool]\nsize=2\nstride=2\n\n" + CONV.format(n=4) + "[shortcut]\nfrom=-3\n",
     r"shortcut from layer 0 \(6 x 5 x 4\) does not fit this input \(3 x 3 x 4\)"),
])
def test_shape_mismatches_are_cfg_errors(tmp_path, extra, message):
    cfg = write(tmp_path, "m.cfg", NET.format(w=6, h=5, c=3) + CONV.format(n=4) + extra)
    with pytest.raises(pydarknet.CfgError, match=message) as info:
        pydarknet.Network(cfg)
    assert info.value.line is not None and info.value.section is not None


def test_dropout_as_first_layer(tmp_path):
    cfg = write(tmp_path, "d.cfg", NET.format(w=4, h=4, c=3) + "[dropout]\nprobability=.5\n")
    with pytest.raises(pydarknet.CfgError, match="dropout cannot be the first layer"):
        pydarknet.Network(cfg)


def test_unused_keys_are_warnings_with_lines(tmp_path, yolo_cfg):
    cfg = write(tmp_path, "w.cfg", NET.format(w=4, h=4, c=3) + CONV.format(n=2).replace("size=3", "size=3\nfilter=8"))
    key_line = cfg.read_text().splitlines().index("filter=8") + 1  # the key's own line, not its section's
    with pydarknet.Network(cfg) as net:
        assert net.warnings == [f"{cfg}:{key_line}: layer 0: unused key 'filter' (value '8'): "
                                "this section does not read it"]
    with pydarknet.Network(yolo_cfg) as net:
        assert net.warnings == []


def hard_swish(x, params):
    return x * np.clip(x + 3, 0, 6) / 6


@pytest.fixture
def python_layers():
    registered = []

    def register(name, **callbacks):
        pydarknet.register_layer(name, **callbacks)
        registered.append(name)

    yield register
    for name in registered:
        pydarknet.unregister_layer(name)


def test_python_layer_in_the_middle_of_a_network(tmp_path, python_layers):
    python_layers("hswish", output_shape=lambda shape, params: shape, forward=hard_swish)
    head = NET.format(w=6, h=6, c=3) + CONV.format(n=5)
    before = write(tmp_path, "before.cfg", head)
    with_layer = write(tmp_path, "with.cfg", head + "[hswish]\n\n[flatten]\n")
    with pydarknet.Network(before) as net:
        weights = write_random_weights(net, tmp_path / "w.weights")
    x = random_input((3, 3, 6, 6), seed=7)
    with pydarknet.Network(before, weights, batch=2) as a, pydarknet.Network(with_layer, weights, batch=2) as b:
        assert b.layers[1].type == "hswish" and b.layers[1].output_shape == (5, 6, 6)
        expected = hard_swish(a.predict(x), {}).reshape(3, -1)
        np.testing.assert_array_equal(b.predict(x).reshape(3, -1), expected)


def test_a_python_layers_buffers_count_against_the_memory_budget(tmp_path, python_layers):
    """A Python layer's output (here 4 x 1000 x 1000 floats, 16 MB) is charged to the
    network's memory budget like any layer's: over it, OutOfMemoryError at load."""
    python_layers("widen", output_shape=lambda shape, params: (4, 1000, 1000), forward=lambda x, params: None)
    cfg = write(tmp_path, "wide.cfg", NET.format(w=6, h=6, c=3) + "[widen]\n")
    with pytest.raises(pydarknet.OutOfMemoryError, match=r"more memory than its budget allows .* at .*python_layers\.c"):
        pydarknet.Network(cfg, max_memory=8_000_000)
    with pydarknet.Network(cfg, max_memory=64_000_000) as net:
        assert net.output_shape == (4, 1000, 1000)


def test_python_layer_with_params_at_the_end_of_resnet18(tmp_path, python_layers):
    def scale(x, params):
        return x * np.float32(params["factor"])

    python_layers("scale_all", output_shape=lambda shape, params: shape, forward=scale)
    original = pydarknet.upstream_path("cfg/resnet18.cfg")
    extended = write(tmp_path, "resnet18-scaled.cfg", original.read_text() + "\n[scale_all]\nfactor=2.5\n")
    with pydarknet.Network(original) as net:
        weights = write_random_weights(net, tmp_path / "r.weights")
    with pydarknet.Network(original, weights) as net:
        x = random_input(net.input_shape)
        expected = net.predict(x) * np.float32(2.5)
    assert np.isfinite(expected).all()
    with pydarknet.Network(extended, weights) as net:
        assert net.warnings == [] and net.layers[-1].type == "scale_all"
        np.testing.assert_array_equal(net.predict(x).reshape(-1), expected.reshape(-1))


EXCEPTIONS_CHILD = r"""
import sys
import numpy as np
import pydarknet
from pathlib import Path

class Boom(Exception):
    pass

fail = {"now": True}

def forward(x, params):
    if fail["now"]:
        raise Boom("forward failed")
    return x

folder, net_text = Path(sys.argv[1]), sys.argv[2]
pydarknet.register_layer("flaky", output_shape=lambda shape, params: shape, forward=forward)
pydarknet.register_layer("badshape", output_shape=lambda shape, params: (0, 1, 1), forward=forward)
(folder / "b.cfg").write_text(net_text + "[flaky]\n")
(folder / "s.cfg").write_text(net_text + "[badshape]\n")
(folder / "c.cfg").write_text(net_text + "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=leaky\n")
x = np.random.default_rng(0).random((3, 4, 4), dtype=np.float32)
for _ in range(3):
    fail["now"] = True
    with pydarknet.Network(folder / "b.cfg") as net:
        try:
            net.predict(x)
        except Boom as exc:
            print("forward:", exc)
        fail["now"] = False
        print("still usable:", bool((net.predict(x) == x).all()))
    try:
        pydarknet.Network(folder / "s.cfg")
    except ValueError as exc:
        print("output_shape:", exc)
    for _ in range(20):  # allocations after the failures: a damaged heap shows here
        with pydarknet.Network(folder / "c.cfg", batch=2) as net:
            net.predict(np.ones((2, 3, 4, 4), np.float32))
print("done")
"""


def test_exceptions_in_python_layers_come_out_as_themselves(tmp_path):
    """Run under glibc's heap checks where available: a forward pass left by a raised
    exception once left net->input pointing at the caller's buffer, which
    free_network() then freed (the glue now restores the network struct)."""
    env = dict(os.environ)
    checker = Path("/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")
    if checker.exists():
        env.update(LD_PRELOAD=str(checker), GLIBC_TUNABLES="glibc.malloc.check=3")
    run = subprocess.run([sys.executable, "-c", EXCEPTIONS_CHILD, str(tmp_path), NET.format(w=4, h=4, c=3)],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0 and run.stdout.endswith("done\n"), run.stderr[-2000:]
    assert "forward: forward failed" in run.stdout and "still usable: True" in run.stdout
    assert "output_shape:" in run.stdout and "three positive ints" in run.stdout


def test_python_layers_under_threads(tmp_path, python_layers):
    python_layers("hswish", output_shape=lambda shape, params: shape, forward=hard_swish)
    cfg = write(tmp_path, "t.cfg", NET.format(w=8, h=8, c=3) + CONV.format(n=4) + "[hswish]\n")
    with pydarknet.Network(cfg) as reference:
        weights = write_random_weights(reference, tmp_path / "t.weights")
    nets = [pydarknet.Network(cfg, weights) for _ in range(3)]
    inputs = [random_input((3, 8, 8), seed=s) for s in range(3)]
    expected = [net.predict(x) for net, x in zip(nets, inputs)]
    results = [None] * 3

    def run(i):
        for _ in range(5):
            results[i] = nets[i].predict(inputs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    for net in nets:
        net.close()


def test_registration_rules(tmp_path, python_layers):
    with pytest.raises(ValueError, match="built-in"):
        pydarknet.register_layer("convolutional", output_shape=lambda s, p: s, forward=hard_swish)
    with pytest.raises(ValueError, match="layer name"):
        pydarknet.register_layer("bad name", output_shape=lambda s, p: s, forward=hard_swish)
    cfg = write(tmp_path, "u.cfg", NET.format(w=4, h=4, c=3) + "[later]\n")
    with pytest.raises(pydarknet.CfgError, match=r"unknown section type \[later\]"):
        pydarknet.Network(cfg)
    python_layers("later", output_shape=lambda s, p: s, forward=hard_swish)
    with pydarknet.Network(cfg) as net:
        assert net.layers[0].type == "later"
    with pytest.raises(ValueError):
        pydarknet.unregister_layer("never-registered")
