"""Helpers of the evaluation tests: the demo network, tiny and with informative logits."""

import os

import torch
from detectron2.modeling import build_model

from contextrast.config import get_contextrast_cfg

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(ROOT, "configs", "demo")
# The demo network with small projection heads and a single data-loading process.
TINY_OPTS = ["MODEL.CONTEXTRAST.PROJ_DIM", "16", "DATALOADER.NUM_WORKERS", "0"]


def tiny_cfg(name="contextrast.yaml", opts=()):
    """Unfrozen config of ``configs/demo/<name>`` with :data:`TINY_OPTS` and ``opts``."""
    cfg = get_contextrast_cfg()
    cfg.merge_from_file(os.path.join(DEMO, name))
    cfg.merge_from_list(TINY_OPTS + list(opts))
    return cfg


def tiny_model(cfg, seed=43):
    """Randomly initialised eval-mode model whose classifier gives peaked, informative logits
    (the default init of the classifier, std 0.001, makes every softmax nearly uniform)."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.sem_seg_head.predictor.weight, std=0.02)
    return model
