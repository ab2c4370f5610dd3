"""``Network``: one loaded Darknet model, safe to share between threads."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import atomic, binding, errors, limits
from ..formats import quantization
from ..formats.darknet import FOLDABLE, cfg_without_bn
from ..binding import ffi, lib
from . import layers
from .backends import BACKENDS, PRECISIONS, backend_for, int8_inputs
from .devices import device_index, device_name
from .images import Image, ImageSource, c_preprocessing, load_image, model_preprocessing
from .layer_info import Layer, RawDetection, layer_table, read_layer
from .names import NamesSource, load_names

PathLike = Union[str, "os.PathLike[str]"]
Shape = Tuple[int, ...]
_NULL = ffi.NULL

def _path_arg(value, what: str) -> bytes:
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), not {type(value).__name__}")
    return os.fsencode(value)


class Network:
    """A Darknet network loaded from a .cfg (and optionally .weights) file.

    Without weights, layers keep upstream's random initialisation. With weights,
    batch normalization is folded into the weights at load (``fold_bn=True``, the
    same outputs with one pass less per layer; see ``fold_batchnorm``): pass
    ``fold_bn=False`` to keep the trained layout, e.g. to save it as it was. ``backend``
    chooses the forward functions (``BACKENDS``; default: oneDNN where the build has it,
    else ``"cpu"``; ``"upstream"`` runs Darknet's own code, the reference). With
    ``"cpu"`` and ``"onednn"``, 3x3 stride-1 convolutions that suit it run as Winograd
    convolutions (``winograd=True``: 2.25-4x fewer multiplications, results equal to
    im2col + GEMM's up to float32 rounding, about 1e-6 relative). ``names`` (a list,
    a .names file or a .data file) must give one label per class. ``batch`` is the
    number of images one forward pass computes; ``predict`` takes any number and
    runs them in chunks of ``batch``. Darknet's console output is shown only with
    ``verbose=True``. Calls on one network are serialised by a lock and release the
    GIL while Darknet computes, so separate networks run in parallel threads.

    ``preprocessing`` is how images become inputs in ``detect``, ``classify`` and
    ``preprocess``: "auto" (the default) applies what the .json a converter wrote next
    to the cfg states (channel order, value range, mean, scale, resize), else Darknet's
    RGB 0-1 letterbox; None forces Darknet's (with a ``PreprocessingWarning`` if the
    .json states otherwise); a ``Preprocessing`` or a dict of its fields overrides.

    ``precision="int8"`` computes the convolutions with int8 inputs and weights on
    oneDNN (about half float32's time; see docs/cpu.md), from the quantization
    parameters ``pydarknet quantize`` writes in the .json next to the cfg; a cfg without
    them is refused with ValueError.

    ``device`` is "cpu" (the default), or "cuda" / "cuda:N" in a GPU build
    (``PYDARKNET_GPU=1``): the network then lives on that GPU and every layer runs its
    CUDA code (cuDNN convolutions in float arithmetic); ``backend`` and ``winograd``
    apply to the CPU only. A build without CUDA, a device that is not there and layers
    without GPU code (Python-defined ones) raise ``DeviceError``: never a silent CPU run.

    Untrusted files are safe to load: a cfg whose sizes overflow, a weights file with
    NaN or infinite values (refused with ``WeightsError`` unless ``finite_weights=False``,
    for inspecting a diverged training run) or a network larger than ``max_memory`` bytes
    (default: this machine's physical memory; ``OutOfMemoryError``) raises instead of
    crashing. See docs/untrusted-input.md.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike] = None, *,
                 batch: int = 1, names: NamesSource = None, verbose: bool = False, fold_bn: bool = True,
                 backend: Optional[str] = None, winograd: bool = True, max_memory: Optional[int] = None,
                 finite_weights: bool = True, device: str = "cpu", preprocessing="auto",
                 precision: str = "float32"):
        batch = limits.positive_int(batch, "batch")
        backend = backend_for(backend)
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        gpu = device_index(device)
        budget = limits.network_memory() if max_memory is None else limits.positive_int(
            max_memory, "max_memory", 2**63 - 1)
        self.cfg_path = Path(os.fsdecode(_path_arg(cfg, "cfg")))
        self.weights_path = None if weights is None else Path(os.fsdecode(_path_arg(weights, "weights")))
        self.verbose = bool(verbose)
        self.names: Optional[List[str]] = None if names is None else load_names(names)  # fail before loading
        #: what detect(), classify() and preprocess() do to an image (see formats/preprocessing.py)
        self.preprocessing = model_preprocessing(self.cfg_path, preprocessing)
        self._c_preprocessing = c_preprocessing(self.preprocessing)
        self._lock = threading.Lock()
        self._holder: Optional[int] = None  # the thread inside _locked()
        self._pid = os.getpid()  # a CUDA context does not survive a fork
        _LIVE.add(self)
        self._net = _NULL
        self._folded: set = set()  # layers whose BN fold_batchnorm() folded
        handle = ffi.new("network **")
        err = ffi.new("pdn_error *")
        weights_arg = ffi.NULL if weights is None else _path_arg(weights, "weights")
        with layers.collecting() as created:
            failed = lib.pdn_load(_path_arg(cfg, "cfg"), weights_arg, batch, self.verbose, bool(finite_weights),
                                  budget, gpu, handle, err)
            #: cfg keys that no layer reads (often a misspelling), as "file:line: layer N: ..."
            self.warnings: List[str] = ffi.string(lib.pdn_warnings()).decode("utf-8", "replace").splitlines()
        self._python_layers = list(created)
        if failed:
            layers.forget(self._python_layers)
            raise _with_warnings(binding.error(err), self.warnings)
        self._net = handle[0]
        #: where it runs: "cpu" or "cuda:N"
        self.device: str = device_name(lib.pdn_network_device(self._net))
        info = ffi.new("pdn_network_info *")
        lib.pdn_network_info_get(self._net, info)
        self.batch = info.batch
        self.input_shape: Shape = (info.c, info.h, info.w)
        self._inputs = info.inputs
        self._outputs = info.outputs
        out = (info.out_c, info.out_h, info.out_w)
        self.output_shape: Shape = out if out[0] * out[1] * out[2] == info.outputs else (info.outputs,)
        self.layers: List[Layer] = [self._layer(i) for i in range(info.n_layers)]
        if fold_bn and weights is not None:
            self.fold_batchnorm()
        try:
            int8, found = int8_inputs(self.cfg_path, precision, backend, self.device,
                                      [layer.type for layer in self.layers])
        except Exception:
            self.close()
            raise
        use = ffi.new("pdn_backend_use *")
        if lib.pdn_use_backend(self._net, BACKENDS.index(backend), bool(winograd), int8, use, err):
            self.close()
            raise binding.error(err)
        #: what the CPU convolutions compute in (PRECISIONS)
        self.precision: str = precision
        #: the int8 parameters (formats/quantization.py) with precision="int8", else None
        self.quantization: Optional[quantization.Quantization] = found
        #: how many convolutional layers compute in int8 (Layer.int8)
        self.int8_layers: int = use.int8
        #: the forward functions it runs with (see BACKENDS), "cuda" on a GPU
        self.backend: str = backend if self.device == "cpu" else "cuda"
        #: how many convolutional layers run as Winograd convolutions (Layer.winograd)
        self.winograd_layers: int = use.winograd
        #: how many convolutional layers run as oneDNN primitives (Layer.onednn)
        self.onednn_layers: int = use.onednn
        self.layers = [self._layer(i) for i in range(info.n_layers)]
        classes = lib.pdn_detection_classes(self._net)
        #: whether the network ends in a [yolo], [region] or [detection] layer
        self.detector: bool = classes >= 0
        self.classes: int = classes if classes >= 0 else info.outputs
        if self.names is not None and len(self.names) != self.classes:
            self.close()
            raise ValueError(
                f"{len(self.names)} names for a model with {self.classes} classes "
                f"({self.cfg_path.name}); give the names file that belongs to this model"
            )

    def _layer(self, index: int) -> Layer:
        return read_layer(self._net, index)

    # -- inspection ----------------------------------------------------------------

    @property
    def labels(self) -> List[str]:
        """The class names, or "class N" for each class when none were given."""
        return self.names or [f"class {i}" for i in range(self.classes)]

    @property
    def bflops(self) -> float:
        """Billions of floating point operations per image, as upstream counts them."""
        return sum(layer.bflops for layer in self.layers)

    @property
    def n_params(self) -> int:
        """Floats in a weights file for this network (its size is 20 + 4 * n_params bytes)."""
        return sum(layer.n_params for layer in self.layers)

    def summary(self) -> str:
        """The layer table: index, type, input and output shapes, BFLOPs."""
        return layer_table(self.layers, self.bflops, self.n_params)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.layers)} layers"
        where = "" if self.device == "cpu" else f" device={self.device}"
        return (f"<pydarknet.Network {self.cfg_path.name} input={self.input_shape} batch={self.batch}{where} "
                f"{state}>")

    # -- running -------------------------------------------------------------------

    def _images(self, x: np.ndarray) -> np.ndarray:
        """``x`` checked and shaped (N, C, H, W), contiguous."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"predict expects a numpy.ndarray, not {type(x).__name__}")
        if x.dtype != np.float32:
            raise TypeError(f"predict expects float32 input, got {x.dtype}; convert with x.astype(np.float32)")
        if x.ndim not in (3, 4) or x.shape[-3:] != self.input_shape:
            raise ValueError(
                f"input shape {x.shape} does not fit this network: expected {self.input_shape} "
                f"(C,H,W) or (N, {', '.join(map(str, self.input_shape))})"
            )
        return np.ascontiguousarray(x.reshape((-1,) + self.input_shape))

    def _one_batch(self, x: np.ndarray, method: str) -> np.ndarray:
        """``x`` as _images(), for methods that take 1 to ``batch`` images."""
        images = self._images(x)
        if not 1 <= len(images) <= self.batch:
            raise ValueError(f"{method} takes 1 to batch={self.batch} images, got {len(images)}")
        return images

    def _forward(self, chunk: np.ndarray, result: np.ndarray, seconds: Optional[np.ndarray] = None) -> None:
        """One pass on at most ``batch`` images, each layer's time into ``seconds`` if
        given (float64, one per layer); the caller holds the lock."""
        err = ffi.new("pdn_error *")
        timing = ffi.NULL if seconds is None else ffi.from_buffer("double[]", seconds, require_writable=True)
        if lib.pdn_predict(self._net, ffi.from_buffer("float[]", chunk), len(chunk),
                           ffi.from_buffer("float[]", result, require_writable=True), timing, self.verbose, err):
            raise binding.error(err)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Forward pass on float32 input shaped (C,H,W) or (N,C,H,W).

        Returns a new float32 array: the last layer's output, shaped
        ``output_shape`` or ``(N, *output_shape)``.
        """
        images = self._images(x)
        result = np.empty((images.shape[0], self._outputs), dtype=np.float32)
        with self._locked():
            for start in range(0, images.shape[0], self.batch):
                self._forward(images[start:start + self.batch], result[start:start + self.batch])
        result = result.reshape((-1,) + self.output_shape)
        return result[0] if x.ndim == 3 else result

    def layer_outputs(self, x: np.ndarray) -> List[np.ndarray]:
        """Every layer's output for at most ``batch`` images: arrays shaped
        (N, *layer.output_shape) (flat for layers whose outputs are not c*h*w)."""
        images = self._one_batch(x, "layer_outputs")
        outputs = []
        err = ffi.new("pdn_error *")
        with self._locked():
            self._forward(images, np.empty((len(images), self._outputs), dtype=np.float32))
            for layer in self.layers:
                out = np.empty((len(images), layer.outputs), dtype=np.float32)
                if lib.pdn_layer_output(self._net, layer.index, len(images),
                                        ffi.from_buffer("float[]", out, require_writable=True), err):
                    raise binding.error(err)
                shape = layer.output_shape if int(np.prod(layer.output_shape)) == layer.outputs else (layer.outputs,)
                outputs.append(out.reshape((len(images), *shape)))
        return outputs

    def layer_times(self, x: np.ndarray, runs: int = 10) -> List[float]:
        """Each layer's forward time in seconds on at most ``batch`` images: the median
        of ``runs`` passes after one warm-up pass. Where the time goes;
        ``tools/profile_layers.py`` prints it as a table."""
        if runs < 1:
            raise ValueError(f"runs must be at least 1, got {runs}")
        if self.device != "cpu":
            raise errors.DeviceError(f"layer_times times the CPU's layers; this network runs on {self.device} "
                                     "(time predict() instead, or load it with device='cpu')")
        images = self._one_batch(x, "layer_times")
        seconds = np.zeros((runs + 1, len(self.layers)))
        result = np.empty((len(images), self._outputs), dtype=np.float32)
        with self._locked():
            for row in seconds:
                self._forward(images, result, row)
        return np.median(seconds[1:], axis=0).tolist()

    def _fold_code(self, target: Optional[str]) -> int:
        """The C side's bn_denominator for a fold target ("cpu" or "gpu"); None: the
        formula of this network's own device."""
        own = "cpu" if self.device == "cpu" else "gpu"
        return binding.FOLD_TARGETS[limits.fold_target(own if target is None else target)]

    def fold_batchnorm(self, target: Optional[str] = None) -> List[int]:
        """Fold batch normalization into the weights of every convolutional,
        deconvolutional and connected layer, in memory, for the runtime ``target``
        ("cpu" or "gpu": their BN denominators differ; default: where this network
        runs), and turn it off there: the same outputs with one pass less per layer.
        Returns the indices of the folded layers. ``save_weights()`` then writes the
        cfg to match."""
        code = self._fold_code(target)
        err = ffi.new("pdn_error *")
        with self._locked():
            folded = [layer.index for layer in self.layers if _foldable(layer)]
            failed = lib.pdn_fold_batchnorm(self._net, code, err)
            self.layers = [self._layer(i) for i in range(len(self.layers))]
            if failed:
                raise binding.error(err)
        self._folded.update(folded)
        return folded

    def save_weights(self, path: PathLike, *, fold_bn: bool = False, target: Optional[str] = None,
                     cfg: Optional[PathLike] = None) -> Optional[Path]:
        """Write the weights (Darknet format 0.2.0) atomically: a temporary file in the
        same folder, renamed over ``path`` only once complete.

        ``fold_bn=True`` writes them with batch normalization folded in for runtime
        ``target`` ("cpu" or "gpu"; default: where this network runs; the network
        itself is unchanged), together with their cfg: the
        loaded one with ``batch_normalize=0`` in the folded layers, written to ``cfg``
        (default: ``path`` with suffix .cfg), whose path is returned. A network whose
        batch normalization is already folded (at load, the default, or by
        ``fold_batchnorm()``) no longer fits its loaded cfg: it needs ``cfg=`` or
        ``fold_bn=True`` (load with ``fold_bn=False`` to save the trained layout).
        """

        target_path = Path(os.fsdecode(_path_arg(path, "path")))
        fold_code = self._fold_code(target) if fold_bn else -1
        folded = set(self._folded)
        if fold_bn:
            folded.update(layer.index for layer in self.layers if _foldable(layer))
        if self._folded and not fold_bn and cfg is None:
            raise ValueError(
                f"this network's batch normalization is folded (fold_bn=True at load, the default, or "
                f"fold_batchnorm()), so its weights no longer fit {self.cfg_path.name}: pass cfg= for the "
                f"matching cfg or fold_bn=True to write it beside the weights, or load with fold_bn=False "
                f"to save the trained layout")
        cfg_path = None
        if folded:
            cfg_path = Path(os.fsdecode(_path_arg(cfg, "cfg"))) if cfg is not None else target_path.with_suffix(".cfg")
            if cfg_path.resolve() == self.cfg_path.resolve():
                raise ValueError(f"{cfg_path} is the cfg this network was loaded from; give another cfg= path")
        err = ffi.new("pdn_error *")
        outputs = [target_path] + ([cfg_path] if cfg_path else [])
        with atomic.replacing(*outputs) as temps:
            if cfg_path:
                cfg_without_bn(self.cfg_path, sorted(folded)).write(temps[1])
            with self._locked():
                # Created by Darknet's fopen, so the file gets the usual permissions.
                if lib.pdn_save_weights(self._net, os.fsencode(temps[0]), fold_code, self.verbose, err):
                    raise binding.error(err)
        return cfg_path

    def detect_raw(self, images: Sequence[Image], thresh: float = 0.5, hier_thresh: float = 0.5,
                   nms: float = 0.45) -> List[List[RawDetection]]:
        """Upstream's detector path (letterbox, forward, get_network_boxes, do_nms_sort)
        on decoded images, ``batch`` at a time; per image, every (box, class) with
        prob > thresh in upstream's order."""
        if self.preprocessing.resize == "crop":
            raise ValueError("'crop' preprocessing is for classifiers: a detector's boxes would cover the crop only")
        thresh = limits.probability(thresh, "thresh")
        hier_thresh = limits.probability(hier_thresh, "hier_thresh")
        nms = limits.probability(nms, "nms")
        results: List[List[RawDetection]] = [[] for _ in images]
        err = ffi.new("pdn_error *")
        out, count = ffi.new("pdn_detection **"), ffi.new("int *")
        with self._locked():
            for start in range(0, len(images), self.batch):
                chunk = images[start:start + self.batch]
                structs = ffi.new("pdn_image[]", [im._struct[0] for im in chunk])
                if lib.pdn_detect(self._net, structs, len(chunk), self._c_preprocessing, thresh, hier_thresh,
                                  nms, out, count, self.verbose, err):
                    raise binding.error(err)
                try:
                    for d in out[0][0:count[0]]:
                        results[start + d.image].append(
                            RawDetection(d.class_id, d.prob, d.objectness, d.x, d.y, d.w, d.h))
                finally:
                    lib.pdn_detections_free(out[0])
        return results

    def detection_steps(self) -> Tuple[bool, float]:
        """What ``detect`` does around the forward pass: whether it letterboxes the image,
        and the NMS it runs (a beta < 0: upstream's IoU; else DIoU-NMS's beta)."""
        letterbox, beta = ffi.new("int *"), ffi.new("float *")
        with self._locked():
            lib.pdn_detection_steps(self._net, self._c_preprocessing, letterbox, beta)
        return bool(letterbox[0]), float(beta[0])

    def preprocess(self, image: ImageSource, channel_order: str = "RGB") -> np.ndarray:
        """The network input (C, H, W float32) that ``classify``/``detect`` make of
        ``image`` (any source ``load_image`` takes), by ``self.preprocessing``."""
        decoded = load_image(image, channel_order)
        out = np.empty(self.input_shape, dtype=np.float32)
        err = ffi.new("pdn_error *")
        with self._locked():  # open while it reads the network's size
            if lib.pdn_preprocess(self._net, decoded._struct, self._c_preprocessing,
                                  ffi.from_buffer("float[]", out, require_writable=True), err):
                raise binding.error(err)
        return out

    def classify_raw(self, image: Image) -> np.ndarray:
        """Upstream's classifier path (letterbox, forward, class hierarchy): the outputs."""
        if self.detector:
            raise ValueError(f"{self.cfg_path.name} is a detector (it ends in a detection layer): use detect()")
        probs = np.empty(self._outputs, dtype=np.float32)
        err = ffi.new("pdn_error *")
        with self._locked():
            if lib.pdn_classify(self._net, image._struct, self._c_preprocessing,
                                ffi.from_buffer("float[]", probs, require_writable=True), self.verbose, err):
                raise binding.error(err)
        return probs

    # -- lifetime ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._net == _NULL

    def _refuse_reentry(self) -> None:
        """A Python layer's code runs inside this network's forward pass, holding its
        lock: calling the network again from there would wait for itself forever."""
        if self._holder == threading.get_ident():
            raise RuntimeError("this Network is running a forward pass on this thread (a Python layer "
                               "called it from its own forward): it cannot be used again until the pass ends")

    @contextlib.contextmanager
    def _locked(self):
        """One call at a time on this network (Darknet keeps scratch buffers in it)."""
        self._refuse_reentry()
        with self._lock:
            if self.closed:
                raise ValueError("this Network is closed")
            if self.device != "cpu" and os.getpid() != self._pid:
                raise errors.DeviceError(
                    f"this network lives on {self.device} of the process that loaded it, and CUDA does not "
                    "survive a fork: load it in this process, or start workers with the 'spawn' method")
            self._holder = threading.get_ident()
            try:
                yield
            finally:
                self._holder = None

    # Defaults bind what close() needs when the class is made: a Network collected
    # at interpreter exit may run __del__ after the module's globals are cleared.
    def close(self, _free=lib.pdn_free, _null=_NULL, _forget=layers.forget) -> None:
        """Free the network's memory now; later calls on it raise ValueError."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the network existed
            return
        self._refuse_reentry()
        with lock:
            if self._net != _null:
                _free(self._net)
                self._net = _null
                _forget(self._python_layers)

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_net", None) is not None:
            self.close()


#: Every open network, for _after_fork.
_LIVE: "weakref.WeakSet[Network]" = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child only the forking thread lives on: a network that another
    thread was running is locked by a thread that is not there. Its buffers are
    rewritten by the next pass, so a new lock is all it needs. (The OpenMP workers are
    released before the fork by the C side: csrc/backend/parallel.c.)"""
    for net in list(_LIVE):
        net._lock = threading.Lock()
        net._holder = None


os.register_at_fork(after_in_child=_after_fork)


def _with_warnings(exc: Exception, warnings: List[str]) -> Exception:
    """A weights file that does not fit usually means the cfg has sections or keys this
    runtime does not read (a cfg of another Darknet fork): a WeightsError names them."""
    if not (warnings and isinstance(exc, errors.WeightsError)):
        return exc
    return errors.WeightsError(f"{exc.message}. The cfg has keys this runtime does not read, the usual cause: "
                               + "; ".join(warnings), file=exc.file, section=exc.section, line=exc.line)


def _foldable(layer: Layer) -> bool:
    return layer.batch_normalize and layer.type in FOLDABLE


def load(cfg: PathLike, weights: Optional[PathLike] = None, **options) -> Network:
    """Same as ``Network(cfg, weights, **options)``."""
    return Network(cfg, weights, **options)
