"""``Predictor``: one image in, its (H, W) labels out, from a PyTorch model or a deployed file.

The shape of detectron2's ``DefaultPredictor``: built once from a config (+ checkpoint) or from
an ``.onnx`` file (which carries its contract, :mod:`.metadata`), then called on BGR ``uint8``
images as ``cv2.imread`` returns them. The test-time resize (``INPUT.MIN_SIZE_TEST`` /
``MAX_SIZE_TEST``, detectron2's ``ResizeShortestEdge``) and the conversion to the model's
channel order happen here, the normalisation inside the network; logits are resized back to the
image with bilinear interpolation, as ``sem_seg_postprocess`` does at evaluation. An ONNX file
with a static input size gets every image resized to that size (a one-line note says so), and
its prediction resized back to the image.
"""

import logging
import os
import time
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.data import transforms as T

from ..checkpoint import CheckpointMismatchError
from ..config import load_config
from .metadata import DeployMetadata, metadata_from_config, read_metadata
from .model import InferenceWrapper, build_inference_model, load_inference_weights
from .onnx_io import INPUT_NAME, ort_session

__all__ = [
    "ORT_BACKENDS",
    "Predictor",
    "UnreadableImageError",
    "preprocess",
    "read_bgr",
    "resize_logits",
    "ort_providers",
]

logger = logging.getLogger(__name__)

# ONNX Runtime execution providers by backend name (deploy/evaluate.py --backend).
ORT_BACKENDS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
}


class UnreadableImageError(ValueError):
    """An image file that exists but cannot be decoded (corrupt or unsupported format)."""


