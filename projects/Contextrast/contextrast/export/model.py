"""The inference network of a Contextrast config and its weights.

The inference network of a Contextrast config is the config's network with
``MODEL.CONTEXTRAST.ENABLED`` forced to False: no projection heads are built. A checkpoint trained
with Contextrast holds the projection heads under ``contrast_heads.``
(:data:`~contextrast.checkpoint.TRAINING_ONLY_PREFIX`); :func:`load_inference_weights` loads it
with the project's checkpointer in its exact mode, which drops and reports exactly those tensors
and rejects any other difference (:class:`~contextrast.checkpoint.CheckpointMismatchError`).
"""

import dataclasses
import logging
from typing import Dict, Tuple

import torch
from detectron2.modeling import build_model
from torch import Tensor, nn

from ..checkpoint import TRAINING_ONLY_PREFIX, CheckpointMismatchError, ContextrastCheckpointer

__all__ = [
    "OUTPUT_KINDS",
    "InferenceWrapper",
    "default_size",
    "build_inference_model",
    "build_training_model",
    "jitter_weights",
    "count_parameters",
    "read_checkpoint",
    "load_inference_weights",
]

logger = logging.getLogger(__name__)

# Graph output, also its name: "logits" float32 (B, K, H, W) or "labels" int64 (B, H, W).
OUTPUT_KINDS = ("logits", "labels")


class InferenceWrapper(nn.Module):
    """Tensor-in / tensor-out module around :meth:`ContextrastSegmentor.forward_logits`.

    Normalisation and padding happen inside, so an exported graph takes raw 0-255 images.
    """

    def __init__(self, model: nn.Module, output_kind: str = "logits"):
        """
        Args:
            model: a ContextrastSegmentor (eval mode is set here).
            output_kind: "logits" or "labels" (per-pixel argmax).
        """
        super().__init__()
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind = {output_kind!r}: expected one of {OUTPUT_KINDS}")
        self.model = model
        self.output_kind = output_kind
        # A fresh module is in training mode, and exporters restore the mode they found.
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        """
        Args:
            images: (B, 3, H, W) float32, 0-255, channels in ``INPUT.FORMAT`` order.

        Returns:
            (B, K, H, W) float32 logits, or (B, H, W) int64 labels.
        """
        logits = self.model.forward_logits(images)
        if self.output_kind == "labels":
            return logits.argmax(dim=1)
        return logits


def default_size(cfg) -> Tuple[int, int]:
    """(height, width) to export / measure at: the absolute training crop, else 512 x 512."""
    if cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute":
        return int(cfg.INPUT.CROP.SIZE[0]), int(cfg.INPUT.CROP.SIZE[1])
    return 512, 512


def build_inference_model(cfg) -> nn.Module:
    """The deployable network of ``cfg``: ``MODEL.CONTEXTRAST.ENABLED`` forced False, eval mode.

    Weights come only from :func:`load_inference_weights`: ``MODEL.WEIGHTS`` and
    ``MODEL.HRNET.PRETRAINED`` are ignored, so the build never reads files.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.CONTEXTRAST.ENABLED = False
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.HRNET.PRETRAINED = ""
    cfg.freeze()
    model = build_model(cfg)
    leaked = [k for k in model.state_dict() if k.startswith(TRAINING_ONLY_PREFIX)]
    if leaked:  # would mean the meta-architecture ignores MODEL.CONTEXTRAST.ENABLED
        raise RuntimeError(f"inference model still holds training-only tensors: {leaked[:5]}")
    return model.eval()


def build_training_model(cfg) -> nn.Module:
    """The network as ``cfg`` trains it (projection heads when ``MODEL.CONTEXTRAST.ENABLED``)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.HRNET.PRETRAINED = ""
    cfg.freeze()
    return build_model(cfg)


@torch.no_grad()
def jitter_weights(model: nn.Module, seed: int = 0, scale: float = 0.01) -> nn.Module:
    """Add N(0, scale^2) noise to every floating-point parameter and buffer, in place.

    For measurements on randomly initialised networks: the ONNX exporters merge initializers of
    equal value, and fresh BatchNorm layers all hold the same constants, so an untrained export
    would have fewer initializers than the same network trained. BN variances stay positive.
    """
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.add_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * scale)
            if name.endswith("running_var"):
                tensor.abs_()
    return model


def count_parameters(model: nn.Module, prefix: str = "") -> int:
    """Number of parameter elements, optionally only those whose name starts with ``prefix``."""
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def read_checkpoint(path: str) -> Dict[str, Tensor]:
    """The model state dict of a checkpoint written by ``tools/train_net.py`` (or a bare one).

    Args:
        path: local path or detectron2 ``PathManager`` URL of a ``torch.save``-d file holding
            ``{"model": state_dict, ...}`` (detectron2's checkpointer) or a state dict.

    Returns:
        ``{name: tensor}``, with a DistributedDataParallel ``module.`` prefix removed.
    """
    from detectron2.utils.file_io import PathManager

    with PathManager.open(path, "rb") as f:
        data = torch.load(f, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointMismatchError(
            f"{path}: not a model checkpoint (expected a state dict or {{'model': state dict}})"
        )
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def load_inference_weights(model: nn.Module, path: str) -> Dict[str, object]:
    """Load a (Contextrast or baseline) checkpoint into the inference network, exactly.

    The checkpoint's ``contrast_heads.*`` tensors are dropped and logged; every other tensor of
    the checkpoint and of the model must match (:class:`ContextrastCheckpointer` with
    ``exact=True``).

    Args:
        model: from :func:`build_inference_model`.
        path: checkpoint written by ``tools/train_net.py`` or a bare state dict (local path or
            detectron2 ``PathManager`` URL).

    Returns:
        ``{"loaded": number of tensors loaded, "dropped": names dropped, "dropped_elements":
        number of tensor elements dropped}``.

    Raises:
        CheckpointMismatchError: listing the missing keys, the unexpected keys and the shape
            mismatches (typically a checkpoint of another architecture or class count).
    """
    checkpointer = ContextrastCheckpointer(model, exact=True)
    checkpointer.load(path, checkpointables=[])
    report = checkpointer.last_load_report
    logger.info("Loaded %d tensors into the inference network", report.loaded)
    return dataclasses.asdict(report)
