"""SplitDeepLabV3PlusHead computes what detectron2's DeepLabV3PlusHead computes (global image
pooling, ``train_size`` None), on the same weights."""

import torch
from detectron2.modeling import build_backbone
from detectron2.projects.deeplab import DeepLabV3PlusHead
from helpers import FP32_RTOL, SMALL_HEADS_OPTS, assert_close_to_reference, demo_cfg

from contextrast.export import jitter_weights
from contextrast.modeling.heads import SplitDeepLabV3PlusHead

OPTS = [
    "MODEL.SEM_SEG_HEAD.NAME", "SplitDeepLabV3PlusHead",
    "MODEL.SEM_SEG_HEAD.IN_FEATURES", "['res2', 'res3', 'res5']",
    "MODEL.SEM_SEG_HEAD.PROJECT_FEATURES", "['res2', 'res3']",
    "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", "[16, 24]",
    "MODEL.SEM_SEG_HEAD.COMMON_STRIDE", "4",
    "MODEL.CONTEXTRAST.ENABLED", "False",
]  # fmt: skip


def test_layers_compute_detectron2s_head():
    cfg = demo_cfg(*SMALL_HEADS_OPTS, *OPTS)
    shapes = build_backbone(cfg).output_shape()
    torch.manual_seed(0)
    ours = jitter_weights(SplitDeepLabV3PlusHead(cfg, shapes), scale=0.1).eval()
    kwargs = SplitDeepLabV3PlusHead.from_config(cfg, shapes)
    assert kwargs["train_size"] is None  # the global-pooling path
    del kwargs["loss_top_k"]  # the one argument detectron2's head does not take
    reference = DeepLabV3PlusHead(**kwargs).eval()
    reference.load_state_dict(ours.state_dict())  # strict: the same modules
    g = torch.Generator().manual_seed(0)
    features = {
        name: torch.randn(2, s.channels, 96 // s.stride, 80 // s.stride, generator=g)
        for name, s in shapes.items()
    }
    with torch.no_grad():
        logits = ours.layers(features)["sem_seg"]
        expected = reference.layers(features)
    assert logits.shape == (2, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, 96 // 4, 80 // 4)
    assert_close_to_reference(logits, expected, rtol=FP32_RTOL, what="logits")
