"""The demo configs as the tests use them, and tiny models built from them."""

import torch
from detectron2.modeling import build_model

from contextrast.config import load_config

from .paths import DEMO_CONFIG

__all__ = ["SMALL_HEADS_OPTS", "TINY_OPTS", "demo_cfg", "tiny_model", "training_batch"]

# Small projection heads and data loading in the test process.
SMALL_HEADS_OPTS = ["MODEL.CONTEXTRAST.PROJ_DIM", "16", "DATALOADER.NUM_WORKERS", "0"]
# The demo model at toy size for training runs: small crops, batch 2, no workers, thin heads.
TINY_OPTS = [
    "SOLVER.IMS_PER_BATCH", "2",
    "INPUT.CROP.SIZE", "(64, 64)",
    "DATALOADER.NUM_WORKERS", "0",
    "MODEL.CONTEXTRAST.PROJ_DIM", "16",
]  # fmt: skip


def demo_cfg(*opts: str, config: str = DEMO_CONFIG, output_dir: str = ""):
    """Unfrozen project config of ``config`` (the demo network by default) with ``KEY VALUE``
    overrides, read by :func:`contextrast.config.load_config` as every entry point reads them.

    Args:
        opts: ``KEY VALUE`` pairs, e.g. ``*TINY_OPTS, "SOLVER.MAX_ITER", "4"``.
        config: YAML file.
        output_dir: when given, ``OUTPUT_DIR``.
    """
    cfg = load_config(config, opts, freeze=False)
    if output_dir:
        cfg.OUTPUT_DIR = output_dir
    return cfg


def tiny_model(cfg, seed: int = 43):
    """Randomly initialised eval-mode model whose classifier gives peaked, informative logits
    (the default init of the classifier, std 0.001, makes every softmax nearly uniform)."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.sem_seg_head.predictor.weight, std=0.02)
    return model


def training_batch(n: int = 2, h: int = 64, w: int = 64, num_classes: int = 8, seed: int = 0):
    """``n`` detectron2 training records: random 0-255 images ``(3, h, w)`` and random labels
    ``(h, w)`` in ``[0, num_classes)``, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.randint(0, 256, (3, h, w), generator=g).float(),
            "sem_seg": torch.randint(0, num_classes, (h, w), generator=g),
        }
        for _ in range(n)
    ]
