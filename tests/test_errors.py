"""Bad input gives typed exceptions naming the place; the process lives on."""

import os
import subprocess
import sys
import textwrap

import pytest

import pydarknet

from conftest import TINY_CFG, random_input


def cfg_with(tmp_path, old, new, name="bad.cfg", count=1):
    assert old in TINY_CFG
    path = tmp_path / name
    path.write_text(TINY_CFG.replace(old, new, count))
    return path


def line_of(text, needle):
    return text[: text.index(needle)].count("\n") + 1


def test_missing_cfg(tmp_path):
    with pytest.raises(pydarknet.FileError, match="No such file") as info:
        pydarknet.Network(tmp_path / "missing.cfg")
    assert isinstance(info.value, OSError)
    assert "missing.cfg" in str(info.value)


def test_missing_weights(tiny_cfg, tmp_path):
    with pytest.raises(pydarknet.FileError, match="cannot open .*missing.weights"):
        pydarknet.Network(tiny_cfg, tmp_path / "missing.weights")


@pytest.mark.parametrize("cut, message", [
    (lambda data: data[:-1], "file is too short"),
    (lambda data: data[: len(data) // 2], "file is too short"),
    (lambda data: data + b"\0\0\0\0", "file is too long: .* has 4 more"),
    (lambda data: data[:10], "file is too short"),
])
def test_weights_that_do_not_fit(yolo_cfg, yolo_weights, tmp_path, cut, message):
    bad = tmp_path / "bad.weights"
    bad.write_bytes(cut(yolo_weights.read_bytes()))
    with pytest.raises(pydarknet.WeightsError, match=message) as info:
        pydarknet.Network(yolo_cfg, bad)
    assert info.value.file == str(bad)


def test_truncated_weights_name_the_layer(yolo_cfg, yolo_weights, tmp_path):
    bad = tmp_path / "bad.weights"
    bad.write_bytes(yolo_weights.read_bytes()[:-1])
    with pytest.raises(pydarknet.WeightsError) as info:
        pydarknet.Network(yolo_cfg, bad)
    assert info.value.section == 22  # the last convolutional layer holds the last bytes
    assert "layer 22" in str(info.value)


@pytest.mark.parametrize("old, new, message", [
    ("[maxpool]", "[maxpoool]", r"unknown section type \[maxpoool\]"),
    ("activation=leaky", "activation=leakyy", "unknown activation 'leakyy'"),
    ("size=3", "size=0", "size must be positive, got 0"),
    ("filters=8", "filters=-1", "filters must be positive, got -1"),
    ("stride=2", "stride=0", "stride must be positive, got 0"),
    ("output=5", "output=0", "output must be positive, got 0"),
    ("size=3\nstride=1\npad=1", "size=40\nstride=1\npad=0", "empty output"),
    ("stride=1\npad=1\nactivation=leaky", "stride=1\npad=1\nactivation=leaky\ngroups=3\n", "groups=3 must divide"),
    ("activation=leaky", "activation leaky", "expected key=value, got 'activationleaky'"),
])
def test_invalid_layer_sections_name_line_and_layer(tmp_path, old, new, message):
    path = cfg_with(tmp_path, old, new)
    with pytest.raises(pydarknet.CfgError, match=message) as info:
        pydarknet.Network(path)
    error = info.value
    assert error.file == str(path)
    assert isinstance(error, ValueError)
    assert error.line is not None and f"{path}:{error.line}" in str(error)


def test_unknown_section_reports_its_own_line(tmp_path):
    path = cfg_with(tmp_path, "[maxpool]", "[maxpoool]")
    with pytest.raises(pydarknet.CfgError) as info:
        pydarknet.Network(path)
    assert info.value.line == line_of(path.read_text(), "[maxpoool]")
    assert info.value.section == 1


@pytest.mark.parametrize("old, new, message", [
    ("batch=1", "batch=0", "batch must be positive"),
    ("width=16", "width=-16", "must not be negative"),
    ("batch=1", "batch=1\nsubdivisions=0", "subdivisions must be positive"),
])
def test_invalid_net_section(tmp_path, old, new, message):
    with pytest.raises(pydarknet.CfgError, match=message) as info:
        pydarknet.Network(cfg_with(tmp_path, old, new))
    assert info.value.section is None  # [net] is not a layer


@pytest.mark.parametrize("section, message", [
    # each of these killed the process upstream (SIGFPE or heap corruption)
    ("[softmax]\ngroups=0", "groups must be positive"),
    ("[softmax]\ngroups=3", "groups=3 does not divide the 5 inputs"),
    ("[reorg]\nstride=0", "stride must be positive"),
])
def test_sections_that_used_to_crash(tmp_path, section, message):
    with pytest.raises(pydarknet.CfgError, match=message):
        pydarknet.Network(cfg_with(tmp_path, "[softmax]", section))


@pytest.mark.parametrize("old, new, message", [
    ("num=6", "num=0", "num must be positive"),
    ("mask = 3,4,5", "mask = 3,4,6", r"mask index 6 is outside 0..5"),
    ("anchors = 10,14,", "anchors = 1,2,3,4,10,14,", "anchors has 16 values, but num allows at most 12"),
])
def test_yolo_sections_that_used_to_corrupt_memory(yolo_cfg, tmp_path, old, new, message):
    text = yolo_cfg.read_text()
    assert old in text
    path = tmp_path / "yolo.cfg"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(pydarknet.CfgError, match=message) as info:
        pydarknet.Network(path)
    assert info.value.line is not None


def test_references_to_missing_layers(tmp_path):
    route = cfg_with(tmp_path, "[softmax]", "[route]\nlayers=-9\n", "route.cfg")
    with pytest.raises(pydarknet.CfgError, match=r"layers=-9 refers to layer -5"):
        pydarknet.Network(route)
    no_from = cfg_with(tmp_path, "[softmax]", "[shortcut]\nactivation=linear\n", "shortcut.cfg")
    with pytest.raises(pydarknet.CfgError, match="shortcut needs from="):
        pydarknet.Network(no_from)


def test_garbage_bytes_as_cfg(tmp_path):
    path = tmp_path / "garbage.cfg"
    path.write_bytes(bytes(range(1, 256)) * 40)
    with pytest.raises(pydarknet.CfgError, match="before the first") as info:
        pydarknet.Network(path)
    assert info.value.line == 1 and len(str(info.value)) < 400


def test_empty_and_net_less_cfgs(tmp_path):
    (tmp_path / "empty.cfg").write_text("# nothing\n")
    with pytest.raises(pydarknet.CfgError, match="no sections"):
        pydarknet.Network(tmp_path / "empty.cfg")
    with pytest.raises(pydarknet.CfgError, match=r"First section must be \[net\]"):
        pydarknet.Network(cfg_with(tmp_path, "[net]", "[convolutional]"))


def test_crlf_cfg_loads(tmp_path, tiny_weights):
    path = tmp_path / "crlf.cfg"
    path.write_bytes(TINY_CFG.replace("\n", "\r\n").encode())
    with pydarknet.Network(path, tiny_weights) as net:
        assert net.output_shape == (5,)


def test_process_survives_every_error_and_still_runs_a_model(tmp_path, tiny_cfg, tiny_weights):
    (tmp_path / "garbage.cfg").write_bytes(os.urandom(2000).replace(b"[", b"x"))
    truncated = tmp_path / "truncated.weights"
    truncated.write_bytes(tiny_weights.read_bytes()[:-1])
    script = textwrap.dedent(f"""
        import numpy as np, pydarknet
        attempts = [({str(tmp_path / 'none.cfg')!r}, None),
                    ({str(tiny_cfg)!r}, {str(tmp_path / 'none.weights')!r}),
                    ({str(tiny_cfg)!r}, {str(truncated)!r}),
                    ({str(tmp_path / 'garbage.cfg')!r}, None)]
        for cfg, weights in attempts:
            try:
                pydarknet.Network(cfg, weights)
            except pydarknet.DarknetError as exc:
                print("caught", type(exc).__name__)
        with pydarknet.Network({str(tiny_cfg)!r}, {str(tiny_weights)!r}) as net:
            out = net.predict(np.ones((3, 16, 16), np.float32))
        print("ran", out.shape)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["caught FileError", "caught FileError",
                                          "caught WeightsError", "caught CfgError"]
    assert "ran (5,)" in done.stdout
    assert done.stderr == ""  # quiet by default, even while failing


def test_failed_loads_do_not_leak_into_the_next_load(tmp_path, tiny_cfg, tiny_weights):
    with pytest.raises(pydarknet.CfgError):
        pydarknet.Network(cfg_with(tmp_path, "[maxpool]", "[maxpoool]"))
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        assert net.predict(random_input((3, 16, 16))).shape == (5,)


def test_a_missing_optional_package_is_one_error_with_its_pip_command(tmp_path):
    """Every optional dependency is imported through errors.optional: a DependencyError
    (an ImportError) naming the feature, the package and the pip command; the command
    line prints it as one line and exits 2."""
    import subprocess
    import sys

    from pydarknet.errors import DependencyError, optional

    with pytest.raises(DependencyError, match=r"^testing needs no_such_module: pip install no-such-module$"):
        optional("no_such_module.sub", "testing", "no-such-module")
    blocked = "import sys; sys.modules['onnx'] = sys.modules['cv2'] = None; "
    convert = blocked + f"from pydarknet.cli import main; sys.exit(main(['convert', {str(tmp_path / 'm.onnx')!r}, '-o', 'x']))"
    done = subprocess.run([sys.executable, "-c", convert], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "pydarknet: error: ONNX import needs onnx: pip install onnx (or pip install \".[onnx]\")"], done.stderr
    video = blocked + ("import pydarknet; from pydarknet.api.stream import decoded; "
                       "print([str(i.error) for i in decoded(['clip.mp4'])])")
    done = subprocess.run([sys.executable, "-c", video], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and 'clip.mp4: decoding videos, cameras and streams needs cv2: pip install ' \
        '"pydarknet[video]"' in done.stdout, done.stderr
