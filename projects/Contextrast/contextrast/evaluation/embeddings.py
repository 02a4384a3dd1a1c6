"""Pixel embeddings before the classifier: the features the feature-level metrics measure.

Every head of the project (``ASPPHead``, ``HRNetV2Head``, ``OCRHead``) ends in a 1x1 classifier
named ``predictor``; its input is the head's final pixel representation (ASPP output, fused
HRNetV2 branches, OCR augmented representation). A forward pre-hook on that module reads it
without changing the model or its forward pass, so any head that follows the naming works.
"""

import math
from typing import Dict, List

import torch.nn as nn
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

__all__ = ["ClassifierInputCapture", "SegmentorWithEmbeddings", "find_classifier"]


def find_classifier(sem_seg_head: nn.Module) -> nn.Module:
    """The final 1x1 classifier of a sem-seg head (its ``predictor`` attribute).

    Raises:
        ValueError: when the head has no ``predictor`` module.
    """
    classifier = getattr(sem_seg_head, "predictor", None)
    if not isinstance(classifier, nn.Module):
        raise ValueError(
            f"{type(sem_seg_head).__name__} has no 'predictor' module: the embeddings are read "
            "at the input of the head's final classifier, which must be named 'predictor'"
        )
    return classifier


class ClassifierInputCapture:
    """Context manager recording the input of a module on every forward call.

    Example::

        with ClassifierInputCapture(head.predictor) as capture:
            head.layers(features)
        embeddings = capture.inputs[0]  # (B, C, h, w)
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.inputs: List[Tensor] = []
        self._handle = None

    def _hook(self, module: nn.Module, args) -> None:
        self.inputs.append(args[0])

    def __enter__(self) -> "ClassifierInputCapture":
        self.inputs = []
        self._handle = self.module.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self._handle = None


def _padded_size(size: int, divisibility: int) -> int:
    return int(math.ceil(size / divisibility) * divisibility) if divisibility > 1 else size


class SegmentorWithEmbeddings(nn.Module):
    """Runs a segmentor at inference and adds each image's pre-classifier embeddings.

    The segmentor (e.g. :class:`ContextrastSegmentor`) pads a batch to a multiple of its
    ``size_divisibility``; the embeddings are cropped back to each image's own extent, i.e.
    ``ceil(H * h_f / H_pad)`` rows for a feature map of ``h_f`` rows over ``H_pad`` padded rows.
    """

    def __init__(self, model: nn.Module):
        """
        Args:
            model: segmentor with ``sem_seg_head`` (see :func:`find_classifier`) and
                ``size_divisibility``; a ``DistributedDataParallel`` wrapper is removed.
        """
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        self.model = model
        self.classifier = find_classifier(model.sem_seg_head)
        self.train(model.training)  # a new module defaults to training mode; follow the model

    def forward(self, batched_inputs: List[Dict]) -> List[Dict[str, Tensor]]:
        """
        Args:
            batched_inputs: inference records, ``"image"`` (C, H_i, W_i).

        Returns:
            The model's outputs, each with ``"embeddings"``: (C_e, h_i, w_i), the classifier
            input over image i at the head's output stride (h_i = ceil(H_i / stride)).
        """
        if self.training:
            raise RuntimeError("SegmentorWithEmbeddings is inference-only: call .eval() first")
        with ClassifierInputCapture(self.classifier) as capture:
            outputs = self.model(batched_inputs)
        if len(capture.inputs) != 1:
            raise RuntimeError(
                f"the classifier ran {len(capture.inputs)} times in one forward pass; expected 1"
            )
        embeddings = capture.inputs[0]  # (B, C_e, h_f, w_f) over the padded batch
        sizes = [x["image"].shape[-2:] for x in batched_inputs]
        divisibility = getattr(self.model, "size_divisibility", 0)
        pad_h = _padded_size(max(s[0] for s in sizes), divisibility)
        pad_w = _padded_size(max(s[1] for s in sizes), divisibility)
        feat_h, feat_w = embeddings.shape[-2:]
        for i, ((h, w), output) in enumerate(zip(sizes, outputs)):
            rows, cols = math.ceil(h * feat_h / pad_h), math.ceil(w * feat_w / pad_w)
            output["embeddings"] = embeddings[i, :, :rows, :cols]
        return outputs
