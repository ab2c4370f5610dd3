"""``pydarknet.ray``: detection on Ray Data, on one machine or a cluster.

    import ray
    import pydarknet.ray

    images = ray.data.read_images("photos/", mode="RGB", include_paths=True)
    found = images.map_batches(pydarknet.ray.Detector, fn_constructor_kwargs={"model": "yolov3-tiny"},
                               compute=ray.data.ActorPoolStrategy(size=2), batch_size=8, num_cpus=1)
    for row in found.iter_rows():
        print(row["path"], [d["label"] for d in row["detections"]])

Each actor loads its network once and runs it with as many threads as Ray gave it
CPUs; the same code runs on a multi-node cluster (``ray.init(address=...)``), where
every node needs pydarknet installed (and the model's files, or the zoo's cache).
Needs ``pip install "pydarknet[ray]"``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .cpus import available_cpus
from .runtime.images import Image, load_image
from .api.inference import ModelSpec, detect_batch, resolve_model
from .api.stream import INPUT_ERRORS


def actor_cpus() -> int:
    """The CPUs Ray assigned to this worker (rounded down, at least 1); outside Ray,
    the CPUs this process may use (its affinity and cgroup quota)."""
    try:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    except ImportError:
        pass
    return available_cpus()[0]


class Detector:
    """A callable class for ``Dataset.map_batches``: a batch whose ``column`` holds
    height x width x 3 uint8 images (RGB, as ``ray.data.read_images`` gives them) gets
    an ``output`` column with, per image, the list of its detections as dicts (label,
    class_id, confidence, x, y, w, h, x1, y1, x2, y2: pixels, x/y the centre), and an
    ``error`` column: None, or why that row's image could not be used (a missing image,
    a shape or dtype that is not an image; its detections are then []), so that one bad
    row never fails the job. The other columns pass through. ``model``: a zoo name or
    (cfg, weights[, names]) paths. ``threads``: for its forward passes (default: the
    CPUs Ray gave the actor)."""

    def __init__(self, model: ModelSpec = "yolov3-tiny", *, thresh: float = 0.5, hier_thresh: float = 0.5,
                 nms: float = 0.45, batch: int = 8, threads: Optional[int] = None, device: str = "cpu",
                 column: str = "image", output: str = "detections", error: str = "error",
                 channel_order: str = "RGB"):
        from . import set_num_threads

        self.threads = threads or actor_cpus()
        set_num_threads(self.threads)
        self.net = resolve_model(model, device, batch=batch)
        self.options = {"thresh": thresh, "hier_thresh": hier_thresh, "nms": nms}
        self.column, self.output, self.error, self.channel_order = column, output, error, channel_order

    def _image(self, row) -> Image:
        if row is None:
            raise ValueError("no image in this row")
        return load_image(np.asarray(row), self.channel_order)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        if self.column not in batch:
            raise KeyError(f"the batch has no {self.column!r} column (it has {', '.join(batch)}); "
                           "pass column= to Detector")
        images: List[Optional[Image]] = []
        problems: List[Optional[str]] = []
        for row in batch[self.column]:
            try:
                images.append(self._image(row))
                problems.append(None)
            except INPUT_ERRORS as e:
                images.append(None)
                problems.append(f"{type(e).__name__}: {e}")
        good = [image for image in images if image is not None]
        found = iter(detect_batch(self.net, good, **self.options))
        out = dict(batch)
        records = np.empty(len(images), dtype=object)
        records[:] = [[d.to_json() for d in next(found)] if image is not None else [] for image in images]
        out[self.output] = records
        out[self.error] = np.array(problems, dtype=object)
        return out
