"""Config keys of the Contextrast project: the only place where keys are added."""
from detectron2.config import CfgNode as CN


def add_contextrast_config(cfg):
    """Add the Contextrast keys to a detectron2 config, in place.

    Call :func:`detectron2.projects.deeplab.add_deeplab_config` first: the project reuses its
    poly LR schedule (``SOLVER.POLY_LR_*``), its ResNet keys and its sem-seg head keys.
    Defaults follow ``shared/contextrast-spec.md``. Layer-indexed lists are ordered like
    ``MODEL.CONTEXTRAST.IN_FEATURES``: shallowest layer first, deepest last.
    """
    cfg.MODEL.CONTEXTRAST = CN()
    # Master switch for the training-only parts (projection heads, CCL, BANE). False = baseline.
    cfg.MODEL.CONTEXTRAST.ENABLED = True
    # Backbone features (encoder layers 1..I, shallowest first) that get a projection head.
    cfg.MODEL.CONTEXTRAST.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # Projection head registered in CONTRAST_HEADS_REGISTRY; one instance per layer.
    cfg.MODEL.CONTEXTRAST.PROJ_HEAD_NAME = "ConvMLPProjectionHead"
    # Embedding dimension d of the projection heads (embeddings are L2-normalised).
    cfg.MODEL.CONTEXTRAST.PROJ_DIM = 256
    # InfoNCE temperature tau (> 0).
    cfg.MODEL.CONTEXTRAST.TEMPERATURE = 0.1
    # Per-layer loss weights lambda_i, one per IN_FEATURES entry (paper: 0.1, 0.4, 0.7, 1.0).
    cfg.MODEL.CONTEXTRAST.LAYER_WEIGHTS = [0.1, 0.4, 0.7, 1.0]
    # alpha: weight of the pixel-anchor loss in L = L_CE + alpha * L_PA.
    cfg.MODEL.CONTEXTRAST.LOSS_WEIGHT = 0.1
    # Linear ramp of alpha from 0 over this many iterations (0 = no warm-up, as in the paper).
    cfg.MODEL.CONTEXTRAST.WARMUP_ITERS = 0
    # Anchor mixing A_i <- w_l * A_i + w_h * A_I for the non-deepest layers (then re-normalised).
    cfg.MODEL.CONTEXTRAST.ANCHOR_WEIGHT_LOW = 0.5  # w_l
    cfg.MODEL.CONTEXTRAST.ANCHOR_WEIGHT_HIGH = 0.5  # w_h
    # Positives: at most this many pixels per class and layer, sampled at random (per process).
    cfg.MODEL.CONTEXTRAST.MAX_POSITIVES = 1024
    # Negatives per anchor and layer (per process): at most MAX_NEGATIVES; when BANE yields fewer
    # than MIN_NEGATIVES, random pixels of other classes top the set up to MIN_NEGATIVES.
    cfg.MODEL.CONTEXTRAST.MAX_NEGATIVES = 1024
    cfg.MODEL.CONTEXTRAST.MIN_NEGATIVES = 256

    cfg.MODEL.CONTEXTRAST.BANE = CN()
    # Boundary-aware negatives. False = CCL only: negatives are random other-class pixels
    # (MAX_NEGATIVES per anchor).
    cfg.MODEL.CONTEXTRAST.BANE.ENABLED = True
    # K: fraction in (0, 1] of each error region's pixels kept, nearest its boundary first.
    cfg.MODEL.CONTEXTRAST.BANE.TOP_K_RATIO = 0.5
    # Error-map reading, "fp" | "fn": fp ranks a pixel (gt n, pred m) inside the region
    # [pred = m, gt != m]; fn ranks it inside [gt = n, pred != n]. Both make it a negative of m.
    cfg.MODEL.CONTEXTRAST.BANE.ERROR_MAP = "fp"

    # Colour jitter (brightness / contrast / saturation) in the training augmentations.
    cfg.INPUT.COLOR_JITTER = True
