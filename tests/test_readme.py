"""The examples of the README and of the docs site run, so a statement that stops being
true fails CI.

Every ```python and ```sh block runs, in a folder holding the files the examples name
(the README's own stand-ins: sample photos, a short video, a small classifier and
converted models; see ``workspace``). A python block runs on its own (its imports
included, in a process of its own); a block of ``>>>`` lines is a doctest. Each line of a sh block is a command
that must exit 0. What cannot run here says why: ``<!-- not run: REASON -->`` on the
line before a block, or ``# not run: REASON`` at the end of a shell line."""

import doctest
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np
import pytest

import pydarknet
from pydarknet.runtime import samples

from conftest import TINY_CFG, write_random_weights

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!-- not run: (\S.*?) -->")


@dataclass
class Block:
    document: Path
    line: int  # of the opening fence
    language: str
    text: str
    not_run: Optional[str]

    @property
    def name(self) -> str:
        return f"{self.document.name}:{self.line}"


def blocks(document: Path) -> List[Block]:
    found = []
    lines = document.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w+)\s*", lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        reason = NOT_RUN.fullmatch(before.strip())
        found.append(Block(document, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                           reason.group(1) if reason else None))
        i = end + 1
    return [b for b in found if b.language in ("python", "sh")]


ALL = [block for document in DOCUMENTS for block in blocks(document)]


def commands(text: str) -> List[str]:
    """A sh block's commands: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


HSWISH_CFG = """[net]
width=8
height=8
channels=3

[convolutional]
filters=4
size=3
activation=linear

[hswish]
"""

TYPO_CFG = """[net]
width=8
height=8
channels=3