def preprocess(image_bgr: np.ndarray, meta: DeployMetadata) -> np.ndarray:
    """A BGR uint8 (H, W, 3) image as the model's input.

    Returns:
        (1, 3, h, w) float32, 0-255, in ``meta.input_format`` order, resized by the test
        contract (``ResizeShortestEdge(min_size_test, max_size_test)``; 0 = native size).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image_bgr.shape}")
    image = image_bgr[:, :, ::-1] if meta.input_format == "RGB" else image_bgr
    if meta.min_size_test > 0:
        resize = T.ResizeShortestEdge(meta.min_size_test, meta.max_size_test, "choice")
        image = resize.get_transform(image).apply_image(np.ascontiguousarray(image))
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def _resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """(1, C, h, w) -> (1, C, height, width) float32, bilinear (``sem_seg_postprocess``)."""
    if x.shape[-2:] == (height, width):
        return np.asarray(x, dtype=np.float32)
    t = torch.from_numpy(np.asarray(x, dtype=np.float32))
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False).numpy()


def resize_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """(1, K, h, w) logits -> (K, height, width) float32, bilinear (``sem_seg_postprocess``)."""
    return _resize_bilinear(logits, height, width)[0]


def ort_providers(backend: str, path: str) -> list:
    """The execution providers of ``backend``, after checking that this onnxruntime has them.

    Raises:
        ValueError: unknown backend name.
        RuntimeError: the provider is not available here (names what is missing).
    """
    import onnxruntime as ort

    if backend not in ORT_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {sorted(ORT_BACKENDS)}")
    providers = ORT_BACKENDS[backend]
    if providers[0] not in ort.get_available_providers():
        raise RuntimeError(
            f"{backend}: onnxruntime {ort.__version__} has no {providers[0]} (available: "
            f"{ort.get_available_providers()}); install onnxruntime-gpu with CUDA (and TensorRT "
            f"for ort-trt) on a machine with an NVIDIA GPU to run {path} there"
        )
    return providers


class Predictor:
    """Semantic segmentation of single images by a PyTorch model or an ONNX file.

    Examples:
        >>> predictor = Predictor("configs/camvid/x.yaml", "model_final.pth")
        >>> labels = predictor(cv2.imread("frame.png"))        # (H, W) int64
        >>> predictor = Predictor("model.onnx")                  # no config needed
    """

    def __init__(
        self,
        model: Union[str, CfgNode],
        weights: Optional[str] = None,
        *,
        opts: Sequence[str] = (),
        backend: str = "ort-cpu",
        threads: int = 0,
        spinning: bool = True,
    ):
        """
        Args:
            model: a config file or ``CfgNode`` (PyTorch, on the CPU), or an ``.onnx`` file.
            weights: checkpoint for a config (None = random weights, with a warning).
            opts: ``KEY VALUE`` config overrides (config only).
            backend: ONNX Runtime backend for an ``.onnx`` file (:data:`ORT_BACKENDS`).
            threads: ONNX Runtime intra-op threads (0 = its default).
            spinning: ONNX Runtime's thread pools spin-wait between calls (its default); False
                for a model timed next to others (``deploy/evaluate.py``), see
                :func:`.onnx_io.ort_session`.

        Raises:
            FileNotFoundError / OnnxModelError: the ``.onnx`` file is missing or unreadable.
            ValueError: its metadata is missing, or its static input shape cannot take one image.
        """
        self.last_time_s = 0.0  # seconds of the last network forward (no pre/post-processing)
        self.session = None  # the ONNX Runtime session of an .onnx file
        if isinstance(model, str) and model.endswith(".onnx"):
            self.metadata = read_metadata(model)
            providers = ort_providers(backend, model)
            self.session = ort_session(model, providers, threads=threads, spinning=spinning)
            if self.session.get_providers()[0] != ORT_BACKENDS[backend][0]:
                raise RuntimeError(
                    f"{backend}: onnxruntime fell back to {self.session.get_providers()}"
                )
            self.backend = backend
            self._fit, self._forward = self._ort_forward(self.session, model)
            return
        cfg = model if isinstance(model, CfgNode) else load_config(model, opts, device="cpu")
        network = build_inference_model(cfg)
        if weights:
            try:
                load_inference_weights(network, weights)
            except (CheckpointMismatchError, FileNotFoundError) as e:
                raise type(e)(f"{weights}: {e}") from e
        else:
            logger.warning("Predictor: no weights given, the network is randomly initialised")
        self.cfg = cfg
        self.metadata = metadata_from_config(cfg)
        self.backend = "torch-cpu"
        self._fit = lambda x: x  # any size
        self._forward = self._torch_forward(InferenceWrapper(network))

    @staticmethod
    def _ort_forward(session, path: str) -> Tuple[Callable, Callable]:
        """(fit, forward): ``fit`` resizes a (1, 3, h, w) input to the file's static input size
        (if any), ``forward`` runs the session on it."""
        output = session.get_outputs()[0].name
        if output != "logits":
            raise ValueError(f"{path} returns {output!r}: export it with --output-kind logits")
        shape = session.get_inputs()[0].shape
        batch, channels, height, width = [d if isinstance(d, int) else None for d in shape]
        # One image per call: a static batch of several cannot take it, whatever its size.
        if batch not in (None, 1) or channels not in (None, 3):
            raise ValueError(
                f"{path} has the static input shape {shape} and the predictor feeds one 3-channel "
                "image at a time: export with --batch 1 (or --dynamic)"
            )
        noted = []

        def fit(x: np.ndarray) -> np.ndarray:
            size = (height or x.shape[2], width or x.shape[3])
            if size == x.shape[2:]:
                return x
            if not noted:
                logger.warning(
                    "%s has the static input size %dx%d: images are resized to it and the "
                    "predictions back to each image's size (export with --dynamic to predict at "
                    "the images' own size)",
                    path,
                    *size,
                )
                noted.append(True)
            return _resize_bilinear(x, *size)

        def forward(x: np.ndarray) -> np.ndarray:
            return session.run([output], {INPUT_NAME: x})[0]

        return fit, forward

    @staticmethod
    def _torch_forward(wrapper: InferenceWrapper) -> Callable[[np.ndarray], np.ndarray]:
        def forward(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return wrapper(torch.from_numpy(x)).numpy()

        return forward

    def forward_array(self, images: np.ndarray) -> np.ndarray:
        """The network alone: (1, 3, h, w) float32 model input -> (1, K, h', w') logits (timed);
        (h', w') = (h, w), or an ONNX file's static input size (the resize is not timed)."""
        images = self._fit(images)
        start = time.perf_counter()
        logits = self._forward(images)
        self.last_time_s = time.perf_counter() - start
        return logits

    def logits(self, image_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) BGR uint8 image -> (K, H, W) float32 logits at the image's size."""
        logits = self.forward_array(preprocess(image_bgr, self.metadata))
        return resize_logits(logits, *image_bgr.shape[:2])

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) BGR uint8 image (as ``cv2.imread`` gives) -> (H, W) int64 labels."""
        return self.logits(image_bgr).argmax(axis=0)

    def __repr__(self) -> str:
        return f"Predictor({self.backend}, {self.metadata.num_classes} classes)"


def read_bgr(path: str) -> np.ndarray:
    """An image file as BGR uint8 (H, W, 3).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnreadableImageError: OpenCV cannot decode it (the message names the file).
    """
    import cv2

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImageError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image
