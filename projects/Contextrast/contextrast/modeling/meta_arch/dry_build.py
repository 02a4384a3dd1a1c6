"""Build a config's model without memory or weights, to find config errors before a run writes.

Some config errors can only be found by building the model: ``MODEL.CONTEXTRAST.IN_FEATURES``
must name features the backbone (or head) produces, shallowest first, and only the built backbone
knows its stage order; a head must accept the backbone's channels. The training script writes
``config.yaml`` into ``OUTPUT_DIR`` before it builds the model, so such an error on ``--resume``
would overwrite the interrupted run's record with a config that cannot run. Building on PyTorch's
``meta`` device runs every constructor check in well under a second for the lite0 networks (a
few seconds for ResNet-101 / HRNet-W48) and allocates no parameter memory.
"""

import logging

import torch
from detectron2.modeling import META_ARCH_REGISTRY

__all__ = ["dry_build_model"]


def dry_build_model(cfg) -> None:
    """Construct ``cfg.MODEL.META_ARCHITECTURE`` on the meta device and discard it.

    Its constructor's log messages are muted: the real build repeats them once logging is set up.

    Args:
        cfg: the frozen config.

    Raises:
        Whatever the model's constructor raises for this config (e.g. ``ValueError`` naming
        ``MODEL.CONTEXTRAST.IN_FEATURES``).
    """
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with torch.device("meta"):
            META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    finally:
        logging.disable(previous)
