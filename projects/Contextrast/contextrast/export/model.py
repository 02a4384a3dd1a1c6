"""Inference network of a Contextrast config and its checkpoint, for the deploy scripts.

The inference network of a Contextrast config is the config's network with
``MODEL.CONTEXTRAST.ENABLED`` forced to False: no projection heads are built. A checkpoint trained
with Contextrast holds the projection heads under ``contrast_heads.``;
:func:`load_inference_weights` drops exactly those tensors and reports them, and rejects any other
difference.
"""

import logging
import sys
from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.modeling import build_model
from torch import Tensor, nn

import contextrast  # noqa: F401  (registers backbones, heads, meta-architectures, datasets)
from contextrast.config import get_contextrast_cfg, merge_config

__all__ = [
    "OUTPUT_KINDS",
    "TRAINING_ONLY_PREFIX",
    "CheckpointMismatchError",
    "InferenceWrapper",
    "setup_logging",
    "setup_cfg",
    "default_size",
    "build_inference_model",
    "build_training_model",
    "jitter_weights",
    "count_parameters",
    "read_checkpoint",
    "split_training_only",
    "check_state_dict",
    "load_inference_weights",
]

logger = logging.getLogger(__name__)

# Graph output, also its name: "logits" float32 (B, K, H, W) or "labels" int64 (B, H, W).
OUTPUT_KINDS = ("logits", "labels")
# Module prefix of everything training-only in ContextrastSegmentor (docs/architecture.md).
TRAINING_ONLY_PREFIX = "contrast_heads."
# Keys listed per category in a checkpoint mismatch error before "... and N more".
_MAX_LISTED_KEYS = 20


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not fit the inference network (other architecture or class count)."""


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


def setup_logging() -> None:
    """INFO logging to stdout for the CLI scripts, without the exporters' per-pass chatter."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    for name in ("onnxscript", "onnx_ir", "fvcore", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_cfg(config_file: str, opts: Sequence[str] = (), device: str = "cpu"):
    """Project config from a file plus ``KEY VALUE`` overrides, on ``device``, frozen.

    Unknown keys raise ``UnknownConfigKeyError`` with the closest existing keys.
    """
    cfg = get_contextrast_cfg()
    merge_config(cfg, config_file, list(opts))
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    return cfg


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


def split_training_only(state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """Split off the training-only tensors (``contrast_heads.*``).

    Returns:
        (the state dict without them, the sorted names that were dropped).
    """
    dropped = sorted(k for k in state_dict if k.startswith(TRAINING_ONLY_PREFIX))
    kept = {k: v for k, v in state_dict.items() if not k.startswith(TRAINING_ONLY_PREFIX)}
    return kept, dropped


def _format_keys(title: str, keys: Sequence[str]) -> str:
    lines = [f"  {title} ({len(keys)}):"] + [f"    {k}" for k in keys[:_MAX_LISTED_KEYS]]
    if len(keys) > _MAX_LISTED_KEYS:
        lines.append(f"    ... and {len(keys) - _MAX_LISTED_KEYS} more")
    return "\n".join(lines)


def check_state_dict(model: nn.Module, state_dict: Dict[str, Tensor], source: str = "") -> None:
    """Require ``state_dict`` to hold exactly the model's tensors, with the same shapes.

    Raises:
        CheckpointMismatchError: listing the missing keys, the unexpected keys and the shape
            mismatches (typically a checkpoint of another architecture or class count).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    )
    if not (missing or unexpected or mismatched):
        return
    name = f"checkpoint {source}" if source else "checkpoint"
    parts = [f"{name} does not match the inference network:"]
    if missing:
        parts.append(_format_keys("missing in the checkpoint", missing))
    if unexpected:
        parts.append(_format_keys("unexpected in the checkpoint", unexpected))
    if mismatched:
        parts.append(_format_keys("shape mismatch", mismatched))
    parts.append("  (another architecture or class count? check --config-file and its options)")
    raise CheckpointMismatchError("\n".join(parts))


def load_inference_weights(model: nn.Module, path: str) -> Dict[str, object]:
    """Load a (Contextrast or baseline) checkpoint into the inference network, strictly.

    The ``contrast_heads.*`` tensors are dropped and logged; everything else must match.

    Returns:
        ``{"loaded": number of tensors loaded, "dropped": names dropped, "dropped_elements":
        number of tensor elements dropped}``.
    """
    full = read_checkpoint(path)
    state_dict, dropped = split_training_only(full)
    dropped_elements = sum(full[k].numel() for k in dropped)
    logger.info(
        "Dropped %d training-only tensors (%s*, %d elements) from %s",
        len(dropped),
        TRAINING_ONLY_PREFIX,
        dropped_elements,
        path,
    )
    check_state_dict(model, state_dict, source=path)
    model.load_state_dict(state_dict, strict=True)
    logger.info("Loaded %d tensors into the inference network", len(state_dict))
    return {"loaded": len(state_dict), "dropped": dropped, "dropped_elements": dropped_elements}