[convolutional]
filter=8
filters=4
size=3
activation=leaky
"""


def _video(path: Path, image: Path, frames: int = 3) -> None:
    pixels = cv2.resize(cv2.imread(str(image)), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 240))
    for _ in range(frames):
        writer.write(pixels)
    writer.release()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, official):
    """The files the examples name: photos (upstream's samples), a video, the
    yolov3-tiny weights, a small classifier (its random weights and 5 names stand in for
    an ImageNet one), the test suite's ONNX ResNet-18 (random weights), a small Caffe
    model with BatchNorm, and a labelled set (support/labelled.py)."""
    from support.caffe_models import NetBuilder
    from support.labelled import coco_set, darknet_set

    root = tmp_path_factory.mktemp("readme")
    dog, eagle = samples.path("dog.jpg"), samples.path("eagle.jpg")
    for name in ("photo.jpg", "a.jpg", "dog.jpg"):
        shutil.copy(dog, root / name)
    shutil.copy(eagle, root / "cat.jpg")
    (root / "photos" / "sub").mkdir(parents=True)
    shutil.copy(dog, root / "photos" / "dog.jpg")
    shutil.copy(eagle, root / "photos" / "eagle.jpg")
    shutil.copy(samples.path("horses.jpg"), root / "photos" / "sub" / "horses.jpg")
    (root / "shots").mkdir()
    cv2.imwrite(str(root / "shots" / "kite.png"), cv2.imread(str(samples.path("kite.jpg"))))
    (root / "val2014").mkdir()
    shutil.copy(dog, root / "val2014" / "COCO_val2014_000000000042.jpg")
    _video(root / "clip.mp4", dog)
    shutil.copy(official[1], root / "yolov3-tiny.weights")
    (root / "classifier.cfg").write_text(TINY_CFG)
    with pydarknet.Network(root / "classifier.cfg") as net:
        write_random_weights(net, root / "classifier.weights", seed=1)
    (root / "imagenet.shortnames.list").write_text("tabby\ntiger\nlion\nlynx\ncougar\n")
    (root / "model-with-hswish.cfg").write_text(HSWISH_CFG)
    (root / "model.cfg").write_text(TYPO_CFG)
    shutil.copy(ROOT / "tests" / "onnx" / "resnet18.onnx", root / "resnet18.onnx")
    (root / "classes.txt").write_text("".join(f"class {i}\n" for i in range(10)))
    builder = NetBuilder()
    builder.conv("conv1", "data", "c1", 4)
    builder.batch_norm("bn1", "c1", "c1")
    (root / "caffe").mkdir()
    prototxt, caffemodel = builder.write(root / "caffe")
    shutil.copy(prototxt, root / "deploy.prototxt")
    shutil.copy(caffemodel, root / "model.caffemodel")
    shutil.copy(caffemodel, root / "resnet.caffemodel")
    darknet_set(root)  # coco.data, labelled/: dog.jpg and its labels
    coco_set(root)  # instances.json, val/
    return root


def test_every_block_runs_or_says_why():
    assert ALL, "no examples found"
    for block in ALL:
        if block.not_run is None and block.language == "sh":
            for command in commands(block.text):
                skipped = re.search(r"# not run: (.*)$", command)
                assert skipped is None or skipped.group(1).strip(), f"{block.name}: '# not run:' needs a reason"


@pytest.mark.parametrize("block", ALL, ids=[b.name for b in ALL])
def test_example(block, workspace, monkeypatch, capsys):
    if block.not_run:
        pytest.skip(f"not run: {block.not_run}")
    monkeypatch.chdir(workspace)
    if block.language == "sh":
        _run_commands(block, workspace)
    elif block.text.lstrip().startswith(">>>"):
        _run_doctest(block)
    else:  # in a process of its own, as a user runs it (a Ray cluster it starts goes with it)
        done = subprocess.run([sys.executable, "-c", block.text], cwd=workspace, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{block.name} failed:\n{done.stderr[-3000:]}"


def _run_commands(block: Block, workspace: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for command in commands(block.text):
        if re.search(r"# not run: ", command):
            continue
        done = subprocess.run(["bash", "-c", command], cwd=workspace, env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{block.name}: {command!r} exited {done.returncode}:\n{done.stderr[-2000:]}"


def _run_doctest(block: Block) -> None:
    test = doctest.DocTestParser().get_doctest(block.text, {"pydarknet": pydarknet, "np": np}, block.name,
                                               str(block.document), block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{block.name}: the doctest above fails"


def test_the_first_example_runs_in_an_empty_folder(tmp_path, official):
    """What a new user does first: the README's first python block, in a fresh process
    in an empty folder."""
    first = next(block for block in ALL if block.language == "python" and block.document.name == "README.md")
    done = subprocess.run([sys.executable, "-c", first.text], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("car 0.615 ")  # upstream's top detection in dog.jpg
    assert list(tmp_path.iterdir()) == []


def test_the_onnx_operator_table_is_the_importers():
    """The operators named in the first column of docs/conversion.md's table (the words
    that onnx's own schema registry knows as operators) are exactly those the importer
    maps."""
    onnx = pytest.importorskip("onnx")
    from pydarknet.formats.onnx_ops import OPS

    known = {schema.name for schema in onnx.defs.get_all_schemas()}
    text = (ROOT / "docs" / "conversion.md").read_text(encoding="utf-8")
    table = text[text.index("| ONNX | Darknet |"):].split("\n\n")[0]
    rows = table.splitlines()[2:]
    named = {word for row in rows for word in re.findall(r"[A-Z][A-Za-z]+", row.split("|")[1]) if word in known}
    assert named == set(OPS)


def test_the_exported_layers_list_is_the_exporters():
    """docs/export.md's list of exported layers names every layer type the exporter has
    an entry for, and the types it says are refused have none."""
    from pydarknet.transforms.darknet_to_onnx import EXPORTERS

    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    listed = text[text.index("Exported layers:"):].split("\n\n")[0]
    refused = text[text.index("Anything else, such as"):].split("\n\n")[0]
    assert set(EXPORTERS) <= set(re.findall(r"[a-z]+", listed))
    assert {"local", "detection"} <= set(re.findall(r"[a-z]+", refused)) and not {"local", "detection"} & set(EXPORTERS)
