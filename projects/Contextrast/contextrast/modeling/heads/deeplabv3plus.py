"""DeepLabV3+ head (:paper:`DeepLabV3+`): detectron2's ``DeepLabV3PlusHead`` with the
layers()/losses() split and a crop-size-independent ASPP."""

from detectron2.config import configurable
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.projects.deeplab import DeepLabV3PlusHead

from .common import SplitSemSegHead, build_sem_seg_loss

__all__ = ["SplitDeepLabV3PlusHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class SplitDeepLabV3PlusHead(SplitSemSegHead, DeepLabV3PlusHead):
    """ASPP on the coarsest feature, then a decoder that fuses projected low-level features.

    The layers are detectron2's ``DeepLabV3PlusHead`` (``MODEL.SEM_SEG_HEAD.IN_FEATURES``, e.g.
    ``["res2", "res5"]``: the last one feeds the ASPP, the others are projected to
    ``PROJECT_CHANNELS`` and fused at ``CONVS_DIM`` channels; logits at ``COMMON_STRIDE``). Two
    differences: the ASPP image-pooling branch pools globally (detectron2 sizes it from
    ``INPUT.CROP.SIZE``, which ties the network to the training crop and breaks other test sizes
    and ONNX export), and the head exposes :meth:`layers` / :meth:`losses` with the project's
    loss, which returns 0 rather than NaN for a batch without labelled pixels.
    """

    @configurable
    def __init__(self, input_shape, **kwargs):
        """Arguments of detectron2's ``DeepLabV3PlusHead``; ``num_classes`` is required."""
        if kwargs.get("num_classes") is None:
            raise ValueError("SplitDeepLabV3PlusHead needs MODEL.SEM_SEG_HEAD.NUM_CLASSES")
        super().__init__(input_shape, **kwargs)
        self.loss = build_sem_seg_loss(self.loss_type, self.ignore_value)

    @classmethod
    def from_config(cls, cfg, input_shape):
        kwargs = DeepLabV3PlusHead.from_config(cfg, input_shape)
        kwargs["train_size"] = None  # global image pooling
        missing = [f for f in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES = {list(cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)}: "
                f"{missing} not produced by the backbone (it produces {sorted(input_shape)})"
            )
        return kwargs

    def layers(self, features):
        """
        Args:
            features: backbone outputs, including every ``IN_FEATURES`` entry.

        Returns:
            ``{"sem_seg": (B, K, H/s, W/s) logits}``, ``s`` = ``COMMON_STRIDE``.
        """
        return {"sem_seg": DeepLabV3PlusHead.layers(self, features)}
